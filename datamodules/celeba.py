"""``CelebADataModule``: CelebA (202,599 aligned faces, 178x218, 40 attributes) in torchvision's layout.

Splits are CelebA's official partition (``list_eval_partition.txt``: 162,770 train / 19,867 val / 19,962 test).
Identities come from ``identity_CelebA.txt`` when present, else -1. Images are centre-cropped to
``crop_size`` (178 x 178 by default, or at ``crop_offset``) and resized to ``resolution``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datamodules.base import CELEBA_ATTRIBUTES, DataLayoutError
from datamodules.realfaces.annotations import (
    AnnotationError,
    lookup,
    read_attribute_file,
    read_file_int_map,
    require_file,
)
from datamodules.realfaces.base import RealFaceDataModule, RealLayout, require_dir
from datamodules.registry import register_datamodule

IMAGE_DIR = "img_align_celeba"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"

LAYOUT = f"""<root>/celeba/ (torchvision's layout) or <root>/ directly:
  {IMAGE_DIR}/000001.jpg ... 202599.jpg
  {ATTRIBUTE_FILE}      (count line; 40 attribute names; '<file>' and 40 values in {{-1, 1}} per row)
  {PARTITION_FILE}   ('<file> <0|1|2>': 0 train, 1 val, 2 test)
  {IDENTITY_FILE}       (optional, '<file> <identity>')"""


@register_datamodule("celeba")
class CelebADataModule(RealFaceDataModule):
    """CelebA aligned faces, preprocessed once (crop, antialiased resize) into a uint8 cache.

    Args:
        root: the folder holding ``celeba/`` (torchvision) or the CelebA files directly (see ``LAYOUT``).
        attributes: CelebA attribute names to use (default all 40).
        resolution: output side in pixels.
        batch_size / num_workers / seed: loaders (the seed fixes the training shuffle).
        cache_dir: preprocessing cache root (default ``$ATTREDIT_CACHE`` or ``~/.cache/attredit-bench``).
        skip_corrupt: leave undecodable images out (counted in ``num_skipped``) instead of raising.
        crop_size: side of the square crop (178 = the full width of the aligned images).
        crop_offset: ``(top, left)`` of the crop; ``None`` centres it.
        preprocess_workers / resample / draft: decoding processes, resize filter, JPEG draft (``ResizeSpec``).
        train_sampler / train_augment: how training batches are drawn and augmented (``FaceDataModule``).
    """

    name = "celeba"
    real_faces = True
    has_counterfactuals = False
    layout_help = LAYOUT

    def __init__(
        self,
        root: str,
        attributes: Sequence[str] | None = None,
        resolution: int = 128,
        batch_size: int = 32,
        num_workers: int = 4,
        seed: int = 0,
        cache_dir: str | None = None,
        skip_corrupt: bool = False,
        crop_size: int = 178,
        crop_offset: Sequence[int] | None = None,
        preprocess_workers: int | None = None,
        resample: str = "bicubic",
        draft: bool = True,
        train_sampler: str = "shuffle",
        train_augment: str = "none",
    ) -> None:
        super().__init__(root, attributes, resolution, batch_size, num_workers, seed, cache_dir, skip_corrupt,
                         preprocess_workers, crop_size, crop_offset, resample, draft, train_sampler, train_augment)
        self.save_hyperparameters()  # plain types: checkpoints record the data set for scoring

    @property
    def all_attribute_names(self) -> list[str]:
        return list(CELEBA_ATTRIBUTES)

    def resolve_split_protocol(self) -> str:
        return "celeba"

    def base_dir(self) -> Path:
        """``root/celeba`` when it exists (torchvision's layout), else ``root``."""
        nested = self.root / "celeba"
        for base in (nested, self.root):
            if (base / ATTRIBUTE_FILE).is_file() or (base / IMAGE_DIR).is_dir():
                return base
        raise DataLayoutError(f"no CelebA files in {nested} or {self.root}.\nExpected layout:\n{LAYOUT}")

    def read_layout(self) -> RealLayout:
        base = self.base_dir()
        image_dir = require_dir(base / IMAGE_DIR, LAYOUT)
        attr_path = require_file(base / ATTRIBUTE_FILE, LAYOUT)
        part_path = require_file(base / PARTITION_FILE, LAYOUT)
        table = read_attribute_file(attr_path)
        split = lookup(read_file_int_map(part_path), table.files, part_path, "partition").astype(np.int8)
        if not np.isin(split, (0, 1, 2)).all():
            raise AnnotationError(f"{part_path}: partition codes must be 0, 1 or 2")
        id_path = base / IDENTITY_FILE
        if id_path.is_file():
            identity = lookup(read_file_int_map(id_path), table.files, id_path, "identity")
        else:
            identity = np.full(len(table.files), -1, dtype=np.int64)
        return RealLayout(image_dir, table.files, table.names, table.values, split, identity, "celeba", attr_path)
