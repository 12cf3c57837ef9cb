"""StarGAN: the official networks and losses, the n_critic schedule, the lr decay, editing, checkpoints, and the
paper config stepping at 128 px on a CelebAMask-HQ-layout folder."""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from fixtures_real import write_celebahq

import methods.stargan.module as stargan_module
from benchmark.deviations import read_deviations
from benchmark.train import make_cli
from datamodules.synthfaces import SynthFacesDataModule
from methods.base import config_path, get_method, load_method
from methods.stargan import StarGAN
from methods.stargan.module import classification_loss, optimizer_steps
from methods.stargan.networks import Discriminator, Generator, InstanceStatsNorm, ResidualBlock

ATTRS = ["Smiling", "Eyeglasses", "Young"]
TINY = {"g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 1, "d_repeat_num": 3}


def tiny_model(**kw) -> StarGAN:
    torch.manual_seed(0)
    return StarGAN(ATTRS, image_size=32, **{**TINY, **kw})


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory) -> SynthFacesDataModule:
    dm = SynthFacesDataModule(attributes=ATTRS, resolution=32, batch_size=8, num_identities=12,
                              images_per_identity=4, cache_dir=str(tmp_path_factory.mktemp("cache")))
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def fixed_batch(datamodule) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, c_org, c_trg) of one training batch, target labels shuffled once and kept."""
    batch = next(iter(datamodule.train_dataloader()))
    torch.manual_seed(1)
    return batch["image"], batch["attrs"], StarGAN.random_targets(batch["attrs"])


def trainer(tmp_path: Path, max_steps: int) -> L.Trainer:
    return L.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                     num_sanity_val_steps=0, default_root_dir=str(tmp_path))


def test_registered_with_capabilities():
    cls = get_method("stargan")
    assert cls is StarGAN and cls.method_name == "stargan"
    caps = cls.capabilities()
    assert caps["multi_attribute"] and caps["supports_strength"] and caps["needs_training"]
    assert not caps["reference_guided"] and cls.edit_modes == ("latent",)


def test_official_network_layout():
    """G: 7x7 stem on [x, label maps], 2 down, 6 residual blocks, 2 up, 7x7 + tanh, bias-free, tracked affine IN;
    D at 128 px: 6 stride-2 convs (64 -> 2048 channels) to a 2x2 map, 3x3 critic head, 2x2 classification head."""
    g = Generator(num_labels=5)
    convs = [m for m in g.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs[0].in_channels == 8 and convs[0].kernel_size == (7, 7) and convs[-1].kernel_size == (7, 7)
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, ResidualBlock) for m in g.modules()) == 6
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules()) == 2
    norms = [m for m in g.modules() if isinstance(m, InstanceStatsNorm)]
    assert norms and all(n.affine and n.track_running_stats for n in norms)
    assert max(c.out_channels for c in convs) == 256
    d = Discriminator(128, num_labels=5)
    assert [b[0].out_channels for b in d.main] == [64, 128, 256, 512, 1024, 2048]
    assert all(isinstance(b[2], torch.nn.LeakyReLU) and b[2].negative_slope == 0.01 for b in d.main)
    assert d.src_head.kernel_size == (3, 3) and d.cls_head.kernel_size == (2, 2)
    assert d.src_head.bias is None and d.cls_head.bias is None
    with pytest.raises(ValueError, match="multiple of"):
        Discriminator(32, num_labels=5)  # 6 stride-2 convs do not fit 32 px


def test_norm_uses_instance_statistics_in_eval_and_tracks_in_training():
    norm = InstanceStatsNorm(4)
    x = torch.randn(2, 4, 8, 8) * 3 + 1
    train_out = norm(x)
    assert not torch.equal(norm.running_mean, torch.zeros(4))  # running statistics are kept, as official
    norm.eval()
    before = norm.running_mean.clone()
    assert torch.allclose(norm(x), train_out, atol=1e-6)  # eval normalises per image, like the official test()
    assert torch.equal(norm.running_mean, before)


def test_shapes_and_classification_loss():
    m = tiny_model()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    c = torch.tensor([[1.0, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]])
    y = m.generator(x, c)
    assert y.shape == x.shape and y.abs().max() <= 1
    src, cls = m.discriminator(x)
    assert src.shape == (4, 1, 4, 4) and cls.shape == (4, 3)
    # summed over the K attributes, averaged over the batch (the official size_average=False / batch size)
    per_element = torch.nn.functional.binary_cross_entropy_with_logits(cls, c, reduction="none")
    assert torch.allclose(classification_loss(cls, c), per_element.sum(1).mean())


def test_random_targets_shuffle_the_batch_labels():
    labels = torch.eye(6)[:, :3].clone()
    labels[3:, 0] = 1
    torch.manual_seed(0)
    t = StarGAN.random_targets(labels)
    assert sorted(map(tuple, t.tolist())) == sorted(map(tuple, labels.tolist()))


def test_discriminator_loss_uses_the_gradient_penalty(fixed_batch, monkeypatch):
    m = tiny_model()
    x, c_org, c_trg = fixed_batch
    calls, shared_gp = [], stargan_module.gradient_penalty

    def spy(critic, real, fake, generator=None):
        calls.append(critic)
        return shared_gp(critic, real, fake, generator)

    monkeypatch.setattr(stargan_module, "gradient_penalty", spy)
    loss, t = m.discriminator_loss(x, c_org, c_trg)
    assert calls == [m.discriminator]
    assert all(torch.isfinite(v) for v in t.values()) and t["d_gp"] > 0
    expected = t["d_real"] + t["d_fake"] + 1.0 * t["d_cls"] + 10.0 * t["d_gp"]
    assert torch.allclose(loss, expected)
    loss.backward()  # the penalty's double backward reaches D's weights
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.discriminator.parameters())


def test_domain_classification_loss_decreases_under_discriminator_steps(fixed_batch):
    m = tiny_model()
    x, c_org, c_trg = fixed_batch
    opt = torch.optim.Adam(m.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    first = last = None
    for _ in range(30):
        loss, t = m.discriminator_loss(x, c_org, c_trg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = t["d_cls"].item() if first is None else first
        last = t["d_cls"].item()
    assert last < 0.7 * first, (first, last)


def test_reconstruction_loss_decreases_under_generator_steps(fixed_batch):
    m = tiny_model()
    x, c_org, c_trg = fixed_batch
    opt = torch.optim.Adam(m.generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    first = last = None
    for _ in range(25):
        loss, t = m.generator_loss(x, c_org, c_trg)
        assert set(t) == {"g_fake", "g_cls", "g_rec"}
        assert torch.allclose(loss, t["g_fake"] + 10.0 * t["g_rec"] + t["g_cls"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = t["g_rec"].item() if first is None else first
        last = t["g_rec"].item()
    assert last < 0.7 * first, (first, last)


def _adam_steps(opt: torch.optim.Optimizer) -> int:
    p = opt.param_groups[0]["params"][0]
    return int(opt.state[p]["step"]) if p in opt.state else 0


@pytest.fixture(scope="module")
def trained(datamodule, tmp_path_factory):
    """A tiny model trained 10 iterations through Lightning (max_steps = 10 D + 2 G optimizer steps), with a
    decay short enough to act: 10 iterations, linear decay over the last 5, updated every iteration."""
    model = tiny_model(num_iters=10, num_iters_decay=5, lr_update_step=1, lr_decay="linear")
    t = trainer(tmp_path_factory.mktemp("run"), optimizer_steps(10, 5))
    t.fit(model, datamodule=datamodule)
    return model, t


def test_n_critic_schedule(trained):
    model, t = trained
    opt_g, opt_d = t.optimizers
    assert int(model.iterations) == 10 and t.global_step == 12
    assert _adam_steps(opt_d) == 10 and _adam_steps(opt_g) == 2  # G steps = D steps / n_critic
    for name, p in model.state_dict().items():
        if p.is_floating_point():
            assert torch.isfinite(p).all(), name


def test_lr_decay_schedule(trained):
    official = tiny_model()  # the official defaults: 200k iterations, decay from 100k, every 1k
    assert official.learning_rates(0) == (1e-4, 1e-4)
    assert official.learning_rates(100_999) == (1e-4, 1e-4)
    assert official.learning_rates(101_000)[0] == pytest.approx(1e-4 - 1e-9)
    assert official.learning_rates(200_000)[0] == pytest.approx(1e-4 * (1 - 100 / 100_000))  # solver.py's 0.1 %
    linear = tiny_model(lr_decay="linear")
    assert linear.learning_rates(100_999)[0] == 1e-4
    assert linear.learning_rates(150_000)[0] == pytest.approx(0.5e-4)
    assert linear.learning_rates(200_000) == (0.0, 0.0)
    with pytest.raises(ValueError, match="lr_decay"):
        tiny_model(lr_decay="cosine")
    model, t = trained  # the last (10th) iteration ran at the rate after 9 iterations: 1 - 4/5 of the initial
    for opt in t.optimizers:
        assert opt.param_groups[0]["lr"] == pytest.approx(1e-4 * (1 - 4 / 5))


def test_edit_contract(trained, datamodule):
    model = trained[0].eval()
    batch = next(iter(datamodule.train_dataloader()))
    x, a = batch["image"][:4], batch["attrs"][:4]
    t = a.clone()
    t[:, 0] = 1 - t[:, 0]
    with torch.no_grad():
        y = model.edit(x, a, t)
        assert torch.equal(y, model.edit(x, a, t)), "edit must be deterministic in eval mode"
        rec = model.generator(x, a)
        assert torch.equal(model.edit(x, a, t, strength=0.0), rec)  # strength 0 = G(x, c_org)
        assert torch.equal(model.edit(x, a, a), rec)
        half = model.edit(x, a, t, strength=0.5)
        assert torch.allclose(half, model.generator(x, a + 0.5 * (t - a)))
        y64 = model.edit(x.double(), a.double(), t.double())
    assert y.shape == x.shape and y.dtype == x.dtype and y.min() >= -1 and y.max() <= 1
    assert y64.dtype == torch.float64 and not torch.equal(y, rec)
    with pytest.raises(ValueError, match="tgt_attrs"):
        model.edit(x, a, t[:, :2])


def test_checkpoint_round_trip(trained, datamodule, tmp_path):
    model, t = trained
    ckpt = tmp_path / "stargan.ckpt"
    t.save_checkpoint(ckpt)
    loaded = load_method(str(ckpt)).eval()
    assert isinstance(loaded, StarGAN) and int(loaded.iterations) == 10
    assert loaded.hparams.lr_decay == "linear" and loaded.attribute_names == ATTRS
    batch = next(iter(datamodule.val_dataloader()))
    x, a = batch["image"][:4], batch["attrs"][:4]
    with torch.no_grad():
        assert torch.equal(loaded.edit(x, a, 1 - a), model.eval().edit(x, a, 1 - a))


@pytest.mark.parametrize("preset", ["demo", "paper"])
def test_configs_count_optimizer_steps(preset):
    path = config_path("stargan", preset)
    cfg = yaml.safe_load(path.read_text())
    args = cfg["model"]["init_args"]
    assert cfg["trainer"]["max_steps"] == optimizer_steps(args["num_iters"], args["n_critic"])
    assert read_deviations(path)
    if preset == "paper":  # the official main.py defaults are the class defaults and the paper config's values
        params = inspect.signature(StarGAN.__init__).parameters
        defaults = {k: p.default for k, p in params.items() if k not in ("self", "attribute_names", "image_size")}
        assert args == defaults
        assert cfg["data"]["init_args"]["resolution"] == 128 and cfg["data"]["init_args"]["batch_size"] == 16


def test_paper_config_steps_at_128px_on_a_celebahq_folder(tmp_path):
    """The paper config unchanged but for batch size and steps (and CPU, paths, loader workers): 6 optimizer
    steps = 5 iterations, so the discriminator steps 5 times and the generator once, at 128 px."""
    root = tmp_path / "hq"
    write_celebahq(root, n=12, size=128, identity=False)  # partition i % 3: 4 train images
    cfg = yaml.safe_load(config_path("stargan", "paper").read_text())
    cfg["trainer"].update({"accelerator": "cpu", "max_steps": 6, "default_root_dir": str(tmp_path / "run"),
                           "enable_progress_bar": False, "logger": False, "enable_checkpointing": False})
    del cfg["trainer"]["callbacks"]
    cfg["data"]["init_args"].update({"root": str(root), "batch_size": 2, "num_workers": 0,
                                     "preprocess_workers": 1, "cache_dir": str(tmp_path / "cache")})
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cli = make_cli(["fit", "--config", str(path)])
    m = cli.model
    assert m.image_size == 128 and m.hparams.g_repeat_num == 6 and m.hparams.d_conv_dim == 64
    assert int(m.iterations) == 5 and cli.trainer.global_step == 6
    opt_g, opt_d = cli.trainer.optimizers
    assert _adam_steps(opt_d) == 5 and _adam_steps(opt_g) == 1
    assert all(torch.isfinite(p).all() for p in m.parameters())
    x = next(iter(cli.datamodule.val_dataloader()))
    with torch.no_grad():
        out = m.eval().edit(x["image"], x["attrs"], 1 - x["attrs"])
    assert out.shape == (2, 3, 128, 128) and out.abs().max() <= 1
