"""AttGAN's networks (He et al., TIP 2019), in the layer layout of the official code.

Generator: an encoder of ``num_layers`` stride-2 4x4 convolutions (BatchNorm, LeakyReLU 0.2), widths
``enc_dim * 2**i`` capped at ``max_dim``; a decoder of ``num_layers`` stride-2 4x4 transposed convolutions
(BatchNorm, ReLU; the last one to 3 channels with tanh and no norm), widths ``dec_dim * 2**(L-1-i)`` capped. The
attribute code is tiled over the bottleneck and concatenated to it; after decoder layer i < ``shortcut_layers``
the encoder feature of the same size is concatenated (skip), and after decoder layer i < ``inject_layers`` the
tiled attribute code again. Both counts are capped at ``num_layers - 1``, as in the official code.

Discriminators: one trunk of ``n_layers`` stride-2 4x4 convolutions (InstanceNorm with affine, LeakyReLU 0.2)
shared by two fully connected heads, ``fc_dim`` hidden units each: the adversarial (WGAN critic) output and
the attribute classifier's logits.

Shapes: images (B, 3, H, W) in [-1, 1]; attribute codes (B, K) (the caller maps {0, 1} labels to codes).
"""

from __future__ import annotations

import torch
from torch import nn

from methods.common.blocks import ConvBlock, mlp


def widths(dim: int, n_layers: int, max_dim: int) -> list[int]:
    """Channels of each stride-2 stage: dim * 2**i capped at max_dim (official: 64, 128, 256, 512, 1024)."""
    return [min(dim * 2**i, max_dim) for i in range(n_layers)]


def bottom_size(image_size: int, n_layers: int) -> int:
    """Side of the feature map after ``n_layers`` stride-2 stages (official: 128 px, 5 layers -> 4)."""
    if image_size % 2**n_layers:
        raise ValueError(f"image_size {image_size} must be divisible by 2**{n_layers} = {2**n_layers}")
    return image_size // 2**n_layers


def tile_concat(z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """z (B, C, h, w) with code (B, K) repeated over every pixel: (B, C + K, h, w)."""
    tiled = code.to(z.dtype)[:, :, None, None].expand(-1, -1, *z.shape[-2:])
    return torch.cat([z, tiled], dim=1)


class Generator(nn.Module):
    """Encoder-decoder G(x, code): ``encode`` -> list of every encoder layer's output, ``decode`` -> image."""

    def __init__(self, n_attrs: int, image_size: int, enc_dim: int = 64, dec_dim: int = 64, num_layers: int = 5,
                 shortcut_layers: int = 1, inject_layers: int = 1, max_dim: int = 1024) -> None:
        super().__init__()
        bottom_size(image_size, num_layers)
        self.shortcut_layers = min(shortcut_layers, num_layers - 1)
        self.inject_layers = min(inject_layers, num_layers - 1)
        enc_widths = widths(enc_dim, num_layers, max_dim)
        self.enc_layers = nn.ModuleList()
        c_in = 3
        for c in enc_widths:
            self.enc_layers.append(ConvBlock(c_in, c, 4, 2, norm="batch", act="lrelu"))
            c_in = c
        self.dec_layers = nn.ModuleList()
        c_in = enc_widths[-1] + n_attrs
        for i in range(num_layers - 1):
            c_out = min(dec_dim * 2 ** (num_layers - 1 - i), max_dim)
            self.dec_layers.append(ConvBlock(c_in, c_out, 4, 2, norm="batch", act="relu", transpose=True))
            c_in = c_out
            if i < self.shortcut_layers:
                c_in += enc_widths[num_layers - 2 - i]   # the encoder feature of this size
            if i < self.inject_layers:
                c_in += n_attrs
        self.dec_layers.append(ConvBlock(c_in, 3, 4, 2, norm="none", act="tanh", transpose=True))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (B, 3, H, W) -> [(B, enc_widths[i], H / 2**(i+1), W / 2**(i+1)) for every layer i]."""
        zs = []
        for layer in self.enc_layers:
            x = layer(x)
            zs.append(x)
        return zs

    def decode(self, zs: list[torch.Tensor], code: torch.Tensor) -> torch.Tensor:
        """Encoder features ``zs`` and the attribute code (B, K) -> image (B, 3, H, W) in (-1, 1)."""
        z = tile_concat(zs[-1], code)
        for i, layer in enumerate(self.dec_layers):
            z = layer(z)
            if i < self.shortcut_layers:
                z = torch.cat([z, zs[-2 - i]], dim=1)
            if i < self.inject_layers:
                z = tile_concat(z, code)
        return z

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), code)


class Discriminators(nn.Module):
    """D(x) -> (adversarial output (B, 1), attribute logits (B, K)), one convolutional trunk for both heads."""

    def __init__(self, n_attrs: int, image_size: int, dim: int = 64, fc_dim: int = 1024, n_layers: int = 5,
                 max_dim: int = 1024, fc_act: str = "lrelu") -> None:
        super().__init__()
        side = bottom_size(image_size, n_layers)
        layers, c_in = [], 3
        for c in widths(dim, n_layers, max_dim):
            layers.append(ConvBlock(c_in, c, 4, 2, norm="instance", act="lrelu"))
            c_in = c
        self.conv = nn.Sequential(*layers, nn.Flatten())
        features = c_in * side * side
        self.fc_adv = mlp([features, fc_dim, 1], act=fc_act)
        self.fc_cls = mlp([features, fc_dim, n_attrs], act=fc_act)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(x)
        return self.fc_adv(h), self.fc_cls(h)
