"""Networks of the InterFaceGAN method: a compact generator (mapping network + DCGAN-style synthesis with
per-layer style modulation), its discriminator, the encoder
that inverts the generator (in-domain inversion) and the method's own attribute predictor.

Images are float (B, 3, R, R) in [-1, 1]; latent codes are z (B, z_dim) ~ N(0, I), w (B, w_dim) and
w+ (B, num_ws, w_dim) (one w per AdaIN layer of the synthesis network).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from methods.common.blocks import mlp, num_downsamples


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature channels at ``resolution``: ``min(channel_max, channel_base // resolution)`` (StyleGAN rule)."""
    return max(8, min(channel_max, channel_base // resolution))


def normalize_2nd_moment(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row of z (B, D) to unit mean square (StyleGAN's pixel norm of the input code)."""
    return z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + eps)


class MappingNetwork(nn.Module):
    """z (B, z_dim) -> w (B, w_dim): pixel norm then an MLP with leaky ReLUs; tracks the mean w."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [z_dim] + [w_dim] * num_layers
        self.net = mlp(dims, act="lrelu", last_act=False) if num_layers > 0 else nn.Identity()
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, skip_w_avg_update: bool = False) -> torch.Tensor:
        """``skip_w_avg_update`` is accepted for the StyleGAN2 mapping's interface; ``w_avg`` is updated by the
        method, never here."""
        return self.net(normalize_2nd_moment(z))


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each pixel's feature vector to unit mean square (PGGAN); per sample, batch-independent."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


class ModulatedNorm(nn.Module):
    """``(1 + gamma(w)) * norm(x) + beta(w)``: a normalisation whose scale and shift also follow a style code.

    norm "batch" (DCGAN's BatchNorm, running statistics in eval mode), "instance" (StyleGAN's AdaIN) or
    "pixel" (PGGAN's pixel norm). The style layer starts at zero, so an untrained network is a plain
    DCGAN / PGGAN; per-layer codes (w+) then act like StyleGAN's styles.
    """

    def __init__(self, w_dim: int, channels: int, norm: str) -> None:
        super().__init__()
        if norm not in ("batch", "instance", "pixel"):
            raise ValueError(f"norm must be 'batch', 'instance' or 'pixel', got {norm!r}")
        self.norm = norm
        self.bn = nn.BatchNorm2d(channels) if norm == "batch" else None
        self.fc = nn.Linear(w_dim, 2 * channels)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(w)[:, :, None, None].chunk(2, dim=1)
        if self.bn is not None:
            x = self.bn(x)
        else:
            x = F.instance_norm(x) if self.norm == "instance" else pixel_norm(x)
        return (1 + gamma) * x + beta


class SynthesisLayer(nn.Module):
    """x2 nearest upsample -> 3x3 conv -> modulated norm (w) -> ReLU: one resolution of the synthesis."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, norm: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.norm = ModulatedNorm(w_dim, c_out, norm)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
        return F.relu(self.norm(x, w))


class SynthesisNetwork(nn.Module):
    """w+ (B, num_ws, w_dim) -> image (B, 3, R, R) in [-1, 1] (tanh).

    DCGAN / PGGAN layout: a dense layer maps the first w to 4x4 features, one upsampling conv layer per
    resolution, a 3x3 conv to RGB; every normalisation is also modulated by its own w (StyleGAN-like styles,
    so w+ codes exist for inversion). ``num_ws = 1 + log2(R / 4)``.
    """

    def __init__(self, resolution: int, w_dim: int, channel_base: int, channel_max: int, norm: str = "batch") -> None:
        super().__init__()
        n_up = num_downsamples(resolution, 4)
        c4 = channels_at(4, channel_base, channel_max)
        self.fc = nn.Linear(w_dim, c4 * 16)
        self.input_norm = ModulatedNorm(w_dim, c4, norm)
        layers, c_prev = [], c4
        for i in range(1, n_up + 1):
            c = channels_at(4 * 2**i, channel_base, channel_max)
            layers.append(SynthesisLayer(c_prev, c, w_dim, norm))
            c_prev = c
        self.layers = nn.ModuleList(layers)
        self.to_rgb = nn.Conv2d(c_prev, 3, 3, 1, 1)
        self.num_ws = 1 + len(layers)

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        x = self.fc(ws[:, 0]).view(ws.shape[0], -1, 4, 4)
        x = F.relu(self.input_norm(x, ws[:, 0]))
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i + 1])
        return torch.tanh(self.to_rgb(x))


class Generator(nn.Module):
    """Mapping + synthesis. ``forward(z)`` samples images; ``synthesize`` renders w / w+ codes."""

    def __init__(self, resolution: int, z_dim: int, w_dim: int, mapping_layers: int, channel_base: int,
                 channel_max: int, norm: str = "batch") -> None:
        super().__init__()
        if mapping_layers == 0 and z_dim != w_dim:
            raise ValueError("without a mapping network z_dim must equal w_dim")
        self.z_dim, self.w_dim = z_dim, w_dim
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.synthesis = SynthesisNetwork(resolution, w_dim, channel_base, channel_max, norm)
        self.num_ws = self.synthesis.num_ws

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """w (B, w_dim) -> w+ (B, num_ws, w_dim); w+ passes through."""
        return w if w.ndim == 3 else w[:, None].expand(-1, self.num_ws, -1)

    def synthesize(self, w: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """Render w (B, w_dim) or w+ (B, num_ws, w_dim) to (B, 3, R, R) in [-1, 1]. ``noise_mode`` is accepted
        for the StyleGAN2 generator's interface: this synthesis has no noise inputs."""
        return self.synthesis(self.broadcast(w))

    def forward(self, z: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        return self.synthesize(self.mapping(z))


def _conv_trunk(resolution: int, channel_base: int, channel_max: int, bottom: int = 4) -> tuple[nn.Sequential, int]:
    """fromRGB 1x1 then, per resolution, 3x3 conv + 4x4 stride-2 conv (leaky ReLUs), down to ``bottom``."""
    res = resolution
    c = channels_at(res, channel_base, channel_max)
    layers: list[nn.Module] = [nn.Conv2d(3, c, 1), nn.LeakyReLU(0.2)]
    while res > bottom:
        c_next = channels_at(res // 2, channel_base, channel_max)
        layers += [nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(c, c_next, 4, 2, 1), nn.LeakyReLU(0.2)]
        c, res = c_next, res // 2
    return nn.Sequential(*layers), c


class MinibatchStd(nn.Module):
    """Append the mean (over features and pixels) of the per-group standard deviation as one channel."""

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = math.gcd(self.group_size, b)
        y = x.reshape(g, -1, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/g,)
        y = y.repeat(g)[:, None, None, None].expand(b, 1, h, w)
        return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """image (B, 3, R, R) -> real/fake logit (B,). ``features`` gives the trunk's 4x4 features (B, C, 4, 4)."""

    def __init__(self, resolution: int, channel_base: int, channel_max: int) -> None:
        super().__init__()
        self.trunk, c = _conv_trunk(resolution, channel_base, channel_max)
        self.mbstd = MinibatchStd(4)
        self.head = nn.Sequential(nn.Conv2d(c + 1, c, 3, 1, 1), nn.LeakyReLU(0.2), nn.Flatten(),
                                  nn.Linear(c * 16, c), nn.LeakyReLU(0.2), nn.Linear(c, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mbstd(self.trunk(x))).squeeze(1)


class Encoder(nn.Module):
    """image (B, 3, R, R) -> a latent code: z or w (B, code_dim), or, with ``num_ws``, w+ (B, num_ws, code_dim)
    (one code per synthesis layer, as idinvert's encoder). w and w+ are offsets from ``origin`` (the
    generator's mean w, kept up to date by the caller; 0 for z).

    ``num_ws=None`` builds the single-code encoder of earlier checkpoints (same parameter names; only the last
    layer's width differs)."""

    def __init__(self, resolution: int, channel_base: int, channel_max: int, code_dim: int,
                 num_ws: int | None = None) -> None:
        super().__init__()
        self.trunk, c = _conv_trunk(resolution, channel_base, channel_max)
        self.code_dim, self.num_ws = code_dim, num_ws
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * 16, 2 * c), nn.LeakyReLU(0.2),
                                  nn.Linear(2 * c, code_dim * (num_ws or 1)))
        self.register_buffer("origin", torch.zeros(code_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.head(self.trunk(x))
        if self.num_ws is not None:
            offset = offset.view(x.shape[0], self.num_ws, self.code_dim)
        return self.origin + offset


class AttributePredictor(nn.Module):
    """The method's own attribute classifier: image (B, 3, R, R) -> logits (B, K). Trained on the real training
    images and their labels inside the method (never the evaluator's classifier)."""

    def __init__(self, resolution: int, num_attributes: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c, res = 3, width, resolution
        while res > 4:
            layers += [nn.Conv2d(c_in, c, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(c, c, 4, 2, 1), nn.LeakyReLU(0.2)]
            c_in, c, res = c, min(c * 2, 8 * width), res // 2
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * 16, 2 * c_in), nn.LeakyReLU(0.2),
                                  nn.Linear(2 * c_in, num_attributes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))
