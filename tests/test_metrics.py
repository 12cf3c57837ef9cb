"""Metric maths checked against independent computations (NumPy/SciPy, closed forms, naive loops)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from evaluators.attribute_metrics import AttributeManipulation, AttributePreservation
from evaluators.counterfactual import CounterfactualError, change_region
from evaluators.frechet import (
    FrechetDistance,
    KernelDistance,
    feature_stats,
    frechet_distance,
    kernel_distance,
    polynomial_mmd2,
)
from evaluators.identity_metrics import IdentityPreservation
from evaluators.intervals import identity_bootstrap


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_metric_matches_scipy_on_samples():
    rng = np.random.RandomState(0)
    a = rng.randn(4, 4)
    real = rng.multivariate_normal(np.zeros(4), a @ a.T + np.eye(4), size=3000)
    fake = rng.multivariate_normal(np.ones(4) * 0.5, np.eye(4) * 2, size=2000)
    mu_r, sig_r = real.mean(0), np.cov(real, rowvar=False)
    mu_f, sig_f = fake.mean(0), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(sig_f @ sig_r).real
    independent = np.sum((mu_f - mu_r) ** 2) + np.trace(sig_f + sig_r - 2 * covmean)
    metric = FrechetDistance(*feature_stats(torch.from_numpy(real)))
    for chunk in np.array_split(fake, 7):  # update in pieces: the state must add up exactly
        metric.update(torch.from_numpy(chunk))
    assert float(metric.compute()) == pytest.approx(independent, rel=1e-6)


def test_frechet_of_a_distribution_with_itself_is_near_zero_and_grows_with_shift():
    rng = np.random.RandomState(1)
    real = rng.randn(5000, 3)
    ref = feature_stats(torch.from_numpy(real))
    same = FrechetDistance(*ref)
    same.update(torch.from_numpy(rng.randn(5000, 3)))
    shifted = FrechetDistance(*ref)
    shifted.update(torch.from_numpy(rng.randn(5000, 3) + 2.0))
    assert float(same.compute()) < 0.02
    assert float(shifted.compute()) == pytest.approx(12.0, rel=0.05)  # |shift|^2 = 3 * 2^2


def _naive_mmd2(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_polynomial_mmd_matches_naive_loops():
    rng = np.random.RandomState(2)
    x, y = rng.randn(12, 5), rng.randn(9, 5) + 0.3
    assert polynomial_mmd2(x, y) == pytest.approx(_naive_mmd2(x, y), rel=1e-9)


def test_kid_float32_kernels_match_float64():
    rng = np.random.RandomState(4)
    gen, ref = rng.randn(600, 512), rng.randn(900, 512) * 1.1 + 0.2
    exact, _ = kernel_distance(gen, ref, subsets=5, subset_size=500, dtype=torch.float64)
    fast, _ = kernel_distance(gen, ref, subsets=5, subset_size=500, dtype=torch.float32)
    assert exact > 0.01 and fast == pytest.approx(exact, rel=1e-4)


def test_kid_known_cases():
    rng = np.random.RandomState(3)
    ref = rng.randn(2000, 8)
    same = KernelDistance(ref, subsets=20, subset_size=500)
    same.update(torch.from_numpy(rng.randn(2000, 8)))
    far = KernelDistance(ref, subsets=20, subset_size=500)
    far.update(torch.from_numpy(rng.randn(2000, 8) + 1.0))
    assert abs(float(same.compute()[0])) < 0.01
    assert float(far.compute()[0]) > 0.1


def test_attribute_metrics_by_hand():
    m = AttributeManipulation()
    m.update(torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    r = m.compute()
    assert float(r["attr_acc"]) == 0.5 and float(r["attr_acc_add"]) == 0.5 and float(r["attr_acc_remove"]) == 0.5
    p = AttributePreservation()
    before = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    after = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    p.update(before, after, target_column=0)  # non-target: (0,0),(1,0) | (0,1),(0,0) -> 2 of 4 kept
    assert float(p.compute()) == 0.5


def test_identity_metric_by_hand():
    m = IdentityPreservation(threshold=0.5)
    a = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), dim=1)
    b = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    m.update(a, b)
    r = m.compute()
    assert float(r["id_sim"]) == pytest.approx(0.5) and float(r["id_match"]) == 0.5


def test_counterfactual_error_regions():
    inputs = torch.zeros(2, 3, 8, 8)
    truth = inputs.clone()
    truth[:, :, 2:4, 2:4] = 1.0                 # the exact edit changes a 2x2 patch
    region = change_region(inputs, truth, dilate=1)
    assert int(region[0].sum()) == 16           # dilated to 4x4
    perfect = CounterfactualError()
    perfect.update(inputs, truth.clone(), truth)
    r = perfect.compute()
    assert float(r["cf_l1"]) == 0 and float(r["cf_l1_in"]) == 0 and float(r["cf_ssim"]) == pytest.approx(1.0)
    noop = CounterfactualError()
    noop.update(inputs, inputs.clone(), truth)
    r = noop.compute()
    assert float(r["cf_l1_in"]) == pytest.approx(4 / 16)   # 4 changed of 16 region pixels, error 1
    assert float(r["cf_l1_out"]) == 0.0
    assert float(r["cf_l1"]) == pytest.approx(4 / 64)


def test_identity_bootstrap_covers_the_true_rate():
    """~95% of seeded Bernoulli experiments (40 identities x 5 images) hold the true rate in their interval."""
    rng = np.random.default_rng(0)
    identity = np.repeat(np.arange(40), 5)
    hits = 0
    for trial in range(200):
        values = (rng.random(len(identity)) < 0.3).astype(float)
        lo, hi = identity_bootstrap(values, identity, resamples=400, seed=trial)
        hits += lo <= 0.3 <= hi
    assert 0.90 <= hits / 200 <= 0.99


def test_identity_bootstrap_resamples_identities_not_images():
    """Images of one identity move together: the interval of perfectly clustered outcomes is wider."""
    identity = np.repeat(np.arange(10), 10)
    clustered = (identity < 5).astype(float)                # whole identities succeed or fail
    mixed = np.tile([1.0, 0.0], 50)                          # every identity half-way
    lo_c, hi_c = identity_bootstrap(clustered, identity)
    lo_m, hi_m = identity_bootstrap(mixed, identity)
    assert hi_m - lo_m == pytest.approx(0.0) and hi_c - lo_c > 0.3


def test_frechet_matches_closed_form_for_full_covariances():
    """Tr((S1 S2)^1/2) by eigen-decompositions equals the closed form for commuting covariances."""
    rng = np.random.RandomState(5)
    q, _ = np.linalg.qr(rng.randn(6, 6))
    a, b = rng.rand(6) + 0.1, rng.rand(6) + 0.1
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T                    # same eigenvectors: (S1 S2)^1/2 = Q diag(sqrt(ab)) Q^T
    expected = np.sum(a) + np.sum(b) - 2 * np.sum(np.sqrt(a * b))
    assert frechet_distance(np.zeros(6), s1, np.zeros(6), s2) == pytest.approx(expected, rel=1e-9)
    singular = np.diag([1.0, 0.0, 0.0])                      # rank-deficient: no NaN, no imaginary part
    assert frechet_distance(np.zeros(3), singular, np.zeros(3), singular) == pytest.approx(0.0, abs=1e-9)
