"""``fadernet`` (Fader Networks): loss terms, the lambda schedule, the attribute code, editing, checkpoints, and
two optimizer steps of the paper config at 256 px on a CelebAMask-HQ-layout folder."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml
from fixtures_real import write_celebahq
from torch.utils.data import DataLoader

from methods.base import config_path, get_method, load_method
from methods.fadernet import FaderNetMethod
from methods.fadernet.module import attribute_loss, fader_code, lambda_lat
from methods.fadernet.networks import one_hot_pairs

ATTRS = ["Smiling", "Eyeglasses"]
# 32 px, 4 layers (2x2 code) as the demo, narrow
TINY = dict(n_layers=4, init_fm=8, max_fm=32, hid_dim=32, lambda_schedule=10, h_flip=False)
ITERS = 40


def tiny_model(**kw) -> FaderNetMethod:
    torch.manual_seed(0)
    return FaderNetMethod(ATTRS, 32, **{**TINY, **kw})


def fixed_batch(n: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """Smooth random images (B, 3, 32, 32) in [-1, 1] and random {0, 1} labels (B, 2)."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 3, 4, 4, generator=g) * 2 - 1, size=32, mode="bilinear", align_corners=False)
    return {"image": x, "attrs": (torch.rand(n, len(ATTRS), generator=g) > 0.5).float()}


@torch.no_grad()
def eval_mse(model: FaderNetMethod, batch) -> float:
    model.eval()
    x, y = batch["image"], batch["attrs"]
    return F.mse_loss(model.decode(model.encode(x), one_hot_pairs(y)), x).item()


@pytest.fixture(scope="module")
def trained():
    """ITERS Lightning iterations on one fixed batch of 32 (split into the iteration's two batches of 16)."""
    model, batch = tiny_model(), fixed_batch(32)
    before = eval_mse(model, batch)
    model.train()
    trainer = L.Trainer(max_steps=2 * ITERS, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train_dataloaders=DataLoader([batch] * ITERS, batch_size=None))
    return model, trainer, batch, before


def test_registered_and_not_the_aif_variant():
    assert get_method("fadernet") is FaderNetMethod
    caps = FaderNetMethod.capabilities()
    assert caps["multi_attribute"] and caps["supports_strength"] and caps["needs_training"]
    assert FaderNetMethod.edit_modes == ("latent",) and FaderNetMethod.variant_of is None
    assert get_method("aif-fader").variant_of == "aif"  # the similarly named AIF variant is another method


def test_network_shapes_follow_the_official_recipe():
    m = FaderNetMethod(ATTRS, 32, n_layers=4, init_fm=16, max_fm=64, hid_dim=32)
    x = torch.zeros(3, 3, 32, 32)
    z = m.encode(x)
    assert z.shape == (3, 64, 2, 2)                                     # 16-32-64-64, 32 px / 2**4
    assert m.lat_dis(z).shape == (3, 4)                                 # one softmax pair per attribute
    assert m.decode(z, one_hot_pairs(torch.zeros(3, 2))).shape == x.shape
    # every decoder layer sees the 2K-channel code: input channels = mirrored width + 2K
    ins = [layer[0].in_channels for layer in m.decoder.layers]
    assert ins == [64 + 4, 64 + 4, 32 + 4, 16 + 4]
    assert len([c for c in m.lat_dis.convs.modules() if isinstance(c, torch.nn.Conv2d)]) == 1  # 2x2 -> 1x1
    flat = FaderNetMethod(ATTRS, 32, n_layers=5, init_fm=8, max_fm=64, hid_dim=16)  # 1x1 code: linear layers only
    assert flat.lat_dis(flat.encode(x)).shape == (3, 4) and len(flat.lat_dis.convs) == 0
    with pytest.raises(ValueError, match="power-of-two"):
        FaderNetMethod(ATTRS, 48)


def test_one_hot_pairs_and_fader_code():
    a = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert torch.equal(one_hot_pairs(a), torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]]))
    src, tgt = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])   # add the first, keep the second
    assert torch.equal(fader_code(src, tgt, 0.0), one_hot_pairs(src))
    assert torch.equal(fader_code(src, tgt, 1.0), one_hot_pairs(tgt))
    assert torch.allclose(fader_code(src, tgt, 0.5), torch.tensor([[0.5, 0.5, 0.0, 1.0]]))
    # strength 2 = the official interpolation's alpha_max = 2: [1 - alpha, alpha] = [-1, 2]
    assert torch.allclose(fader_code(src, tgt, 2.0), torch.tensor([[-1.0, 2.0, 0.0, 1.0]]))
    # removing goes the other way: alpha = 1 - strength, the official alpha range's 1 - alpha_min end
    assert torch.allclose(fader_code(torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 1.0]]), 2.0),
                          torch.tensor([[2.0, -1.0, 0.0, 1.0]]))


