"""AttGAN: loss terms, the n_d schedule, shortcut / inject shapes, the editing path and its strength, checkpoints,
and two optimizer steps of the paper config at 128 px on a CelebAMask-HQ-layout folder."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from fixtures_real import paper_config_on_cpu, write_celebahq

from benchmark.train import make_cli
from datamodules.synthfaces import SynthFacesDataModule
from methods.attgan import AttGAN
from methods.attgan.module import generator_turn, step_decay_lr
from methods.attgan.networks import Discriminators, Generator
from methods.base import get_method, load_method

ATTRS = ["Smiling", "Eyeglasses", "Young"]
TINY = dict(enc_dim=8, dec_dim=8, num_layers=3, dis_dim=8, dis_fc_dim=32, dis_layers=3, lr=1e-3)
OFFICIAL_13 = ["Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows", "Eyeglasses", "Male",
               "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin", "Young"]


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory) -> SynthFacesDataModule:
    dm = SynthFacesDataModule(attributes=ATTRS, resolution=32, batch_size=8, num_identities=12,
                              images_per_identity=4, cache_dir=str(tmp_path_factory.mktemp("cache")))
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def batch(datamodule) -> dict[str, torch.Tensor]:
    return next(iter(datamodule.test_dataloader()))


@pytest.fixture(scope="module")
def trained(datamodule, tmp_path_factory):
    """12 training batches through Lightning: 10 D updates and 2 G updates (n_d 5)."""
    L.seed_everything(0)
    model = AttGAN(ATTRS, image_size=32, **TINY)
    trainer = L.Trainer(max_steps=12, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, datamodule=datamodule)
    path = tmp_path_factory.mktemp("ckpt") / "attgan.ckpt"
    trainer.save_checkpoint(path)
    return model.eval(), trainer, path


def adam_steps(params, loss_fn, steps: int, lr: float = 1e-3) -> list[float]:
    """``steps`` Adam updates of ``params`` on ``loss_fn() -> (total, watched)``; returns the watched values."""
    opt = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    watched = []
    for _ in range(steps):
        total, value = loss_fn()
        watched.append(value.item())
        opt.zero_grad()
        total.backward()
        opt.step()
    return watched


def test_registered_with_capabilities():
    cls = get_method("attgan")
    assert cls is AttGAN and cls.edit_modes == ("latent",)
    assert cls.supports_strength and cls.multi_attribute and cls.needs_training and not cls.reference_guided


def test_n_d_schedule_and_lr_decay(trained):
    # the official loop: D on batches 0-4, G on batch 5, ...
    assert [generator_turn(i, 5) for i in range(12)] == ([False] * 5 + [True]) * 2
    model, trainer, _ = trained
    # one optimizer step per batch, so Lightning's global_step equals the batches seen
    assert int(model.iterations_done) == 12 and trainer.global_step == 12
    opt_g, opt_d = trainer.optimizers
    steps = [int(next(iter(o.state.values()))["step"]) for o in (opt_g, opt_d)]
    assert steps == [2, 10]
    assert step_decay_lr(2e-4, 99, 100, 0.1) == 2e-4 and step_decay_lr(2e-4, 100, 100, 0.1) == pytest.approx(2e-5)
    for key in ("loss_d", "d_adv", "gp", "d_cls", "loss_g", "g_adv", "g_cls", "g_rec", "lr"):
        assert torch.isfinite(trainer.callback_metrics[f"train/{key}"]), key


def test_shortcut_and_inject_shapes():
    k = 3
    g = Generator(k, 32, enc_dim=8, dec_dim=8, num_layers=4, shortcut_layers=2, inject_layers=2)
    # decoder inputs: bottleneck 64 + code; then 64 out + enc skip 32 + code; 32 + skip 16 + code; 16 alone
    assert [layer[0].in_channels for layer in g.dec_layers] == [64 + k, 64 + 32 + k, 32 + 16 + k, 16]
    seen = {}
    g.dec_layers[1].register_forward_pre_hook(lambda mod, inp: seen.update(in1=inp[0]))
    x, code = torch.rand(2, 3, 32, 32) * 2 - 1, torch.tensor([[0.5, -0.5, 0.5], [-0.5, -0.5, 0.5]])
    out = g(x, code)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() < 1
    # the code is re-injected (tiled over the 4 x 4 map) after the skip at decoder layer 0
    assert seen["in1"].shape == (2, 64 + 32 + k, 4, 4)
    assert torch.equal(seen["in1"][:, -k:], code[:, :, None, None].expand(-1, -1, 4, 4))
    capped = Generator(k, 32, enc_dim=8, dec_dim=8, num_layers=4, shortcut_layers=9, inject_layers=9)
    assert capped.shortcut_layers == 3 and capped.inject_layers == 3   # at most num_layers - 1
    adv, cls = Discriminators(k, 32, dim=8, fc_dim=16, n_layers=3)(x)
    assert adv.shape == (2, 1) and cls.shape == (2, k)


def test_loss_terms_on_a_fixed_batch(batch):
    torch.manual_seed(0)
    model = AttGAN(ATTRS, image_size=32, **TINY)
    x, a = batch["image"], batch["attrs"]
    b = a.flip(0)
    d = model.discriminator_losses(x, a, b)
    assert all(torch.isfinite(v) for v in d.values())
    assert torch.allclose(d["loss_d"], d["d_adv"] + 10.0 * d["gp"] + 1.0 * d["d_cls"])
    assert d["gp"] > 0
    # the penalty reaches the critic's weights; D's loss never trains G (the fakes are detached)
    d_params = list(model.discriminator.parameters())
    grads = torch.autograd.grad(d["gp"], d_params, retain_graph=True, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    d["loss_d"].backward()
    assert all(p.grad is None for p in model.generator.parameters())
    g = model.generator_losses(x, a, b)
    assert all(torch.isfinite(v) for v in g.values())
    assert torch.allclose(g["loss_g"], g["g_adv"] + 10.0 * g["g_cls"] + 100.0 * g["g_rec"])


def test_d_classification_and_g_reconstruction_decrease(batch):
    torch.manual_seed(0)
    model = AttGAN(ATTRS, image_size=32, **TINY)
    x, a = batch["image"], batch["attrs"]
    b = a.flip(0)

    def d_step():
        losses = model.discriminator_losses(x, a, b)
        return losses["loss_d"], losses["d_cls"]

    def g_step():
        losses = model.generator_losses(x, a, b)
        return losses["loss_g"], losses["g_rec"]

    d_cls = adam_steps(model.discriminator.parameters(), d_step, 15)
    assert d_cls[-1] < 0.7 * d_cls[0], d_cls
    model.discriminator.requires_grad_(False)
    g_rec = adam_steps(model.generator.parameters(), g_step, 15)
    assert g_rec[-1] < 0.7 * g_rec[0], g_rec


def test_edit_contract_and_strength(trained, batch):
    model, _, _ = trained
    x, src = batch["image"], batch["attrs"]
    tgt = src.clone()
    tgt[:, 0] = 1 - tgt[:, 0]
    with torch.no_grad():
        out = model.edit(x, src, tgt)
        again = model.edit(x, src, tgt)
        keep = model.edit(x, src, tgt, strength=0.0)
        recon = model.edit(x, src, src)
        half = model.edit(x, src, tgt, strength=0.5)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, again)                 # deterministic in eval mode (BatchNorm running statistics)
    assert torch.equal(keep, recon)                # strength 0: the source's code, i.e. the reconstruction
    assert not torch.allclose(out, recon) and not torch.allclose(half, out)
    # the codes: unchanged attributes +-thres_int, changed ones from the source's code to +-test_int
    s, t = torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    assert torch.allclose(model.edit_code(s, t, 1.0), torch.tensor([[1.0, 0.5, -0.5]]))
    assert torch.allclose(model.edit_code(s, t, 0.0), torch.tensor([[-0.5, 0.5, -0.5]]))
    assert torch.allclose(model.edit_code(s, t, 0.5), torch.tensor([[0.25, 0.5, -0.5]]))
    assert torch.allclose(model.edit_code(t, s, 1.0), torch.tensor([[-1.0, 0.5, -0.5]]))
    with pytest.raises(ValueError, match="tgt_attrs"):
        model.edit(x, src, tgt[:, :2])


def test_checkpoint_round_trip(trained, batch):
    model, _, path = trained
    loaded = load_method(str(path)).eval()
    assert isinstance(loaded, AttGAN) and loaded.attribute_names == ATTRS and int(loaded.iterations_done) == 12
    x, src = batch["image"], batch["attrs"]
    with torch.no_grad():
        assert torch.equal(model.edit(x, src, 1 - src, strength=0.7), loaded.edit(x, src, 1 - src, strength=0.7))


def test_paper_config_two_steps_at_128px(tmp_path):
    """The paper config's model (official sizes, 13 attributes) on a CelebAMask-HQ-layout folder at 128 px, on
    CPU: 2 optimizer steps at batch 2, with n_d 1 so that the two steps are one D and one G update."""
    hq = tmp_path / "hq"
    write_celebahq(hq, n=24, size=128)
    cfg, path = paper_config_on_cpu("attgan", hq, tmp_path, model={"n_d": 1})
    assert cfg["data"]["init_args"]["resolution"] == 128 and cfg["data"]["init_args"]["attributes"] == OFFICIAL_13
    assert cfg["data"]["init_args"]["batch_size"] == 32 and cfg["trainer"]["max_epochs"] == 200
    cli = make_cli(["fit", "--config", str(path)])
    model = cli.model
    assert isinstance(model, AttGAN) and model.image_size == 128 and model.attribute_names == OFFICIAL_13
    assert model.generator.enc_layers[-1][0].out_channels == 1024 and len(model.generator.dec_layers) == 5
    assert int(model.iterations_done) == 2 and cli.trainer.global_step == 2
    assert all(o.state for o in cli.trainer.optimizers)   # G and D were each updated
    for key in ("loss_d", "gp", "d_cls", "loss_g", "g_rec"):
        assert torch.isfinite(cli.trainer.callback_metrics[f"train/{key}"]), key
