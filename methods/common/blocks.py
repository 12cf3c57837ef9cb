"""Convolutional building blocks shared by every method (one copy, imported everywhere).

All blocks take and return float tensors (B, C, H, W).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_NORMS = {
    "none": lambda c: nn.Identity(),
    "batch": lambda c: nn.BatchNorm2d(c),
    "instance": lambda c: nn.InstanceNorm2d(c, affine=True),
    "layer": lambda c: nn.GroupNorm(1, c),
}
_ACTS = {
    "relu": lambda: nn.ReLU(inplace=False),
    "lrelu": lambda: nn.LeakyReLU(0.2, inplace=False),
    "tanh": lambda: nn.Tanh(),
    "none": lambda: nn.Identity(),
}


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind not in _NORMS:
        raise ValueError(f"unknown norm {kind!r}; choose from {sorted(_NORMS)}")
    return _NORMS[kind](channels)


def make_act(kind: str) -> nn.Module:
    if kind not in _ACTS:
        raise ValueError(f"unknown activation {kind!r}; choose from {sorted(_ACTS)}")
    return _ACTS[kind]()


class ConvBlock(nn.Sequential):
    """conv (k, stride) -> norm -> activation. ``transpose=True`` gives a stride-s up-convolution."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 4, stride: int = 2, norm: str = "batch",
                 act: str = "lrelu", transpose: bool = False, bias: bool | None = None) -> None:
        pad = (kernel - 1) // 2 if stride == 1 else (kernel - stride + 1) // 2
        bias = norm == "none" if bias is None else bias
        conv_cls = nn.ConvTranspose2d if transpose else nn.Conv2d
        super().__init__(conv_cls(c_in, c_out, kernel, stride, pad, bias=bias), make_norm(norm, c_out), make_act(act))


class ResBlk(nn.Module):
    """Pre-activation residual block (StarGAN v2 style), optional average-pool downsampling.

    Output is divided by sqrt(2) to keep unit variance, as in StarGAN v2.
    """

    def __init__(self, c_in: int, c_out: int, norm: str = "instance", downsample: bool = False) -> None:
        super().__init__()
        self.downsample = downsample
        self.norm1, self.norm2 = make_norm(norm, c_in), make_norm(norm, c_in)
        self.conv1 = nn.Conv2d(c_in, c_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        x = self.skip(x)
        return F.avg_pool2d(x, 2) if self.downsample else x

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(F.leaky_relu(self.norm1(x), 0.2))
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        return self.conv2(F.leaky_relu(self.norm2(x), 0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self._shortcut(x) + self._residual(x)) / math.sqrt(2)


class AdaIN(nn.Module):
    """Adaptive instance norm: gamma, beta from a style code s (B, style_dim)."""

    def __init__(self, style_dim: int, channels: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.fc = nn.Linear(style_dim, channels * 2)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(s)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdainResBlk(nn.Module):
    """Residual block whose norms are AdaIN on a style code; optional nearest x2 upsampling."""

    def __init__(self, c_in: int, c_out: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.norm1, self.norm2 = AdaIN(style_dim, c_in), AdaIN(style_dim, c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        up = (lambda t: F.interpolate(t, scale_factor=2, mode="nearest")) if self.upsample else (lambda t: t)
        shortcut = self.skip(up(x))
        h = up(F.leaky_relu(self.norm1(x, s), 0.2))
        h = self.conv1(h)
        h = self.conv2(F.leaky_relu(self.norm2(h, s), 0.2))
        return (h + shortcut) / math.sqrt(2)


def mlp(dims: list[int], act: str = "relu", last_act: bool = False) -> nn.Sequential:
    """Fully connected stack: dims = [in, hidden..., out]."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or last_act:
            layers.append(make_act(act))
    return nn.Sequential(*layers)


def num_downsamples(image_size: int, bottom: int = 4) -> int:
    """How many x2 downsamplings take ``image_size`` to ``bottom`` (image_size must be bottom * 2**n)."""
    n = int(round(math.log2(image_size / bottom)))
    if bottom * 2**n != image_size:
        raise ValueError(f"image size {image_size} is not {bottom} * 2**n")
    return n