def test_lambda_schedule():
    assert lambda_lat(0, 1e-4, 500_000) == 0.0
    assert lambda_lat(125_000, 1e-4, 500_000) == pytest.approx(2.5e-5)
    assert lambda_lat(250_000, 1e-4, 500_000) == pytest.approx(5e-5)           # linear
    assert lambda_lat(500_000, 1e-4, 500_000) == pytest.approx(1e-4)
    assert lambda_lat(2_000_000, 1e-4, 500_000) == pytest.approx(1e-4)         # capped
    assert lambda_lat(0, 1e-4, 0) == 1e-4                                       # schedule off


def test_attribute_loss_is_the_official_sum_of_pair_cross_entropies():
    torch.manual_seed(0)
    logits, y = torch.randn(5, 4), torch.tensor([[0, 1], [1, 1], [0, 0], [1, 0], [1, 1]]).float()
    per_attr = [F.cross_entropy(logits[:, 2 * k:2 * k + 2], y[:, k].long()) for k in range(2)]
    assert attribute_loss(logits, y) == pytest.approx(sum(per_attr).item(), rel=1e-6)
    flipped = [F.cross_entropy(logits[:, 2 * k:2 * k + 2], 1 - y[:, k].long()) for k in range(2)]
    assert attribute_loss(logits, y, flip=True) == pytest.approx(sum(flipped).item(), rel=1e-6)


def test_adversarial_term_pushes_the_discriminator_towards_the_wrong_label():
    """A gradient step of the code z on the autoencoder's term lowers P(true label | z), raises P(flipped)."""
    m, batch = tiny_model(), fixed_batch(8)
    m.eval()  # deterministic discriminator (dropout off), as in the official autoencoder step
    x, y = batch["image"], batch["attrs"]
    z = m.encode(x).detach().requires_grad_(True)
    logits = m.lat_dis(z)
    (g_logits, g_z) = torch.autograd.grad(attribute_loss(logits, y, flip=True), [logits, z])
    true_idx = (torch.arange(2) * 2)[None] + y.long()                  # column of each true value
    assert (g_logits.gather(1, true_idx) > 0).all()                    # descent lowers every true-label logit

    def p_true(code: torch.Tensor) -> torch.Tensor:
        probs = m.lat_dis(code).reshape(8, 2, 2).softmax(-1)
        return probs.gather(2, y.long()[..., None]).mean()

    with torch.no_grad():
        assert p_true(z - 0.5 * g_z / g_z.norm()) < p_true(z)


