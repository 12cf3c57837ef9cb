"""StyleGAN2 building blocks (methods/common/stylegan2.py, stylegan2_training.py): equalized learning rate,
demodulation, truncation, shapes from 32 to 256 px, noise modes, GAN losses that train, lazy R1, path length, EMA."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from methods.common.losses import adv_loss, generator_adv_loss, r1_penalty
from methods.common.stylegan2 import (
    Conv2d,
    Discriminator,
    FullyConnected,
    Generator,
    MinibatchStd,
    SynthesisLayer,
    channels_at,
    downsample2d,
    fir_kernel,
    modulated_conv2d,
    truncate,
    upsample2d,
)
from methods.common.stylegan2_training import PathLengthPenalty, ema_beta, lazy_weight, mix_styles

TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16)


def _tiny(resolution: int = 16, seed: int = 0) -> tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    return Generator(resolution, **TINY), Discriminator(resolution, 256, 16)


@pytest.mark.parametrize("lr_mul", [1.0, 0.01])
def test_equalized_lr_scaling(lr_mul):
    torch.manual_seed(0)
    fc = FullyConnected(256, 128, lr_mul=lr_mul, bias_init=0.5)
    with torch.no_grad():
        stored, runtime = fc.weight.clone(), fc.runtime_weight()
        assert math.isclose(float(runtime.std() / stored.std()), lr_mul / math.sqrt(256), rel_tol=1e-5)
        # stored N(0, 1) / lr_mul (official), so the run-time weights start at std 1 / sqrt(fan_in) for any lr_mul
        assert abs(float((stored * lr_mul).std()) - 1) < 0.02 and abs(float((stored * lr_mul).mean())) < 0.02
        assert torch.allclose(fc(torch.zeros(3, 256)), torch.full((3, 128), 0.5 * lr_mul))  # bias times lr_mul
        conv = Conv2d(64, 32, 3)
        ratio = conv.runtime_weight().std() / conv.weight.std()
        assert math.isclose(float(ratio), 1 / math.sqrt(64 * 9), rel_tol=1e-5)
        assert abs(float(conv.weight.std()) - 1) < 0.05
        # unit-variance input keeps about unit variance through an equalized layer with the lrelu gain
        x = torch.randn(512, 256)
        assert 0.8 < float(FullyConnected(256, 256, activation="lrelu")(x).square().mean()) < 1.2


def test_demodulation_normalises_each_output_channel():
    torch.manual_seed(0)
    x = torch.randn(8, 16, 48, 48)
    weight = torch.randn(12, 16, 3, 3) * torch.rand(12, 1, 1, 1) * 5    # output channels of very different scales
    styles = torch.randn(8, 16) * 3 + 1
    y = modulated_conv2d(x, weight, styles)[..., 1:-1, 1:-1]   # interior: no zero padding in the window
    var = y.var(dim=(2, 3))                                    # (B, O): every sample and channel
    assert ((var > 0.8) & (var < 1.2)).all(), var
    plain = modulated_conv2d(x, weight, styles, demodulate=False)[..., 1:-1, 1:-1].var(dim=(2, 3))
    assert (plain.max() / plain.min()) > 100                   # without demodulation the scales differ widely
    # a synthesis layer (no noise) on unit-variance input: pre-activation unit variance per channel
    layer = SynthesisLayer(16, 12, w_dim=8, resolution=48)
    with torch.no_grad():
        pre = modulated_conv2d(x, layer.weight, layer.affine(torch.randn(8, 8)))[..., 1:-1, 1:-1]
    assert ((pre.var(dim=(2, 3)) > 0.8) & (pre.var(dim=(2, 3)) < 1.2)).all()


def test_fused_and_unfused_modulated_conv_agree():
    torch.manual_seed(0)
    x, w, s = torch.randn(3, 6, 9, 9), torch.randn(5, 6, 3, 3), torch.randn(3, 6)
    for demod in (True, False):
        assert torch.allclose(modulated_conv2d(x, w, s, demod, fused=True), modulated_conv2d(x, w, s, demod),
                              atol=1e-5)
    g = _tiny()[0].eval()
    ws = g.map(torch.randn(2, 16))
    assert torch.allclose(g.synthesis(ws, "const", fused=True), g.synthesis(ws, "const"), atol=1e-5)


def test_fir_resampling():
    torch.manual_seed(0)
    x, k = torch.randn(2, 3, 8, 8), fir_kernel()
    up = upsample2d(x, k)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert up.shape == (2, 3, 16, 16)
    assert torch.allclose(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-6)  # [1,3,3,1] x2 = bilinear inside
    assert torch.allclose(downsample2d(torch.ones(1, 1, 8, 8), k)[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))
    # the upsampling conv (transposed conv, then the filter) is "upsample, then conv" inside the image
    w, s = torch.randn(5, 3, 3, 3), torch.randn(2, 3)
    y = modulated_conv2d(x, w, s, demodulate=False, up_kernel=k)
    assert y.shape == (2, 5, 16, 16)
    expect = F.conv2d(upsample2d(x * s[:, :, None, None], k), w.flip(2, 3), padding=1)
    assert torch.allclose(y[..., 2:-2, 2:-2], expect[..., 2:-2, 2:-2], atol=1e-5)
    assert torch.allclose(modulated_conv2d(x, w, s, up_kernel=k, fused=True), modulated_conv2d(x, w, s, up_kernel=k),
                          atol=1e-5)


def test_truncation_and_w_avg_tracking():
    g = _tiny()[0].eval()
    g.mapping.w_avg.copy_(torch.randn(16))
    z = torch.randn(5, 16)
    ws = g.map(z)
    assert ws.shape == (5, g.num_ws, 16)
    assert torch.allclose(g.map(z, truncation_psi=0.0), g.mapping.w_avg.expand_as(ws))
    assert torch.equal(g.map(z, truncation_psi=1.0), ws)
    cut = g.map(z, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(cut[:, :2], g.mapping.w_avg + 0.5 * (ws[:, :2] - g.mapping.w_avg), atol=1e-6)
    assert torch.equal(cut[:, 2:], ws[:, 2:])
    assert torch.allclose(truncate(ws[:, 0], g.mapping.w_avg, 0.0), g.mapping.w_avg.expand(5, -1))
    # training mode tracks the mean w with beta 0.995; eval mode and skip_w_avg_update leave it alone
    before = g.mapping.w_avg.clone()
    g.train()
    w = g.mapping(z)
    assert torch.allclose(g.mapping.w_avg, w.detach().mean(0).lerp(before, 0.995), atol=1e-6)
    now = g.mapping.w_avg.clone()
    g.mapping(z, skip_w_avg_update=True)
    assert torch.equal(g.mapping.w_avg, now)


@pytest.mark.parametrize("resolution, num_ws", [(32, 8), (64, 10), (256, 14)])
def test_shapes(resolution, num_ws):
    torch.manual_seed(0)
    g = Generator(resolution, z_dim=8, w_dim=8, mapping_layers=1, channel_base=512, channel_max=8)
    d = Discriminator(resolution, 512, 8)
    assert g.num_ws == num_ws
    z = torch.randn(2, 8)
    img = g(z)
    assert img.shape == (2, 3, resolution, resolution) and torch.isfinite(img).all()
    assert g.synthesize(g.map(z)).shape == img.shape and g.synthesize(g.mapping(z)).shape == img.shape
    assert d(img).shape == (2, 1)
    assert d.features(img).shape == (2, channels_at(4, 512, 8), 4, 4)


def test_widths_follow_the_stylegan_rule():
    g = Generator(64, z_dim=8, w_dim=8, mapping_layers=1, channel_base=1024, channel_max=64)
    assert [b.conv1.weight.shape[0] for b in g.synthesis.blocks] == [64, 64, 64, 32, 16]
    d = Discriminator(64, 1024, 64)
    assert [b.conv0.weight.shape[0] for b in d.blocks] == [16, 32, 64, 64]


def test_noise_modes():
    g = _tiny()[0].eval()
    for layer in g.modules():
        if isinstance(layer, SynthesisLayer):
            layer.noise_strength.data.fill_(0.5)
    w = g.mapping(torch.randn(3, 16))
    const = g.synthesize(w, "const")
    assert torch.equal(const, g.synthesize(w, "const"))
    assert not torch.allclose(g.synthesize(w, "random"), g.synthesize(w, "random"))
    assert not torch.allclose(const, g.synthesize(w, "none"))
    with pytest.raises(ValueError):
        g.synthesize(w, "fixed")


def test_minibatch_std_appends_the_group_std():
    x = torch.randn(8, 5, 4, 4)
    y = MinibatchStd(4)(x)
    assert y.shape == (8, 6, 4, 4)
    groups = x.reshape(4, 2, 5, 4, 4)   # official grouping: sample i in group i % (B / G)
    expect = groups.std(0, unbiased=False).mean(dim=(1, 2, 3))
    assert torch.allclose(y[:, -1, 0, 0], expect.repeat(4), atol=1e-4)
    assert MinibatchStd(4)(torch.randn(6, 5, 4, 4)).shape == (6, 6, 4, 4)  # B not a multiple of 4


def test_gan_losses_decrease_on_a_fixed_batch():
    g, d = _tiny(16)
    torch.manual_seed(1)
    real = torch.tanh(F.interpolate(torch.randn(8, 3, 4, 4), size=16, mode="bilinear"))
    z = torch.randn(8, 16)
    with torch.no_grad():
        fake = g(z, noise_mode="const")

    def d_loss() -> torch.Tensor:
        return adv_loss(d(real), True) + adv_loss(d(fake), False)

    opt_d = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.0, 0.99))
    start = float(d_loss().detach())
    for _ in range(15):
        opt_d.zero_grad()
        d_loss().backward()
        opt_d.step()
    assert float(d_loss().detach()) < 0.85 * start
    d.requires_grad_(False)

    def g_loss() -> torch.Tensor:
        return generator_adv_loss(d(g(z, noise_mode="const")))

    opt_g = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.0, 0.99))
    start = float(g_loss().detach())
    for _ in range(15):
        opt_g.zero_grad()
        g_loss().backward()
        opt_g.step()
    assert float(g_loss().detach()) < 0.85 * start


def test_lazy_r1_is_finite_and_differentiable():
    assert lazy_weight(10.0, 16, 32) == 160.0 and lazy_weight(10.0, 16, 33) == 0.0
    assert lazy_weight(0.0, 4, 0) == 0.0
    _, d = _tiny(16)
    real = torch.randn(4, 3, 16, 16).requires_grad_(True)
    r1 = r1_penalty(d(real), real)
    assert torch.isfinite(r1) and r1 > 0
    (lazy_weight(1.0, 4, 0) * r1).backward()
    grads = {n: p.grad for n, p in d.named_parameters() if p.grad is not None}
    assert all(torch.isfinite(t).all() for t in grads.values())
    # every weight shapes the input gradient; only the output bias cannot (it shifts all logits alike)
    assert set(grads) >= {n for n, _ in d.named_parameters() if n.endswith("weight")}


def test_path_length_penalty_is_finite_and_differentiable():
    g, _ = _tiny(16)
    pl = PathLengthPenalty(pl_decay=0.01)
    ws = g.map(torch.randn(4, 16))
    images = g.synthesis(ws)
    penalty = pl(images, ws)
    assert torch.isfinite(penalty) and float(pl.pl_mean) > 0   # the running mean moved from 0
    penalty.backward()
    grads = [p.grad for p in g.synthesis.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(t).all() for t in grads) and any(t.abs().sum() > 0 for t in grads)
    first = float(pl.pl_mean)
    ws = g.map(torch.randn(4, 16))
    pl(g.synthesis(ws), ws)
    assert float(pl.pl_mean) > first   # lerp with decay 0.01 towards lengths far above the mean


def test_style_mixing_swaps_the_layers_after_a_cutoff():
    g = _tiny()[0].eval()
    z = torch.randn(4, 16)
    ws = g.map(z)
    assert torch.equal(mix_styles(g.mapping, z, ws, prob=0.0), ws)
    mixed = mix_styles(g.mapping, z, ws, prob=1.0, generator=torch.Generator().manual_seed(0))
    assert mixed.shape == ws.shape
    same = (mixed == ws).all(dim=2).all(dim=0)                  # (num_ws,) layers left as they were
    cutoff = int(same.float().argmin())
    assert 1 <= cutoff < g.num_ws and same[:cutoff].all() and not same[cutoff:].any()
    assert torch.equal(mixed[:, cutoff:], mixed[:, cutoff:cutoff + 1].expand_as(mixed[:, cutoff:]))


def test_ema_beta_from_the_half_life():
    beta = ema_beta(32, ema_kimg=10)
    assert math.isclose(beta, 0.5 ** (32 / 10_000))
    assert math.isclose(beta ** (10_000 / 32), 0.5, rel_tol=1e-9)   # the old weights' share halves in 10k images
    assert math.isclose(ema_beta(32, 10, cur_nimg=1000, rampup=0.05), 0.5 ** (32 / 50))
    assert math.isclose(ema_beta(32, 10, cur_nimg=10**7, rampup=0.05), beta)  # ramp-up over: the half-life
