"""Training augmentation of the StarGAN v2 / L2M-GAN release, as a seeded transform of image batches.

The release's train transform: with probability 0.5 a random resized crop (area scale in [0.8, 1.0], aspect
ratio in [0.9, 1.1], log-uniform) resized back to the resolution, then a horizontal flip with probability 0.5.
Here it works on float (B, 3, H, W) batches in [-1, 1] (after the data set's own resize), with its own
``torch.Generator``; ``AugmentingCollate`` applies it to the ``image`` of each collated training batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import default_collate, get_worker_info

_CROP_TRIES = 10  # box draws before falling back to the whole image (as torchvision's RandomResizedCrop)


class CropFlip:
    """Random resized crop with probability ``crop_prob``, then horizontal flip with probability ``flip_prob``.

    scale: range of the crop's area as a fraction of the image's; ratio: range of its width / height (drawn
    log-uniformly); seed: the transform's own generator (kept across calls: each call draws anew).
    ``__call__`` maps images (B, 3, H, W) in [-1, 1] to the same shape, dtype, device and range; crops are
    resized back with bilinear interpolation (a convex combination, so the range holds).
    """

    def __init__(self, seed: int = 0, crop_prob: float = 0.5, scale: Sequence[float] = (0.8, 1.0),
                 ratio: Sequence[float] = (0.9, 1.1), flip_prob: float = 0.5) -> None:
        if not (0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1]):
            raise ValueError(f"need 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1], got {scale}, {ratio}")
        self.seed = int(seed)
        self.crop_prob, self.flip_prob = float(crop_prob), float(flip_prob)
        self.scale = (float(scale[0]), float(scale[1]))
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        self.generator = torch.Generator().manual_seed(self.seed)

    def _uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=self.generator))

    def crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """A random (top, left, box height, box width) inside a ``height`` x ``width`` image."""
        area = height * width
        for _ in range(_CROP_TRIES):
            target = area * self._uniform(*self.scale)
            aspect = math.exp(self._uniform(*self.log_ratio))
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(height - h + 1, (), generator=self.generator))
                left = int(torch.randint(width - w + 1, (), generator=self.generator))
                return top, left, h, w
        return 0, 0, height, width  # square images and ratios around 1: the whole image is a valid box

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
        b, _, height, width = images.shape
        crop = (torch.rand(b, generator=self.generator) < self.crop_prob).tolist()
        out = images.clone()
        for i in range(b):
            if crop[i]:
                top, left, h, w = self.crop_box(height, width)
                box = images[i:i + 1, :, top:top + h, left:left + w]
                out[i] = F.interpolate(box.float(), size=(height, width), mode="bilinear",
                                       align_corners=False)[0].to(images.dtype)
        flip = torch.rand(b, generator=self.generator) < self.flip_prob
        if flip.any():
            rows = flip.nonzero().squeeze(1).to(images.device)
            out[rows] = out[rows].flip(-1)
        return out


class AugmentingCollate:
    """``default_collate``, then ``augment`` on the batch's ``image`` (the other keys unchanged).

    In a DataLoader worker the transform's generator is re-seeded once from the worker's own seed (derived by
    the loader from its seeded generator), so workers draw different, reproducible augmentations.
    """

    def __init__(self, augment: CropFlip) -> None:
        self.augment = augment
        self._worker_seeded = False

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = default_collate(items)
        info = get_worker_info()
        if info is not None and not self._worker_seeded:
            self.augment.generator.manual_seed((self.augment.seed * 1_000_003 + info.seed) % 2**63)
            self._worker_seeded = True
        batch["image"] = self.augment(batch["image"])
        return batch
