"""AIGN's face networks, after the authors' TF1 face scripts (faces/sr_unpaired_*.py, faces/ip_lips.py).

* ``SuperResolutionGenerator``: SRResNet-style. 3x3 conv + ReLU, ``res_blocks`` residual blocks
  (conv-BN-ReLU-conv-BN + skip), conv-BN + long skip, log2(factor) 5x5 stride-2 deconvolutions + ReLU,
  3x3 conv + tanh. Input (B, 3, H/f, W/f) in [-1, 1] -> output (B, 3, H, W) in [-1, 1].
* ``InpaintingGenerator``: two stride-2 3x3 conv-BN-ReLU encoders (image and mask), concatenated, a 5x5
  stride-2 deconv-BN-ReLU and a 5x5 stride-2 deconv + tanh. Input (B, 3, H, W) and mask (B, 1, H, W).
* ``Discriminator``: 5x5 stride-2 convs with leaky ReLU (0.2), batch norm on all but the first, an optional
  fully connected hidden layer (1024 in the super-resolution scripts, none in the inpainting one) and one logit.

Weights start as in the scripts: truncated normal (std 0.02) for convs, batch-norm gamma ~ N(1, 0.02).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def tf_dcgan_init(module: nn.Module) -> None:
    """Initialise one module as the TF scripts do (use as ``net.apply(tf_dcgan_init)``)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _deconv(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    """5x5 stride-2 transposed conv with TF 'SAME' geometry: (H, W) -> (2H, 2W)."""
    return nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SuperResolutionGenerator(nn.Module):
    """(B, 3, h, w) low-resolution render -> (B, 3, h * factor, w * factor) in [-1, 1]."""

    def __init__(self, factor: int, channels: int = 64, res_blocks: int = 15, up_channels: int = 256) -> None:
        super().__init__()
        n_up = int(round(math.log2(factor)))
        if 2**n_up != factor:
            raise ValueError(f"factor must be a power of two, got {factor}")
        self.head = nn.Sequential(nn.Conv2d(3, channels, 3, 1, 1), nn.ReLU())
        self.body = nn.Sequential(*[_ResidualBlock(channels) for _ in range(res_blocks)])
        self.body_out = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels))
        ups: list[nn.Module] = []
        c = channels
        for _ in range(n_up):
            ups += [_deconv(c, up_channels), nn.ReLU()]
            c = up_channels
        self.up = nn.Sequential(*ups)
        self.tail = nn.Sequential(nn.Conv2d(c, 3, 3, 1, 1), nn.Tanh())
        self.apply(tf_dcgan_init)

    def forward(self, low_res: torch.Tensor) -> torch.Tensor:
        h = self.head(low_res)
        h = self.body_out(self.body(h)) + h
        return self.tail(self.up(h))


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU())


class InpaintingGenerator(nn.Module):
    """(B, 3, H, W) masked image + (B, 1, H, W) mask (1 = visible) -> (B, 3, H, W) in [-1, 1]."""

    def __init__(self, channels: Sequence[int] = (256, 1024, 512)) -> None:
        super().__init__()
        c1, c2, c3 = (int(c) for c in channels)
        self.image_enc = nn.Sequential(_down(3, c1), _down(c1, c2))
        self.mask_enc = nn.Sequential(_down(1, c1), _down(c1, c2))
        self.dec = nn.Sequential(
            _deconv(2 * c2, c3), nn.BatchNorm2d(c3), nn.ReLU(),
            _deconv(c3, 3), nn.Tanh(),
        )
        self.apply(tf_dcgan_init)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.to(masked.dtype).expand(masked.shape[0], 1, *masked.shape[-2:])
        return self.dec(torch.cat([self.mask_enc(mask), self.image_enc(masked)], dim=1))


class Discriminator(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> (B, 1) logits (real images of the target attribute value vs. generated)."""

    def __init__(self, image_size: int, channels: Sequence[int] = (64, 128, 256, 512, 512), fc: int = 1024) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_prev, size = 3, image_size
        for i, c in enumerate(channels):
            layers.append(nn.Conv2d(c_prev, int(c), 5, 2, 2))
            if i > 0:
                layers.append(nn.BatchNorm2d(int(c)))
            layers.append(nn.LeakyReLU(0.2))
            c_prev, size = int(c), (size + 1) // 2
        self.features = nn.Sequential(*layers)
        flat = c_prev * size * size
        head: list[nn.Module] = [nn.Flatten()]
        if fc > 0:
            head += [nn.Linear(flat, fc), nn.LeakyReLU(0.2)]
            flat = fc
        head.append(nn.Linear(flat, 1))
        self.head = nn.Sequential(*head)
        self.apply(tf_dcgan_init)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))
