"""Rows scored by other judges (classifier, identity encoder, realism reference) are archived, never mixed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.runner import RunContext, archive_stale_rows, row_judges


def test_rows_of_other_judges_are_archived(tmp_path: Path):
    ctx = RunContext({"methods": ["aign"]}, "synthfaces", None, tmp_path)
    base = {"dataset": "synthfaces", "resolution": 32, "attribute": "Smiling", "strength": 1.0, "seed": 0}
    old = {"classifier_hash": "c0", "id_encoder_hash": "i0", "realism_ref_hash": "r0"}
    new = {"classifier_hash": "c1", "id_encoder_hash": "i0", "realism_ref_hash": "r0"}
    rows = [{"method": "identity", **base, **old}, {"method": "elegant", **base, **old},
            {"method": "identity", **base, **new, "attribute": "Young"}]
    pd.DataFrame(rows).to_csv(tmp_path / "scores.csv", index=False)
    from benchmark.runner import record_provenance

    record_provenance(ctx, tmp_path / "scores.csv", rows[2], "reference", row_judges(new))
    current = {("identity", a, 0): "reference" for a in ("Smiling", "Young")}  # (method, attribute, seed) -> id
    archive_stale_rows(ctx, [tmp_path / "scores.csv"], current, row_judges(new))
    left = pd.read_csv(tmp_path / "scores.csv")
    assert list(left["attribute"]) == ["Young"]  # the elegant row (not in this run) is archived too
    (archived,) = (tmp_path / "archive").glob("*/scores.csv")
    assert sorted(pd.read_csv(archived)["method"]) == ["elegant", "identity"]
