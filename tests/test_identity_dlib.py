"""The optional dlib identity backend (installed by `make install`), on real-format folders the tests write."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_real import smooth_image, write_celeba

from datamodules.celeba import CelebADataModule
from evaluators.identity_dlib import BACKEND_NAME, DlibFaceEmbedder, dlib_available
from evaluators.identity_metrics import IdentityPreservation
from evaluators.suite import EvaluatorConfig, identity_backend, wants_dlib

pytestmark = pytest.mark.skipif(not dlib_available(), reason="needs the [dlib] extra (make install adds it)")


def images(n: int, seed: int, size: int = 48) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    arr = np.stack([np.asarray(smooth_image(rng, size, size)) for _ in range(n)])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1


def celeba(tmp_path: Path, identity: bool = True) -> CelebADataModule:
    info = write_celeba(tmp_path / "raw", n=36, width=64, height=64, identity=identity)
    return CelebADataModule(str(info.root), resolution=32, crop_size=64, batch_size=8, num_workers=0,
                            cache_dir=str(tmp_path / "cache"))


def test_embedder_gives_unit_deterministic_descriptors():
    model = DlibFaceEmbedder()
    x = images(3, seed=0)
    a, b = model(x), model(x)
    assert a.shape == (3, 128) and a.dtype == torch.float32
    assert torch.allclose(a.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(a, b)
    sim = a @ a.T
    assert (sim.diagonal() > 0.9999).all() and (sim[~torch.eye(3, dtype=torch.bool)] < 0.9999).all()
    assert model.seen == 6 and model.missed == 6   # smooth blobs are no faces: every one falls back to the box


def test_auto_picks_dlib_on_real_data_only(tmp_path, tiny_synth):
    dm = celeba(tmp_path)
    assert wants_dlib(dm, "auto") and wants_dlib(dm, "dlib") and not wants_dlib(dm, "trained")
    assert not wants_dlib(tiny_synth, "auto")
    with pytest.raises(ValueError, match="identity_backend"):
        wants_dlib(dm, "facenet")


def test_report_is_calibrated_on_labelled_test_identities_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTREDIT_CACHE", str(tmp_path / "evcache"))
    dm = celeba(tmp_path)
    rep = identity_backend(dm, EvaluatorConfig())
    assert rep.backend == BACKEND_NAME
    assert 0.0 <= rep.roc_auc <= 1.0 and math.isfinite(rep.threshold) and -1 <= rep.threshold <= 1
    assert rep.threshold_rule == "FAR=0.001 on test different-identity pairs"  # dlib has no val calibration
    meta = json.loads(Path(rep.cache_path).read_text())
    assert meta["pairs_same"] > 0 and meta["pairs_diff"] > 0 and meta["threshold"] == rep.threshold
    again = identity_backend(dm, EvaluatorConfig())
    assert again.threshold == rep.threshold and again.cache_path == rep.cache_path


def test_without_identity_labels_id_match_is_nan_not_zero(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTREDIT_CACHE", str(tmp_path / "evcache"))
    rep = identity_backend(celeba(tmp_path, identity=False), EvaluatorConfig(identity_backend="dlib"))
    assert math.isnan(rep.threshold)
    metric = IdentityPreservation(rep.threshold)
    e = torch.nn.functional.normalize(torch.randn(4, 128), dim=1)
    metric.update(e, e)
    out = metric.compute()
    assert out["id_sim"].item() == pytest.approx(1.0) and math.isnan(out["id_match"].item())
