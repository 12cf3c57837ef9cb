"""ELEGANT's networks (Xiao et al., ECCV 2018), following the layer layout of the official code.

Encoder: ``num_layers`` stride-2 3x3 convolutions, each followed by ``ChannelL2Norm`` and LeakyReLU(0.2);
the outputs of every layer but the last are the skip features. Decoder: the mirror image with stride-2 3x3
transposed convolutions, input = concat(code to render, the image's own code), each encoder skip added to the
decoder feature of the same size, a last transposed convolution to 3 channels and ``residual_scale * tanh``:
it returns a residual image that the caller adds to the input. Discriminator: image concatenated with the
label tiled over the pixels, 4 stride-2 convolutions, one linear logit; it average-pools its input down to its
own resolution, so the half-scale discriminator reads the same images at half resolution.

Shapes: images (B, 3, H, W) in [-1, 1]; codes (B, C, H / 2**num_layers, W / 2**num_layers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def channel_widths(base: int, num_layers: int, max_channels: int) -> list[int]:
    """Widths of the encoder's layers: base * 2**i, capped (official: 64, 128, 256, 512, 512)."""
    return [min(base * 2**i, max_channels) for i in range(num_layers)]


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Official initialisation: conv / transposed conv / linear weights ~ N(0, std), linear bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)


class ChannelL2Norm(nn.Module):
    """Each pixel's feature vector divided by its L2 norm over channels, then one learnt scale and shift.

    This is the official code's ``Normalization`` layer; it uses no batch statistics, so a network built from
    it behaves the same in train and eval mode.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.shift = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the norm is taken in float32 so that bf16 autocast cannot underflow it
        return (F.normalize(x.float(), dim=1) * self.scale + self.shift).to(x.dtype)


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1), ChannelL2Norm(), nn.LeakyReLU(0.2))


def _up(c_in: int, c_out: int, last: bool) -> nn.Sequential:
    conv = nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=1)
    return nn.Sequential(conv) if last else nn.Sequential(conv, ChannelL2Norm(), nn.ReLU())


class Encoder(nn.Module):
    """x (B, 3, H, W) -> code (B, widths[-1], H/2**L, W/2**L) and skips [(B, widths[i], H/2**(i+1), ...)]."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        chans = [3, *widths]
        self.layers = nn.ModuleList(_down(a, b) for a, b in zip(chans[:-1], chans[1:]))
        init_weights(self)

    @property
    def code_channels(self) -> int:
        return self.layers[-1][0].out_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                skips.append(x)
        return x, skips


class Decoder(nn.Module):
    """(code to render, own code, skips of the image) -> residual (B, 3, H, W) in [-scale, scale]."""

    def __init__(self, widths: list[int], residual_scale: float = 2.0) -> None:
        super().__init__()
        outs = [*reversed(widths[:-1]), 3]        # mirror of the encoder; the last layer makes the image
        ins = [2 * widths[-1], *outs[:-1]]
        self.layers = nn.ModuleList(_up(a, b, last=i == len(outs) - 1) for i, (a, b) in enumerate(zip(ins, outs)))
        self.residual_scale = float(residual_scale)
        init_weights(self)

    def forward(self, code: torch.Tensor, own_code: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat([code, own_code], dim=1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(skips):
                x = x + skips[-1 - i]             # deepest skip first, as in the official decoder
        return self.residual_scale * torch.tanh(x)


class ConditionalDiscriminator(nn.Module):
    """(image (B, 3, h, w), label (B, K) in {0, 1}) -> one real/fake logit (B, 1) per image.

    Images larger than ``image_size`` are average-pooled by 2 until they match (the half-scale D2).
    """

    def __init__(self, num_attributes: int, image_size: int, widths: list[int]) -> None:
        super().__init__()
        side = image_size // 2 ** len(widths)
        if side < 1 or image_size % 2 ** len(widths):
            raise ValueError(f"a {len(widths)}-layer discriminator needs image_size divisible by "
                             f"{2 ** len(widths)}, got {image_size}")
        self.image_size = int(image_size)
        self.num_attributes = int(num_attributes)
        chans = [3 + num_attributes, *widths]
        self.conv = nn.Sequential(*(_down(a, b) for a, b in zip(chans[:-1], chans[1:])))
        self.linear = nn.Linear(widths[-1] * side * side, 1)
        init_weights(self)

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        while image.shape[-1] > self.image_size:
            image = F.avg_pool2d(image, 2)
        tiled = label.to(image.dtype)[:, :, None, None].expand(-1, -1, *image.shape[-2:])
        h = self.conv(torch.cat([image, tiled], dim=1))
        return self.linear(h.flatten(1))


def attribute_slices(channels: int, num_attributes: int) -> list[slice]:
    """Channel range of each attribute's part of a code with ``channels`` channels (official rounding)."""
    if channels < num_attributes:
        raise ValueError(f"a code of {channels} channels cannot hold {num_attributes} attribute parts")
    per = channels / num_attributes
    bounds = [int(round(per * k)) for k in range(num_attributes + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def part_mask(swap: torch.Tensor, slices: list[slice], channels: int) -> torch.Tensor:
    """(B, K) swap weights -> (B, channels, 1, 1): each attribute's weight over its own channels, 0 elsewhere."""
    mask = swap.new_zeros(swap.shape[0], channels)
    for k, sl in enumerate(slices):
        mask[:, sl] = swap[:, k:k + 1]
    return mask[:, :, None, None]
