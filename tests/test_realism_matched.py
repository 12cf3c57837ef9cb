"""The label-matched realism reference: weighted-mixture statistics, the oracle against the no-op, NaN rows."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from feature_spaces import PixelFeatures

from evaluators.frechet import feature_stats, weighted_feature_stats
from evaluators.harness import InputEvaluations
from evaluators.realism import intended_labels, label_mix_weights, matched_reference, split_features, split_subset
from evaluators.suite import EvaluatorConfig, build_evaluators, score
from methods import get_method


def _method(name, dm):
    return get_method(name)(attribute_names=dm.attribute_names, image_size=dm.resolution)


def test_weighted_stats_equal_the_replicated_rows():
    """Integer frequency weights give the mean and covariance of the set with each row repeated w times."""
    g = torch.Generator().manual_seed(0)
    f = torch.randn(30, 6, generator=g, dtype=torch.float64)
    w = torch.randint(0, 4, (30,), generator=g)
    mu, sigma = weighted_feature_stats(f, w)
    rep_mu, rep_sigma = feature_stats(f.repeat_interleave(w, dim=0))
    np.testing.assert_allclose(mu, rep_mu, rtol=0, atol=1e-8)
    np.testing.assert_allclose(sigma, rep_sigma, rtol=0, atol=1e-8)
    with pytest.raises(ValueError):
        weighted_feature_stats(f, torch.zeros(30))


def test_label_mix_weights_give_the_targets_label_mix():
    labels = torch.tensor([[0, 0], [0, 0], [0, 1], [1, 1], [1, 1], [1, 1]], dtype=torch.float32)
    targets = torch.tensor([[0, 0], [1, 1], [1, 1], [1, 0]], dtype=torch.float32)
    w, matched = label_mix_weights(labels, targets)
    # [0,0]: 1 target / 2 images; [0,1]: no target; [1,1]: 2 targets / 3 images; [1,0] has no image
    np.testing.assert_allclose(w.numpy(), [0.5, 0.5, 0.0, 2 / 3, 2 / 3, 2 / 3])
    assert matched.tolist() == [True, True, True, False]
    assert float(w.sum()) == pytest.approx(3.0)


def test_matched_reference_is_the_mixture_of_label_groups(tiny_synth, bundle):
    """mu is the mean over matched edits of the mean of the train images with their intended labels, sigma
    the covariance of that mixture (unbiased over the matched edits), computed here group by group."""
    dm, indices = tiny_synth, list(range(len(tiny_synth.dataset("test"))))
    ref = matched_reference(bundle.space, dm, "Bangs", indices, min_images=5)
    assert ref.mu is not None and math.isfinite(ref.floor)
    feats = split_features(bundle.space, dm, "train").double()
    labels = dm.dataset("train").attrs[split_subset(dm, "train", 50_000)]
    groups = [feats[(labels == t).all(1)] for t in intended_labels(dm, "Bangs", indices)]
    groups = [g for g in groups if len(g)]
    assert len(groups) == len(indices) - ref.n_unmatched > 1
    mu = torch.stack([g.mean(0) for g in groups]).mean(0)
    second = torch.stack([(g - mu).T @ (g - mu) / len(g) for g in groups]).mean(0)
    np.testing.assert_allclose(ref.mu, mu.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ref.sigma, second.numpy() * len(groups) / (len(groups) - 1), rtol=1e-6, atol=1e-8)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """A synthetic set big enough for label matching (300 identities x 2 images: 30 test identities; 3 selected
    attributes: every
    intended label vector has train images) and its 1-epoch evaluators with 4x4-pixel realism features (the
    1-epoch classifier's features barely see an edit at this size)."""
    from datamodules.synthfaces import SynthFacesDataModule

    dm = SynthFacesDataModule(resolution=32, num_identities=300, images_per_identity=2, batch_size=32,
                              attributes=["Young", "Pale_Skin", "Bangs"],
                              cache_dir=str(tmp_path_factory.mktemp("synth-matched")))
    dm.setup()
    judges = build_evaluators(dm, EvaluatorConfig(classifier_epochs=1, identity_epochs=1, identity_renders=256,
                                                batch_size=32))
    return dm, dataclasses.replace(judges, space=PixelFeatures(), references={}, inputs=InputEvaluations())


def test_oracle_scores_below_the_no_op_against_the_matched_reference(faces):
    """The exact edit has the reference's labels, the no-op keeps the source's: against the label-matched
    reference the oracle is well below the no-op, and the floor (real test images matched the same way) is
    finite and the same for both."""
    dm, pix = faces
    rows = {m: score(_method(m, dm), dm, "Pale_Skin", pix, batch_size=64, min_realism_images=30)
            for m in ("oracle", "identity")}
    fd = {m: r["realism_matched"] for m, r in rows.items()}
    print("realism_matched", fd, "floor", rows["oracle"]["realism_matched_floor"])
    assert rows["oracle"]["n_images"] >= 30 and all(math.isfinite(v) for v in fd.values()), fd
    assert fd["oracle"] < 0.7 * fd["identity"], fd  # measured 0.66 vs 1.36
    floor = rows["oracle"]["realism_matched_floor"]
    assert math.isfinite(floor) and floor == rows["identity"]["realism_matched_floor"]
    assert "realism_matched:" not in rows["oracle"]["realism_note"]  # every edit matched, nothing NaN


def _pool_size(dm, attribute: str) -> int:
    """Train images whose selected labels equal the intended labels of some test image's edit (by tuples)."""
    test, col = dm.dataset("test").attrs.round().long().tolist(), dm.attribute_names.index(attribute)
    wanted = {tuple(a[:col] + [1 - a[col]] + a[col + 1:]) for a in test}
    return sum(tuple(a) in wanted for a in dm.dataset("train").attrs.round().long().tolist())


def test_too_small_pool_or_too_few_edits_give_nan_and_a_note(tiny_synth, bundle):
    pool = _pool_size(tiny_synth, "Smiling")
    assert pool < 18  # the tiny set has 18 test images: a minimum between the two is met by edits, not the pool
    row = score(_method("oracle", tiny_synth), tiny_synth, "Smiling", bundle, batch_size=16,
                min_realism_images=pool + 1)
    assert math.isnan(row["realism_matched"]) and math.isnan(row["realism_matched_floor"])
    assert f"realism_matched: {pool} train images have the edits' intended labels (< {pool + 1})" in row["realism_note"]
    few = score(_method("oracle", tiny_synth), tiny_synth, "Bangs", bundle, batch_size=16, max_images=8,
                min_realism_images=10)
    assert math.isnan(few["realism_matched"]) and "realism_matched: 8 edits (< 10)" in few["realism_note"]