def test_latent_discriminator_loss_decreases_and_leaves_the_encoder_alone():
    m, batch = tiny_model(), fixed_batch(16)
    x, y = batch["image"], batch["attrs"]
    opt = torch.optim.Adam(m.lat_dis.parameters(), lr=2e-3, betas=(0.5, 0.999))
    enc_state = {k: v.clone() for k, v in m.encoder.state_dict().items()}

    torch.manual_seed(1)  # the discriminator's dropout
    losses = []
    for _ in range(15):
        loss, _ = m.lat_dis_loss(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.7 * sum(losses[:3]), losses
    # the encoder ran frozen in eval mode: no gradient, and its batch-norm statistics are untouched
    assert all(torch.equal(v, m.encoder.state_dict()[k]) for k, v in enc_state.items())
    assert all(p.grad is None for p in m.encoder.parameters())


def test_training_loop_lowers_reconstruction_and_counts_iterations(trained):
    model, trainer, batch, before = trained
    assert int(model.n_iter) == ITERS and trainer.global_step == 2 * ITERS   # 2 optimizer steps per iteration
    assert eval_mse(model, batch) < 0.7 * before
    for key in ("train/rec", "train/lat_dis", "train/lat_dis_adv", "train/loss_ae", "train/lambda_lat"):
        assert torch.isfinite(trainer.callback_metrics[key]), key
    # lambda grows linearly over lambda_schedule = 10 iterations, then stays at 1e-4
    assert trainer.callback_metrics["train/lambda_lat"].item() == pytest.approx(1e-4)
    assert model.current_lambda() == pytest.approx(1e-4)
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name


def test_schedule_follows_the_iteration_counter():
    m = tiny_model(lambda_schedule=8)
    assert m.current_lambda() == 0.0                                   # the first iteration has no adversary
    m.n_iter.fill_(2)
    assert m.current_lambda() == pytest.approx(0.25e-4)
    m.n_iter.fill_(100)
    assert m.current_lambda() == pytest.approx(1e-4)


def test_split_iteration():
    m = tiny_model(n_lat_dis=1)
    batch = fixed_batch(8)
    (x1, y1), (x2, y2) = m.split_iteration(batch["image"], batch["attrs"])
    assert torch.equal(torch.cat([x1, x2]), batch["image"]) and torch.equal(torch.cat([y1, y2]), batch["attrs"])
    small = fixed_batch(3)
    parts = m.split_iteration(small["image"], small["attrs"])
    assert len(parts) == 2 and all(torch.equal(p[0], small["image"]) for p in parts)  # too small to split
    flipper = tiny_model(n_lat_dis=2, h_flip=True)
    torch.manual_seed(3)
    parts = flipper.split_iteration(batch["image"][:6], batch["attrs"][:6])
    assert len(parts) == 3
    for (px, _), orig in zip(parts, batch["image"][:6].tensor_split(3)):
        assert torch.equal(px, orig) or torch.equal(px, orig.flip(3))  # a whole part is flipped, or none of it


def test_edit_contract(trained):
    model, _, batch, _ = trained
    model.eval()
    x, src = batch["image"][:6], batch["attrs"][:6]
    tgt = src.clone()
    tgt[:, 0] = 1 - tgt[:, 0]
    with torch.no_grad():
        out = model.edit(x, src, tgt)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert torch.isfinite(out).all() and out.min() >= -1 and out.max() <= 1
        assert torch.equal(out, model.edit(x, src, tgt))                   # deterministic in eval mode
        rec = model.decode(model.encode(x), one_hot_pairs(src))
        assert torch.equal(model.edit(x, src, tgt, strength=0.0), rec)     # strength 0 = the reconstruction
        assert not torch.allclose(model.edit(x, src, tgt, strength=2.0), rec)
        half = model.edit(x.double(), src, tgt)
        assert half.dtype == torch.float64
    with pytest.raises(ValueError, match="tgt_attrs"):
        model.edit(x, src, tgt[:, :1])


def test_checkpoint_round_trip(trained, tmp_path):
    model, trainer, batch, _ = trained
    path = tmp_path / "fader.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_method(str(path)).eval()
    assert isinstance(loaded, FaderNetMethod) and int(loaded.n_iter) == ITERS    # the schedule's clock survives
    model.eval()
    x, src = batch["image"][:4], batch["attrs"][:4]
    tgt = 1 - src
    with torch.no_grad():
        assert torch.equal(loaded.edit(x, src, tgt, 1.5), model.edit(x, src, tgt, 1.5))


def test_configs():
    demo = yaml.safe_load(config_path("fadernet", "demo").read_text())
    iterations = demo["trainer"]["max_steps"] // 2
    args = demo["model"]["init_args"]
    assert args["lambda_schedule"] == iterations and args["lambda_lat_dis"] == 1e-4   # the ramp, scaled
    assert demo["data"]["init_args"]["attributes"] == ["Smiling", "Eyeglasses", "Young"]
    assert "schedule" in " ".join(d["what"] for d in demo["deviations"])
    paper = yaml.safe_load(config_path("fadernet", "paper").read_text())
    p = paper["model"]["init_args"]
    assert paper["per_attribute"] is True and paper["data"]["init_args"]["resolution"] == 256
    assert (p["n_layers"], p["init_fm"], p["max_fm"], p["lambda_schedule"], p["n_lat_dis"]) == (7, 16, 512, 500_000, 1)
    assert paper["trainer"]["max_steps"] == 2 * 1000 * 1563


def test_paper_config_two_steps_at_256_px(tmp_path):
    """The paper config as `benchmark run --preset paper` builds a unit, on a CelebAMask-HQ folder, CPU, batch 2."""
    from benchmark.runner import RunContext, method_config
    from benchmark.train import make_cli

    hq = tmp_path / "hq"
    write_celebahq(hq, n=9, size=256)
    preset = {"method_config": "paper", "attributes": ["Smiling"],
              "data": {"name": "celebahq", "init_args": {"resolution": 256, "batch_size": 2, "num_workers": 0,
                                                          "cache_dir": str(tmp_path / "cache")}},
              "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 2, "enable_progress_bar": False,
                          "enable_model_summary": False}}
    ctx = RunContext(preset, "celebahq", str(hq), tmp_path / "out", attributes=["Smiling"])
    config = method_config(ctx, "fadernet", seed=0, unit_dir=tmp_path / "unit", attribute="Smiling")
    cli = make_cli(["fit", "--config", str(config)])
    m = cli.model
    assert isinstance(m, FaderNetMethod) and m.image_size == 256 and m.attribute_names == ["Smiling"]
    assert cli.trainer.global_step == 2 and int(m.n_iter) == 1               # one iteration = 2 optimizer steps
    x = torch.stack([cli.datamodule.dataset("test")[i]["image"] for i in range(2)])
    m.eval()
    with torch.no_grad():
        assert m.encode(x).shape == (2, 512, 2, 2)                           # the paper's 512 x 2 x 2 code
        out = m.edit(x, torch.zeros(2, 1), torch.ones(2, 1))
    assert out.shape == (2, 3, 256, 256) and torch.isfinite(out).all()
