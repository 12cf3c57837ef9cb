"""``python -m benchmark run`` end to end on a CelebAMask-HQ folder the test writes (tests/fixtures_real.py):
train, score, leaderboard, plots and grids with a preset of its own (one method, 2 steps, tiny judges), dlib
judging identity on a folder without identity labels (id_match NaN, and the outputs say why)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fixtures_real import smooth_image, write_celebahq
from PIL import Image

from benchmark.__main__ import main
from datamodules.base import CELEBA_ATTRIBUTES
from datamodules.celebahq import CelebAHQDataModule
from evaluators.identity_dlib import BACKEND_NAME, dlib_available

METHOD = "aif"  # the cheapest trained method to build and step (measured: aif 50 s, aign 56 s, l2mgan 84 s)


def tiny_preset(tmp_path: Path) -> Path:
    """One method (2 optimizer steps) + the no-op reference point, one attribute, 1-epoch judges, 8 test images."""
    preset = {
        "data": {"name": "celebahq", "init_args": {"resolution": 32, "batch_size": 8, "num_workers": 0,
                                                    "cache_dir": str(tmp_path / "data-cache")}},
        "attributes": ["Smiling"],
        "methods": [METHOD],
        "reference_points": ["identity"],
        "method_config": "demo",
        "seeds": [0],
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 2, "limit_val_batches": 0,
                    "enable_progress_bar": False},
        # attrclf, not auto: a machine holding the Inception weights would otherwise run Inception (minutes)
        "evaluators": {"classifier_epochs": 1, "identity_epochs": 1, "batch_size": 8, "realism": "attrclf",
                       "realism_real_images": 8, "kid_images": 8},
        "scoring": {"max_images": 8, "batch_size": 8, "strength_sweep": [], "sweep_attribute": "Smiling",
                    "sweep_max_images": 8},
        "grids": {"rows": 2},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


@pytest.mark.skipif(not dlib_available(), reason="needs the [dlib] extra (make install adds it)")
def test_celebahq_run_end_to_end(tmp_path, caplog):
    hq, out = tmp_path / "hq", tmp_path / "results"
    write_celebahq(hq, n=24, size=64, identity=False)  # CelebA partition i % 3: 8 train / 8 val / 8 test
    argv = ["run", "--preset", str(tiny_preset(tmp_path)), "--data", "celebahq", "--data-root", str(hq),
            "--output", str(out)]
    assert main(argv) == 0

    (unit,) = (out / "_work").glob(f"{METHOD}-seed0-*")
    assert (unit / "final.ckpt").is_file()
    assert yaml.safe_load((unit / "config.yaml").read_text())["trainer"]["max_steps"] == 2

    scores = pd.read_csv(out / "scores.csv")
    assert sorted(zip(scores["method"], scores["mode"])) == [("aif", "latent"), ("identity", "latent")]
    assert (scores["dataset"] == "celebahq").all() and (scores["attribute"] == "Smiling").all()
    assert (scores["n_images"] == 8).all() and (scores["resolution"] == 32).all()
    assert scores["attr_acc"].between(0, 1).all() and scores["attr_preservation"].between(0, 1).all()
    # identity is judged by dlib's descriptor: a cosine, 1 for the no-op, below 1 for a 2-step network's output
    assert (scores["id_backend"] == BACKEND_NAME).all()
    sim = scores.set_index("method")["id_sim"]
    assert sim.between(-1, 1).all() and sim["identity"] == pytest.approx(1.0, abs=1e-5) and sim["aif"] < 0.999
    # no identity_CelebA.txt: no threshold, so id_match (and success, which needs it) is NaN, never 0 ...
    for col in ("id_threshold", "id_match", "id_match_lo", "id_match_hi", "success"):
        assert scores[col].isna().all(), col
    # ... and every output says why
    assert "celebahq has no identity labels" in caplog.text and "identity_CelebA.txt" in caplog.text
    identity = yaml.safe_load((out / "evaluators.yaml").read_text())["identity"]
    assert identity["backend"] == BACKEND_NAME and math.isnan(identity["threshold"])
    assert identity["threshold_rule"].startswith("none:") and "identity_CelebA.txt" in identity["threshold_rule"]
    board_md = (out / "leaderboard.md").read_text()
    assert "Sorted by attr_acc" in board_md and "id_match (no calibrated identity threshold" in board_md

    board = pd.read_csv(out / "leaderboard.csv")
    assert set(board["method"]) == {"aif", "identity"} and "id_match" not in board and "success" not in board
    assert board["attr_acc"].between(0, 1).all() and board["id_sim"].between(-1, 1).all()
    assert (out / "plots" / "bar_id_sim.png").is_file() and (out / "plots" / "tradeoff.png").is_file()
    per_image = pd.read_csv(out / "per_image" / "aif_latent_Smiling_s1_seed0.csv")
    assert len(per_image) == 8 and per_image["id_cos"].between(-1, 1).all() and per_image["id_match"].isna().all()

    # no identity labels: every test image is its own person, so the preview shows grids.rows (2) of them
    assert Image.open(out / "preview.png").height == 2 * (32 + 2) + 2

    grid = np.asarray(Image.open(out / "grids" / "Smiling.png").convert("RGB"))
    # 2 rows of 32 px cells shown at 96 px under a label strip; columns: input, aif, identity
    assert grid.shape[0] > 2 * 96 and grid.shape[1] > 3 * 96 and grid.std() > 10


def test_celebahq_run_without_dlib_or_identity_labels_stops_before_training(tmp_path, capsys, monkeypatch):
    """Without dlib the identity judge must be trained, which needs identity labels: one error line, up front."""
    monkeypatch.setattr("evaluators.identity_dlib.dlib_available", lambda: False)
    hq, out = tmp_path / "hq", tmp_path / "results"
    write_celebahq(hq, n=24, size=64, identity=False)
    argv = ["run", "--preset", str(tiny_preset(tmp_path)), "--data", "celebahq", "--data-root", str(hq),
            "--output", str(out)]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: celebahq at"), err
    assert "no identity_CelebA.txt and dlib is not installed" in err[0] and "pip install -e '.[dlib]'" in err[0]
    assert not out.exists()  # nothing trained, nothing written


def test_realfaces_smoke_script_builds_a_folder_the_data_module_loads(tmp_path, capsys):
    """benchmarks/realfaces_smoke.py on six stand-in photographs named like /work/shared/realfaces'."""
    spec = importlib.util.spec_from_file_location("realfaces_smoke", Path(__file__).parents[1] / "benchmarks" /
                                                  "realfaces_smoke.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    src, hq = tmp_path / "faces", tmp_path / "hq"
    src.mkdir()
    rng = np.random.default_rng(0)
    names = ["female_000120.jpg", "female_150000.jpg", "female_190000.jpg",
             "male_000007.jpg", "male_020000.jpg", "male_170000.jpg"]
    for name in names:
        smooth_image(rng, 80, 80).save(src / name, quality=95)
    (src / "README.md").write_text("not a photograph")
    assert script.main(["--source", str(src), "--output", str(hq)]) == 0
    printed = capsys.readouterr().out
    assert "seeded random (not real labels)" in printed and "split_protocol=celeba" in printed
    assert (f"python -m benchmark run --preset smoke --data celebahq --data-root {hq.resolve()} "
            f"--output {hq.resolve()}-results") in printed

    dm = CelebAHQDataModule(str(hq), resolution=16, num_workers=0, cache_dir=str(tmp_path / "cache"))
    dm.setup()
    assert dm.split_protocol == "celeba"
    # ordered by CelebA number; per gender the highest number is test, the next val
    expected = {"train": ["0.jpg", "1.jpg"], "val": ["2.jpg", "3.jpg"], "test": ["4.jpg", "5.jpg"]}
    assert {s: list(dm.dataset(s).files) for s in expected} == expected
    assert (hq / "CelebA-HQ-img" / "0.jpg").read_bytes() == (src / "male_000007.jpg").read_bytes()  # copied as is
    assert "5           189999      190000.jpg" in (hq / "CelebA-HQ-to-CelebA-mapping.txt").read_text()
    male = CELEBA_ATTRIBUTES.index("Male")
    for split in expected:
        attrs = dm.dataset(split).attrs
        assert attrs[:, male].tolist() == [1.0, 0.0]  # from the file names: a man and a woman in each split
        assert ((attrs.min(0).values == 0) & (attrs.max(0).values == 1)).all(), split  # both values everywhere
    assert Image.open(hq / "preview.png").height == 2 * (32 + 2) + 2  # both test faces, at 32 px
    with pytest.raises(SystemExit, match="exists"):
        script.main(["--source", str(src), "--output", str(hq)])
