"""The harness on the reference points, checked against independent computations; DDP = 1 process; CSVs."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch
from feature_spaces import PixelFeatures

from benchmark.results_io import DuplicateResultError, append_rows
from evaluators.harness import InputEvaluations, ScoringModule
from evaluators.suite import SCORE_COLUMNS, EvaluatorConfig, build_evaluators, score
from methods import get_method


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
    # ... but success needs the flip seen (source read on the input): a no-op scores exactly 0, false reads or not
    assert row["success"] == 0.0 and row["success_hi"] == 0.0
    # preservation is judged against the true source labels, so the no-op pays the classifier's errors
    others = [a for a in clf.attribute_names if a != "Smiling" and a in tiny_synth.attribute_names]
    truth = torch.stack([ds.attrs[:, tiny_synth.attribute_names.index(a)] for a in others], 1)
    read = clf.predict(images)[:, [clf.attribute_names.index(a) for a in others]]
    if len(others) == len(clf.attribute_names) - 1:
        assert row["attr_preservation"] == pytest.approx(float((read == truth).float().mean()), abs=1e-6)
    assert row["cf_l1_out"] == 0.0 and row["cf_l1_in"] > 0
    assert row["realism_reference"] == "counterfactual-train"
    assert row["n_images"] == len(ds)
    assert row["success"] <= row["attr_acc"] + 1e-9


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
    # the exact edit is its own ceiling, and scores its own floor against the counterfactual-train reference
    assert row["success"] == pytest.approx(row["success_ceiling"], abs=1e-12)
    assert row["realism"] == pytest.approx(row["realism_floor"], rel=1e-9)
    assert row["success_lo"] <= row["success"] <= row["success_hi"]


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
    assert len(cold.inputs) == 2 * n_test                  # per test image: the input and its exact edit
    again = score(_method("oracle", tiny_synth), tiny_synth, "Eyeglasses", cold, batch_size=4)  # from the cache
    other = score(_method("identity", tiny_synth), tiny_synth, "Smiling", cold, batch_size=6)
    fresh = score(_method("identity", tiny_synth), tiny_synth, "Smiling",
                  dataclasses.replace(bundle, inputs=InputEvaluations()), batch_size=6)
    assert len(cold.inputs) == 3 * n_test                  # + the exact Smiling edits
    for k in ("success", "success_ceiling", "attr_acc", "attr_preservation", "id_sim", "id_match", "realism",
              "realism_floor", "kid"):
        assert again[k] == pytest.approx(first[k], rel=1e-5, abs=1e-6), k
        assert other[k] == pytest.approx(fresh[k], rel=1e-5, abs=1e-6), k


def test_realism_orders_oracle_ghost_identity(tiny_synth, bundle):
    """Against the counterfactual-train reference the exact edit sits at the floor, the half-way blend of input
    and exact edit (the oracle at strength 0.5) above it and the no-op highest — the order the all-train
    reference inverted."""
    pix = dataclasses.replace(bundle, space=PixelFeatures(), references={}, inputs=InputEvaluations())
    rows = {name: score(_method(m, tiny_synth), tiny_synth, "Eyeglasses", pix, strength=s, batch_size=16)
            for name, m, s in (("oracle", "oracle", 1.0), ("ghost", "oracle", 0.5), ("identity", "identity", 1.0))}
    fd = {k: r["realism"] for k, r in rows.items()}
    assert fd["oracle"] == pytest.approx(rows["oracle"]["realism_floor"], rel=1e-9)
    assert fd["oracle"] < fd["ghost"] < fd["identity"], fd
    assert rows["oracle"]["kid"] < rows["identity"]["kid"]


def test_ddp_two_processes_match_one(tiny_synth, bundle, tmp_path):
    """Uneven shards (an odd image count), several KID subsets, a method with errors (the half-way blend), the
    label-matched FD: every number and every per-image outcome is the same with 1 and 2 processes."""
    n = len(tiny_synth.dataset("test")) - 1  # odd: 17 of the tiny set's 18
    assert n % 2 == 1
    kw = {"batch_size": 4, "max_images": n, "kid_subset_size": 6, "strength": 0.5, "min_realism_images": 5}
    one = score(_method("oracle", tiny_synth), tiny_synth, "Smiling", bundle, per_image_path=tmp_path / "one.csv",
                **kw)
    two = score(_method("oracle", tiny_synth), tiny_synth, "Smiling", bundle, per_image_path=tmp_path / "two.csv",
                trainer_kwargs={"strategy": "ddp_spawn", "devices": 2, "accelerator": "cpu"}, **kw)
    assert two["device"] == "cpux2" and one["n_images"] == n
    assert one["cf_l1"] > 0 and one["kid_std"] > 0       # a method with errors, KID over several subsets
    assert math.isfinite(one["realism_matched"])          # the label-matched FD is synced over ranks too
    skip = {"device", "timestamp", "code_version", "edit_ms"}  # wall-clock time differs run to run
    for k in SCORE_COLUMNS:
        if k in skip:
            continue
        if isinstance(one[k], float):
            assert two[k] == pytest.approx(one[k], rel=1e-5, abs=1e-7, nan_ok=True), k
        else:
            assert two[k] == one[k], k
    a, b = pd.read_csv(tmp_path / "one.csv"), pd.read_csv(tmp_path / "two.csv")
    assert len(a) == n and a["index"].is_unique
    pd.testing.assert_frame_equal(a, b, rtol=1e-5)


def test_success_from_hand_made_outcomes(tiny_synth, bundle):
    """Joint success is the AND of the flip seen (source read on the input, target on the edit), identity matched
    and every other attribute kept."""
    module = ScoringModule(_method("identity", tiny_synth), bundle, tiny_synth, "Smiling")
    t = module.clf_column
    k = len(module.classifier.attribute_names)
    expected = torch.zeros(4, k)
    pred = expected.clone()
    tgt = torch.zeros(4, len(tiny_synth.attribute_names))
    tgt[:, module.column] = 1.0
    pred[:, t] = torch.tensor([1.0, 1.0, 0.0, 1.0])        # image 2 misses the target
    pred[1, (t + 1) % k] = 1.0                              # image 1 changes another attribute
    emb_in = torch.nn.functional.normalize(torch.ones(4, 8), dim=1)
    emb = emb_in.clone()
    emb[3] = -emb[3]                                        # image 3 loses identity
    read, cos, frac, kept = module._outcomes(pred, emb_in, emb, expected, tgt)
    assert read.tolist() == [1, 1, 0, 1] and kept.tolist() == [1, 0, 1, 1]
    assert frac[1] == pytest.approx(1 - 1 / (k - 1))
    seen = torch.ones(4)
    assert module._success(seen, read, cos, kept).tolist() == [1, 0, 0, 0]
    # the input already read as the target: not a change the judge saw, so no success (a no-op scores 0)
    pred_in = expected.clone()
    pred_in[0, t] = 1.0
    src = tgt.clone()
    src[:, module.column] = 0.0
    seen = module._source_read(pred_in, src)
    assert seen.tolist() == [0, 1, 1, 1]
    assert module._success(seen, read, cos, kept).tolist() == [0, 0, 0, 0]
    read2 = torch.ones(4)
    kept2 = torch.ones(4)
    cos2 = torch.ones(4)
    assert module._success(seen, read2, cos2, kept2).tolist() == [0, 1, 1, 1]


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


def test_real_layout_scores_against_the_target_domain(tmp_path):
    """Real data (no counterfactuals): headline realism is the target-domain protocol, with floors and notes."""
    from fixtures_real import write_celeba

    from datamodules.celeba import CelebADataModule

    write_celeba(tmp_path / "data", n=240)
    dm = CelebADataModule(str(tmp_path / "data"), resolution=16, crop_size=40, batch_size=16, num_workers=0,
                          cache_dir=str(tmp_path / "cache"), attributes=["Smiling", "Young"])
    real = build_evaluators(dm, EvaluatorConfig(classifier_epochs=1, identity_epochs=1, identity_renders=256,
                                                batch_size=32,
                                                identity_backend="trained", realism="attrclf"))
    row = score(_method("identity", dm), dm, "Smiling", real, batch_size=16, min_realism_images=5,
                per_image_path=tmp_path / "pi.csv")
    assert row["realism_reference"] == "target-domain-train"
    assert math.isnan(row["cf_l1"]) and math.isnan(row["success_ceiling"])
    refs = real.realism_references(dm, "Smiling")
    if refs["dom0"] is not None and refs["dom1"] is not None:
        assert math.isfinite(row["realism"]) and row["realism"] == row["realism_domain"]
        assert math.isfinite(row["realism_floor"])
    else:
        assert math.isnan(row["realism"]) and "train images" in row["realism_note"]
    assert len(pd.read_csv(tmp_path / "pi.csv")) == row["n_images"]


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


class _OneAttributeMethod(get_method("identity")):
    """The identity edit of a model that knows one attribute (per-attribute training), recording what it gets."""

    multi_attribute = False

    def edit(self, images, src_attrs, tgt_attrs, strength=1.0, reference=None):
        self.check_edit_inputs(images, src_attrs, tgt_attrs, reference)  # (B, 1): its own attribute only
        self.flipped.append(bool((src_attrs != tgt_attrs).all()))
        return images.clone()


def test_per_attribute_model_gets_its_own_column(tiny_synth, bundle):
    """A model trained on one attribute is scored on a data module selecting more: its edit gets that attribute's
    column, flipped, and the row equals the multi-attribute no-op's (the judges read every attribute)."""
    m = _OneAttributeMethod(attribute_names=["Eyeglasses"], image_size=tiny_synth.resolution)
    m.flipped = []
    assert tiny_synth.attribute_names.index("Eyeglasses") > 0  # a column other than the first
    row = score(m, tiny_synth, "Eyeglasses", bundle, max_images=8, batch_size=4)
    assert m.flipped and all(m.flipped)
    full = score(_method("identity", tiny_synth), tiny_synth, "Eyeglasses", bundle, max_images=8, batch_size=4)
    for k in ("attr_acc", "attr_preservation", "id_match", "success"):
        assert row[k] == pytest.approx(full[k], nan_ok=True), k
    with pytest.raises(ValueError, match="trained on"):
        score(m, tiny_synth, "Smiling", bundle, max_images=8)
    with pytest.raises(ValueError, match="one attribute per model"):
        _OneAttributeMethod(attribute_names=["Smiling", "Eyeglasses"])
