"""``aif`` (IFcVAE-GAN): training lowers the losses, edits follow the contract, checkpoints round-trip."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from datamodules.synthfaces import SynthFacesDataModule
from methods.aif import AIFMethod
from methods.base import get_method, load_method

ATTRS = ["Smiling", "Eyeglasses"]
# The demo's loss settings on narrow networks (see methods/aif/configs/demo.yaml).
TINY = dict(nz=32, enc_width=16, dec_width=16, dis_width=8, max_width=32, bottom=4, aux_hidden=32,
            optimizer="adam", lr=2e-3, kl_weight=0.01, class_weight=1.0, aux_weight=0.1, gan_weight=0.05,
            rec_class_weight=0.1, aux_adv_loss="nonsaturating", detach_classifier=False, logvar_init=-4.0)
STEPS = 120  # training batches (each = 3 optimizer steps)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    dm = SynthFacesDataModule(attributes=ATTRS, resolution=32, num_identities=12, images_per_identity=4,
                              batch_size=16, cache_dir=str(tmp_path_factory.mktemp("aif-synth")))
    dm.setup()
    return dm


def fixed_batch(dm):
    ds = dm.dataset("train")
    items = [ds[i] for i in range(16)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


@torch.no_grad()
def eval_losses(model: AIFMethod, batch) -> tuple[float, float]:
    """Deterministic reconstruction L1 (z = mu) and label BCE on a fixed batch, in eval mode.

    (The Bernoulli reconstruction loss itself has a floor at the pixels' entropy, so L1 shows progress.)
    """
    model.eval()
    mu, _, y_hat = model.encode(batch["image"])
    rec = (model.decode(mu, y_hat) - batch["image"]).abs().mean().item()
    cls = torch.nn.functional.binary_cross_entropy(y_hat, batch["attrs"]).item()
    model.train()
    return rec, cls


@pytest.fixture(scope="module")
def trained(data):
    """STEPS training batches, all the same tiny batch of 16 synthetic faces (a real Lightning fit)."""
    torch.manual_seed(0)
    model = AIFMethod(ATTRS, 32, **TINY)
    batch = fixed_batch(data)
    before = eval_losses(model, batch)
    trainer = L.Trainer(max_steps=3 * STEPS, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train_dataloaders=DataLoader([batch] * STEPS, batch_size=None))
    return model, trainer, batch, before


def test_registered():
    assert get_method("aif") is AIFMethod
    caps = AIFMethod.capabilities()
    assert caps["multi_attribute"] and caps["supports_strength"] and caps["needs_training"]


def test_training_lowers_losses_and_stays_finite(trained):
    model, trainer, batch, (rec0, cls0) = trained
    assert model.iterations == STEPS and trainer.global_step == 3 * STEPS  # 3 optimizer steps per batch
    rec1, cls1 = eval_losses(model, batch)
    assert rec1 < 0.8 * rec0, (rec0, rec1)
    assert cls1 < 0.5 * cls0, (cls0, cls1)
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name
    for key in ("train/rec", "train/kl", "train/aux", "train/dis", "train/gen", "train/aux_enc", "train/rec_class"):
        assert torch.isfinite(trainer.callback_metrics[key]), key


def test_edit_contract(trained):
    model, _, batch, _ = trained
    model.eval()
    x, src = batch["image"][:6], batch["attrs"][:6]
    tgt = src.clone()
    tgt[:, 0] = 1 - tgt[:, 0]
    with torch.no_grad():
        out = model.edit(x, src, tgt)
        again = model.edit(x, src, tgt)
        mu, _, y_hat = model.encode(x)
        rec = model.decode(mu, y_hat)
        zero = model.edit(x, src, tgt, strength=0.0)
        y = y_hat.clone()
        y[:, 0] = tgt[:, 0]                      # only the edited unit is replaced, by its target value
        expected = model.decode(mu, y)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, again)               # deterministic in eval mode
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(zero, rec, atol=1e-6)  # strength 0 = the reconstruction
    assert not torch.allclose(out, zero)
    with pytest.raises(ValueError):
        model.edit(x, src[:, :1], tgt)


def test_checkpoint_round_trip(trained, tmp_path):
    model, trainer, batch, _ = trained
    path = tmp_path / "aif.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_method(str(path)).eval()
    assert isinstance(loaded, AIFMethod) and loaded.attribute_names == ATTRS
    model.eval()
    x, src = batch["image"][:4], batch["attrs"][:4]
    tgt = 1 - src
    with torch.no_grad():
        assert torch.equal(model.edit(x, src, tgt, strength=0.7), loaded.edit(x, src, tgt, strength=0.7))


@pytest.mark.parametrize("form", ["minimax", "nonsaturating"])
def test_encoder_step_defeats_the_auxiliary_net(data, form):
    """One encoder step on the adversarial term makes the (fixed) auxiliary net worse at reading y from z."""
    torch.manual_seed(0)
    model = AIFMethod(ATTRS, 32, **{**TINY, "aux_adv_loss": form})
    batch = fixed_batch(data)
    x, y = batch["image"], batch["attrs"]
    aux_bce = lambda: torch.nn.functional.binary_cross_entropy_with_logits(model.aux(model.encoder(x)[0]), y)  # noqa: E731
    before = aux_bce().item()
    opt = torch.optim.SGD(model.encoder.parameters(), lr=0.5)
    model.aux_adversarial(model.aux(model.encoder(x)[0]), y).backward()
    opt.step()
    assert aux_bce().item() > before
    if form == "minimax":  # -BCE capped at 100 per element, as the official code's BCE
        huge = torch.full((2, len(ATTRS)), 1e4)
        assert model.aux_adversarial(huge, torch.zeros(2, len(ATTRS))).item() == pytest.approx(-100.0)
