"""ELEGANT: training lowers the reconstruction loss, edits follow the contract, checkpoints round-trip."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from datamodules.synthfaces import SynthFacesDataModule
from methods.base import get_method, load_method
from methods.elegant import ELEGANT
from methods.elegant.pairs import OppositePairs

ATTRS = ["Smiling", "Eyeglasses", "Young"]
TINY = dict(base_channels=8, max_channels=64, num_layers=4, disc_base_channels=8, disc_max_channels=64,
            g_lr=1e-3, d_lr=1e-3, ema_beta=0.9)


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory) -> SynthFacesDataModule:
    dm = SynthFacesDataModule(attributes=ATTRS, resolution=32, batch_size=8, num_identities=12,
                              images_per_identity=4, cache_dir=str(tmp_path_factory.mktemp("cache")))
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def batch(datamodule) -> dict[str, torch.Tensor]:
    return next(iter(datamodule.test_dataloader()))


def recon_error(model: ELEGANT, images: torch.Tensor) -> float:
    with torch.no_grad():
        out = model.exchange(images, images.flip(0), k=0)
    return (F.mse_loss(out["A1"], images) + F.mse_loss(out["B1"], images.flip(0))).item()


@pytest.fixture(scope="module")
def trained(datamodule, batch, tmp_path_factory):
    L.seed_everything(0)
    model = ELEGANT(ATTRS, image_size=32, **TINY)
    before = recon_error(model, batch["image"])
    init_weight = model.encoder.layers[0][0].weight.detach().clone()
    trainer = L.Trainer(max_steps=160, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, datamodule=datamodule)
    path = tmp_path_factory.mktemp("ckpt") / "elegant.ckpt"
    trainer.save_checkpoint(path)
    return model.eval(), before, trainer, path, init_weight


def test_registered_with_capabilities():
    cls = get_method("elegant")
    assert cls is ELEGANT
    assert cls.needs_reference and cls.reference_guided and cls.supports_strength and cls.multi_attribute


def test_pairs_differ_on_the_attribute(datamodule):
    pairs = OppositePairs(datamodule.dataset("train"), seed=0)
    labels = datamodule.dataset("train").attrs
    values = labels[:16, 0]
    partner = pairs.partner_indices(values, 0)
    assert torch.equal(labels[partner, 0], 1 - values)


def test_training_lowers_reconstruction_and_stays_finite(trained, batch):
    model, before, trainer, _, init_weight = trained
    # 160 optimizer steps = 80 training steps (one D and one G update each), attributes taking turns
    assert int(model.train_steps_done) == 80 and trainer.global_step == 160
    after = recon_error(model, batch["image"])
    assert after < 0.5 * before, (before, after)
    for name, p in model.state_dict().items():
        assert torch.isfinite(p.float()).all(), name
    # the EMA copy used by edit follows the trained encoder without being it
    ema, live = model.encoder_ema.layers[0][0].weight, model.encoder.layers[0][0].weight
    assert not torch.equal(ema, live) and (ema - live).abs().max() < (live - init_weight).abs().max()
    for key in ("train/loss_d", "train/loss_g", "train/recon", "train/adv1", "train/adv2"):
        assert torch.isfinite(trainer.callback_metrics[key]), key


def test_edit_contract(trained, batch):
    model, _, _, _, _ = trained
    x, src = batch["image"], batch["attrs"]
    tgt = src.clone()
    tgt[:, 0] = 1 - tgt[:, 0]
    ref = x.flip(0)
    with torch.no_grad():
        out = model.edit(x, src, tgt, reference=ref)
        again = model.edit(x, src, tgt, reference=ref)
        keep = model.edit(x, src, tgt, strength=0.0, reference=ref)
        no_change = model.edit(x, src, src, reference=ref)
        other_ref = model.edit(x, src, src, reference=torch.zeros_like(x))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, again)                       # deterministic in eval mode
    assert torch.allclose(keep, no_change, atol=1e-6)    # strength 0 keeps the image's own parts
    assert torch.allclose(no_change, other_ref, atol=1e-6)   # nothing differs -> the reference is not read
    assert not torch.equal(out, no_change)                # the reference's part is used
    with pytest.raises(ValueError, match="reference"):
        model.edit(x, src, tgt)


def test_checkpoint_round_trip(trained, batch):
    model, _, _, path, _ = trained
    loaded = load_method(str(path)).eval()
    assert isinstance(loaded, ELEGANT) and loaded.attribute_names == ATTRS
    x, src = batch["image"], batch["attrs"]
    tgt = 1 - src
    with torch.no_grad():
        assert torch.equal(model.edit(x, src, tgt, strength=0.5, reference=x.flip(0)),
                           loaded.edit(x, src, tgt, strength=0.5, reference=x.flip(0)))
