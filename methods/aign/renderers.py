"""AIGN's parameter-free renderers R: the degradation the generator inverts and the reconstruction checks.

AIGN (Tung et al., ICCV 2017) trains a generator G so that rendering its output reproduces the rendered input,
``|| R(G(R(x))) - R(x) ||^2``, while a discriminator pulls G(R(x)) towards a (biased) set of real images.
For faces the paper uses two renderers:

* super-resolution: 4:1 average pooling (the generator's input is the low-resolution render);
* inpainting: masking a region (the generator's input is the image with the region zeroed, plus the mask).

Images are float (B, 3, H, W) in [-1, 1]; renders keep that range.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class SuperResolutionRenderer(nn.Module):
    """``factor``:1 average pooling: (B, C, H, W) -> (B, C, H / factor, W / factor)."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        if factor < 2 or factor & (factor - 1):
            raise ValueError(f"the super-resolution factor must be a power of two >= 2, got {factor}")
        self.factor = int(factor)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] % self.factor or images.shape[-2] % self.factor:
            raise ValueError(f"image size {tuple(images.shape[-2:])} is not divisible by {self.factor}")
        return F.avg_pool2d(images, self.factor)


def box_mask(size: int, box: Sequence[float]) -> torch.Tensor:
    """(1, 1, size, size) float mask: 0 inside ``box`` = (top, left, height, width) in fractions of the side, 1 out."""
    if len(box) != 4 or min(box) < 0 or box[0] + box[2] > 1 or box[1] + box[3] > 1 or min(box[2:]) <= 0:
        raise ValueError(f"inpaint box must be (top, left, height, width) fractions inside [0, 1], got {list(box)}")
    top, left = int(round(box[0] * size)), int(round(box[1] * size))
    height, width = max(1, int(round(box[2] * size))), max(1, int(round(box[3] * size)))
    mask = torch.ones(1, 1, size, size)
    mask[..., top:top + height, left:left + width] = 0.0
    return mask


class InpaintingRenderer(nn.Module):
    """Masks a fixed box: R(x) = x * mask, the box's pixels set to 0 (mid grey in [-1, 1])."""

    def __init__(self, image_size: int, box: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mask", box_mask(image_size, box), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images * self.mask.to(images.dtype)

    def composite(self, rendered: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        """The edited image: the visible pixels of the input, the generator's pixels inside the box."""
        return rendered + (1 - self.mask.to(generated.dtype)) * generated


def build_renderer(kind: str, image_size: int, factor: int, box: Sequence[float]) -> nn.Module:
    if kind == "superres":
        return SuperResolutionRenderer(factor)
    if kind == "inpaint":
        return InpaintingRenderer(image_size, box)
    raise ValueError(f"unknown AIGN renderer {kind!r}; choose 'superres' or 'inpaint'")
