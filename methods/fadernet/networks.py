"""Networks of Fader Networks (Lample et al., 2017): the attribute-conditioned autoencoder and the latent
discriminator, after facebookresearch/FaderNetworks ``src/model.py`` (``build_layers``, ``AutoEncoder``,
``LatentDiscriminator``). Our own code; the layer recipe and the shapes are the official ones.

Shapes: images (B, 3, H, W) in [-1, 1], H = W a power of two; latent code z (B, C, H / 2**n_layers, ...);
attribute code (B, 2K): one pair [1 - a_k, a_k] per attribute (``one_hot_pairs``); the latent discriminator
returns (B, 2K) logits, one softmax pair per attribute.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from methods.common.blocks import ConvBlock


def layer_widths(n_layers: int, init_fm: int, max_fm: int) -> list[int]:
    """Channels after each stride-2 encoder layer: init_fm, 2 init_fm, ... capped at max_fm (official)."""
    return [min(init_fm * 2**i, max_fm) for i in range(n_layers)]


def log2_size(image_size: int) -> int:
    """log2 of the image side, which must be a power of two (the official code asserts it)."""
    n = int(round(math.log2(image_size)))
    if 2**n != image_size:
        raise ValueError(f"Fader Networks need a power-of-two image size, got {image_size}")
    return n


def one_hot_pairs(attrs: torch.Tensor) -> torch.Tensor:
    """attrs (B, K) in [0, 1] -> (B, 2K) code [1 - a_1, a_1, 1 - a_2, a_2, ...].

    For {0, 1} labels this is the official one-hot encoding of binary attributes ([1, 0] / [0, 1]); for a
    real a it is the official interpolation code [1 - alpha, alpha] (``interpolate.py``)."""
    return torch.stack([1.0 - attrs, attrs], dim=2).flatten(1)


class Encoder(nn.Module):
    """E(x): ``n_layers`` stride-2 4x4 convolutions C(init_fm) ... C(max_fm), LeakyReLU 0.2, batch norm on all
    but the first layer (official ``build_layers``: the first encoder layer has no normalisation).

    x (B, 3, S, S) in [-1, 1] -> z (B, widths[-1], S / 2**n_layers, S / 2**n_layers).
    """

    def __init__(self, image_size: int, n_layers: int, init_fm: int, max_fm: int) -> None:
        super().__init__()
        if not 1 <= n_layers <= log2_size(image_size):
            raise ValueError(f"n_layers must be in [1, log2({image_size})], got {n_layers}")
        layers, c_in = [], 3
        for i, c in enumerate(layer_widths(n_layers, init_fm, max_fm)):
            # bias=True as the official nn.Conv2d (redundant before batch norm, kept for the same parameters)
            layers.append(ConvBlock(c_in, c, 4, 2, norm="none" if i == 0 else "batch", act="lrelu", bias=True))
            c_in = c
        self.layers = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Decoder(nn.Module):
    """D(z, code): the encoder mirrored with 4x4 stride-2 transposed convolutions (no bias, official), batch
    norm + ReLU, tanh on the last; the attribute code is tiled and concatenated to the input of every layer.

    z (B, C, s, s), code (B, 2K) -> image (B, 3, s 2**n_layers, ...) in (-1, 1).
    """

    def __init__(self, n_layers: int, init_fm: int, max_fm: int, code_dim: int) -> None:
        super().__init__()
        widths = layer_widths(n_layers, init_fm, max_fm)
        ins, outs = widths[::-1], [*widths[::-1][1:], 3]  # deepest first, back to 3 channels
        self.layers = nn.ModuleList(
            ConvBlock(c_in + code_dim, c_out, 4, 2, transpose=True, bias=False,
                      norm="none" if last else "batch", act="tanh" if last else "relu")
            for c_in, c_out, last in zip(ins, outs, [False] * (n_layers - 1) + [True]))

    def forward(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h = z
        for layer in self.layers:
            tiled = code[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3]).to(h.dtype)
            h = layer(torch.cat([h, tiled], dim=1))
        return h


class LatentDiscriminator(nn.Module):
    """P(attributes | z): the encoder's layer recipe continued from the latent map down to 1x1 (batch norm,
    LeakyReLU 0.2, dropout after each conv), then Linear(hid_dim) - LeakyReLU 0.2 - Linear(2K).

    At 256 px with 7 encoder layers that is one C512 conv on the 512x2x2 code, as in the paper. z (B, C, s, s)
    -> logits (B, 2K), one softmax pair per attribute.
    """

    def __init__(self, image_size: int, n_layers: int, init_fm: int, max_fm: int, num_attributes: int,
                 hid_dim: int = 512, dropout: float = 0.3) -> None:
        super().__init__()
        widths = layer_widths(log2_size(image_size), init_fm, max_fm)  # the encoder convolved down to 1x1
        layers = []
        for i in range(n_layers, len(widths)):
            layers.append(ConvBlock(widths[i - 1], widths[i], 4, 2, norm="batch", act="lrelu", bias=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Flatten(), nn.Linear(widths[-1], hid_dim), nn.LeakyReLU(0.2),
                                  nn.Linear(hid_dim, 2 * num_attributes))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.proj(self.convs(z))
