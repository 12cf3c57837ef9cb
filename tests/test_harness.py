"""The harness on the reference points, checked against independent computations; DDP = 1 process; CSVs."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch

from benchmark.results_io import DuplicateResultError, append_rows
from evaluators.harness import InputEvaluations
from evaluators.suite import SCORE_COLUMNS, EvaluatorConfig, build_evaluators, score
from methods import get_method


@pytest.fixture(scope="session")
def bundle(tiny_synth):
    return build_evaluators(tiny_synth, EvaluatorConfig(classifier_epochs=1, identity_epochs=1, batch_size=32))


def _method(name, dm):
    return get_method(name)(attribute_names=dm.attribute_names, image_size=dm.resolution)


def test_identity_reference_point(tiny_synth, bundle):
    row = score(_method("identity", tiny_synth), tiny_synth, "Smiling", bundle, batch_size=16)
    assert list(row) == SCORE_COLUMNS
    ds = tiny_synth.dataset("test")
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    col = tiny_synth.attribute_names.index("Smiling")
    clf = bundle.classifier.model
    pred = clf.predict(images)[:, clf.attribute_names.index("Smiling")]
    # the no-op "succeeds" exactly where the classifier misreads the unedited image
    assert row["attr_acc"] == pytest.approx(float((pred == 1 - ds.attrs[:, col]).float().mean()), abs=1e-6)
    assert row["id_sim"] == pytest.approx(1.0, abs=1e-5) and row["id_match"] == 1.0
    assert row["attr_preservation"] == 1.0
    assert row["cf_l1_out"] == 0.0 and row["cf_l1_in"] > 0
    assert row["realism"] == pytest.approx(row["realism_floor"], rel=1e-6)
    assert row["n_images"] == len(ds)


def test_oracle_reference_point(tiny_synth, bundle):
    row = score(_method("oracle", tiny_synth), tiny_synth, "Smiling", bundle, batch_size=16)
    ds = tiny_synth.dataset("test")
    col = tiny_synth.attribute_names.index("Smiling")
    tgt = ds.attrs.clone()
    tgt[:, col] = 1 - tgt[:, col]
    truth = ds.counterfactuals(torch.arange(len(ds)), tgt)
    clf = bundle.classifier.model
    pred = clf.predict(truth)[:, clf.attribute_names.index("Smiling")]
    assert row["attr_acc"] == pytest.approx(float((pred == tgt[:, col]).float().mean()), abs=1e-6)
    assert row["cf_l1"] == 0.0 and row["cf_l1_in"] == 0.0 and row["cf_psnr"] == 100.0


def test_oracle_refuses_foreign_images(tiny_synth):
    oracle = _method("oracle", tiny_synth)
    oracle.bind_datamodule(tiny_synth)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    a = torch.zeros(2, len(tiny_synth.attribute_names))
    with pytest.raises(ValueError, match="only edits images of its data set"):
        oracle.edit(x, a, a)


def test_max_images_scores_a_seeded_subset(tiny_synth, bundle):
    a = score(_method("identity", tiny_synth), tiny_synth, "Eyeglasses", bundle, max_images=7, batch_size=4)
    b = score(_method("identity", tiny_synth), tiny_synth, "Eyeglasses", bundle, max_images=7, batch_size=5)
    assert a["n_images"] == 7 and a["attr_acc"] == b["attr_acc"]


def test_cached_input_evaluations_change_no_number(tiny_synth, bundle):
    cold = dataclasses.replace(bundle, inputs=InputEvaluations())
    first = score(_method("oracle", tiny_synth), tiny_synth, "Eyeglasses", cold, batch_size=6)
    n_test = len(tiny_synth.dataset("test"))
    assert len(cold.inputs) == n_test                      # one entry per scored test image
    again = score(_method("oracle", tiny_synth), tiny_synth, "Eyeglasses", cold, batch_size=4)  # from the cache
    other = score(_method("identity", tiny_synth), tiny_synth, "Smiling", cold, batch_size=6)
    fresh = score(_method("identity", tiny_synth), tiny_synth, "Smiling",
                  dataclasses.replace(bundle, inputs=InputEvaluations()), batch_size=6)
    assert len(cold.inputs) == n_test
    for k in ("attr_acc", "attr_preservation", "id_sim", "id_match", "realism", "realism_floor", "kid"):
        assert again[k] == pytest.approx(first[k], rel=1e-5, abs=1e-6), k
        assert other[k] == pytest.approx(fresh[k], rel=1e-5, abs=1e-6), k


def test_ddp_two_processes_match_one(tiny_synth, bundle):
    one = score(_method("oracle", tiny_synth), tiny_synth, "Smiling", bundle, batch_size=5)
    two = score(_method("oracle", tiny_synth), tiny_synth, "Smiling", bundle, batch_size=5,
                trainer_kwargs={"strategy": "ddp_spawn", "devices": 2, "accelerator": "cpu"})
    assert two["device"] == "cpux2"
    for k in ("n_images", "attr_acc", "attr_acc_add", "attr_acc_remove", "attr_preservation", "id_sim",
              "id_match", "realism", "realism_floor", "kid", "cf_l1", "cf_l1_in", "cf_l1_out", "cf_psnr", "cf_ssim"):
        assert two[k] == pytest.approx(one[k], rel=1e-5, abs=1e-7), k


def test_results_csv_refuses_duplicates_and_writes_atomically(tmp_path):
    path = tmp_path / "scores.csv"
    row = {c: float("nan") for c in SCORE_COLUMNS} | {"method": "identity", "dataset": "synthfaces",
                                                      "resolution": 32, "attribute": "Smiling", "strength": 1.0,
                                                      "seed": 0, "attr_acc": 0.1}
    append_rows(path, [row], SCORE_COLUMNS)
    with pytest.raises(DuplicateResultError, match="--overwrite"):
        append_rows(path, [row | {"attr_acc": 0.2}], SCORE_COLUMNS)
    assert pd.read_csv(path)["attr_acc"].tolist() == [0.1]          # the failed append lost nothing
    append_rows(path, [row | {"attr_acc": 0.3}], SCORE_COLUMNS, overwrite=True)
    append_rows(path, [row | {"attribute": "Young"}], SCORE_COLUMNS)
    df = pd.read_csv(path)
    assert len(df) == 2 and list(df.columns) == SCORE_COLUMNS
    assert df.set_index("attribute").loc["Smiling", "attr_acc"] == 0.3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert math.isnan(df["kid"][0])


class _RecordingMethod(get_method("identity")):
    """The identity edit, recording whether each call got exemplars; declares both editing modes."""

    edit_modes = ("latent", "reference")
    needs_training = False

    def edit(self, images, src_attrs, tgt_attrs, strength=1.0, reference=None):
        self.calls.append(reference is not None)
        return images.clone()


def test_reference_passed_only_in_reference_mode(tiny_synth, bundle):
    m = _RecordingMethod(attribute_names=tiny_synth.attribute_names, image_size=tiny_synth.resolution)
    m.calls = []
    latent = score(m, tiny_synth, "Smiling", bundle, max_images=8, batch_size=4)  # default = first mode
    assert latent["mode"] == "latent" and m.calls and not any(m.calls)
    m.calls = []
    ref = score(m, tiny_synth, "Smiling", bundle, max_images=8, batch_size=4, mode="reference")
    assert ref["mode"] == "reference" and m.calls and all(m.calls)
    with pytest.raises(ValueError, match="modes"):
        score(_method("identity", tiny_synth), tiny_synth, "Smiling", bundle, mode="reference")
