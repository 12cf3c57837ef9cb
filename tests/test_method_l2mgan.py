"""L2M-GAN: training lowers the cycle loss and stays finite, the edit contract holds, checkpoints round-trip."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from datamodules.synthfaces import SynthFacesDataModule
from methods.base import get_method, load_method
from methods.l2mgan import L2MGAN
from methods.l2mgan.networks import domain_index

ATTRS = ["Smiling", "Eyeglasses", "Young"]
TINY = {"style_dim": 16, "base_dim": 8, "max_conv_dim": 16, "lr": 1e-3, "ema_beta": 0.9}


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory) -> SynthFacesDataModule:
    dm = SynthFacesDataModule(attributes=ATTRS, resolution=32, batch_size=8, num_identities=12,
                              images_per_identity=4, cache_dir=str(tmp_path_factory.mktemp("cache")))
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def trained(datamodule, tmp_path_factory):
    """A tiny model trained 40 iterations; returns (model, trainer, cycle loss before, after, initial EMA weight)."""
    torch.manual_seed(0)
    model = L2MGAN(ATTRS, image_size=32, **TINY)
    batch = next(iter(datamodule.train_dataloader()))
    x = batch["image"]
    attribute = torch.arange(x.shape[0]) % len(ATTRS)
    value = batch["attrs"][torch.arange(x.shape[0]), attribute]
    src, tgt = domain_index(attribute, value), domain_index(attribute, 1 - value)

    def cycle_loss() -> float:
        with torch.no_grad():
            return float(model.generator_loss(x, attribute, src, tgt)[1]["g_cyc"])

    before = cycle_loss()
    ema_before = model.generator_ema.from_rgb.weight.detach().clone()
    trainer = L.Trainer(max_steps=80, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path_factory.mktemp("run")))
    trainer.fit(model, datamodule=datamodule)
    return model, trainer, before, cycle_loss(), ema_before


def test_registered_with_capabilities():
    cls = get_method("l2mgan")
    assert cls is L2MGAN
    caps = cls.capabilities()
    assert caps["supports_strength"] and caps["reference_guided"] and caps["multi_attribute"]
    assert cls.edit_modes == ("latent", "reference")  # T's latent edit is the default row
    assert not caps["needs_reference"] and caps["needs_training"]


def test_training_lowers_cycle_loss_and_stays_finite(trained):
    model, _, before, after, ema_before = trained
    assert int(model.iterations) == 40  # max_steps 80 = 40 x (one D step + one G step)
    assert after < 0.8 * before, (before, after)
    for name, p in model.state_dict().items():
        if p.is_floating_point():
            assert torch.isfinite(p).all(), name
    assert not torch.equal(model.generator_ema.from_rgb.weight, ema_before)  # the EMA generator follows training


def test_edit_contract(trained, datamodule):
    model = trained[0]
    model.eval()
    batch = next(iter(datamodule.train_dataloader()))
    x, a = batch["image"][:6], batch["attrs"][:6]
    t = a.clone()
    t[:3, 0] = 1 - t[:3, 0]   # rows 0-2: flip Smiling
    t[3:5] = 1 - t[3:5]       # rows 3-4: flip every attribute (applied one after the other); row 5: no edit
    with torch.no_grad():
        y = model.edit(x, a, t)
        y_again = model.edit(x, a, t)
        y_weak = model.edit(x, a, t, strength=0.0)
        y_ref = model.edit(x, a, t, reference=x.flip(0))
    for out in (y, y_weak, y_ref):
        assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
        assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(y, y_again)               # deterministic in eval mode
    assert torch.equal(y[5], x[5])               # nothing to change: returned unchanged
    assert not torch.allclose(y[:5], x[:5])       # edited rows changed
    assert not torch.allclose(y[:5], y_weak[:5])  # strength changes the edit
    assert not torch.allclose(y[:5], y_ref[:5])   # the reference changes the edit
    with pytest.raises(ValueError):
        model.edit(x, a, t, reference=x[:2])


def test_latent_mode_edits_through_the_transformer(trained, datamodule):
    """Latent mode (no reference) runs T: zeroing T's weights changes the edit; the reference edit does not use T.
    At strength (the official ``degree``) d the code is s_unrel + s_rel + d * (T(s_rel) - s_rel)."""
    import copy

    model = copy.deepcopy(trained[0]).eval()
    batch = next(iter(datamodule.test_dataloader()))
    x, a = batch["image"], batch["attrs"]
    t = a.clone()
    t[:, 1] = 1 - t[:, 1]  # flip Eyeglasses only
    with torch.no_grad():
        latent, ref = model.edit(x, a, t), model.edit(x, a, t, reference=x.flip(0))
        attribute = torch.full((x.shape[0],), 1)
        src, tgt = domain_index(attribute, a[:, 1].long()), domain_index(attribute, t[:, 1].long())
        s, s_unrel, s_rel, s_rel_t = model._styles(model.style_encoder_ema, model.style_transformer_ema, x,
                                                   attribute, src, tgt)
        by_hand = model.generator_ema(x, s_unrel + s_rel + 0.5 * (s_rel_t - s_rel)).clamp(-1, 1)
        assert torch.allclose(model.edit(x, a, t, strength=0.5), by_hand, atol=1e-5)
        for p in model.style_transformer_ema.transformers.parameters():
            p.zero_()
        assert not torch.allclose(model.edit(x, a, t), latent, atol=1e-4), "latent mode must run T"
        assert torch.allclose(model.edit(x, a, t, reference=x.flip(0)), ref, atol=1e-6)


def test_checkpoint_round_trip(trained, datamodule, tmp_path):
    model, trainer = trained[:2]
    path = tmp_path / "l2mgan.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_method(str(path))
    assert isinstance(loaded, L2MGAN) and loaded.attribute_names == ATTRS and int(loaded.iterations) == 40
    model.eval()
    loaded.eval()
    batch = next(iter(datamodule.test_dataloader()))
    x, a = batch["image"], batch["attrs"]
    t = 1 - a
    with torch.no_grad():
        assert torch.equal(model.edit(x, a, t, strength=0.7), loaded.edit(x, a, t, strength=0.7))
        assert torch.equal(model.edit(x, a, t, reference=x.flip(0)), loaded.edit(x, a, t, reference=x.flip(0)))


def test_high_pass_generator_matches_official_layout():
    """w_hpf > 0: an extra downsampling (8 px bottleneck) and high-pass skips at S/8..S/2, as the official 256 px."""
    from methods.l2mgan.networks import Generator

    assert Generator(256, 64, 64, 512, bottleneck_size=8, w_hpf=1.0).skip_sizes == {32, 64, 128}
    g = Generator(32, 16, 8, 16, bottleneck_size=8, w_hpf=1.0)
    assert g.skip_sizes == {16} and len(g.encode) == 4
    x, s = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 16)
    assert g(x, s).shape == x.shape
    model = L2MGAN(ATTRS, image_size=32, bottleneck_size=8, w_hpf=1.0, **TINY).eval()
    with torch.no_grad():
        assert model.edit(x, torch.zeros(2, 3), torch.ones(2, 3)).shape == x.shape


def test_edit_attribute_follows_the_balanced_sampler_domain():
    """With ``batch["domain"]`` (the balanced sampler's draw, 2k + v) a row edits attribute k from its domain."""
    model = L2MGAN(ATTRS, image_size=32, **TINY)
    attrs = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    domain = torch.tensor([0 * 2 + 1, 1 * 2 + 1, 2 * 2 + 0, 1 * 2 + 0])
    attribute, src, tgt = model.sample_edit_domains(attrs, domain)
    assert torch.equal(attribute, torch.tensor([0, 1, 2, 1]))
    assert torch.equal(src, domain) and torch.equal(tgt, domain ^ 1)
    attribute, src, tgt = model.sample_edit_domains(attrs)  # no domain: a random attribute, its current value
    assert torch.equal(src, domain_index(attribute, attrs[torch.arange(4), attribute]))


def test_trains_on_balanced_augmented_batches(tmp_path):
    """The configs' data options: training_step gets domain-tagged, augmented batches and edits their domains."""
    dm = SynthFacesDataModule(attributes=ATTRS, resolution=32, batch_size=8, num_identities=12,
                              images_per_identity=4, cache_dir=str(tmp_path / "cache"),
                              train_sampler="balanced", train_augment="crop_flip")
    torch.manual_seed(0)
    model = L2MGAN(ATTRS, image_size=32, **TINY)
    seen = []
    inner = model.sample_edit_domains

    def spy(attrs, domain=None):
        out = inner(attrs, domain)
        seen.append((domain, out[1]))
        return out

    model.sample_edit_domains = spy
    L.Trainer(max_steps=4, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
              default_root_dir=str(tmp_path / "run")).fit(model, datamodule=dm)
    assert len(seen) == 2 and int(model.iterations) == 2
    for domain, src in seen:
        assert domain is not None and torch.equal(src, domain)


def test_configs_use_the_release_sampler_and_augmentation(tmp_path):
    """demo.yaml and paper.yaml switch both on, declare no deviation for them, and the runner keeps them."""
    from pathlib import Path

    import yaml

    from benchmark.deviations import read_deviations
    from benchmark.runner import RunContext, effective_config

    folder = Path(__file__).resolve().parent.parent / "methods" / "l2mgan" / "configs"
    for name in ("demo", "paper"):
        cfg = yaml.safe_load((folder / f"{name}.yaml").read_text())
        data = cfg["data"]["init_args"]
        assert (data["train_sampler"], data["train_augment"]) == ("balanced", "crop_flip"), name
        whats = {d["what"] for d in read_deviations(folder / f"{name}.yaml")}
        assert not whats & {"domain sampler", "augmentation"}, name
    preset = {"method_config": "demo", "attributes": ATTRS,
              "data": {"name": "synthfaces", "init_args": {"resolution": 32, "batch_size": 4}}, "trainer": {}}
    ctx = RunContext(preset, "synthfaces", None, tmp_path / "out", attributes=ATTRS)
    data = effective_config(ctx, "l2mgan", 0, tmp_path / "unit")["data"]["init_args"]
    assert (data["train_sampler"], data["train_augment"], data["batch_size"]) == ("balanced", "crop_flip", 4)
