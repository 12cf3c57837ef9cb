"""``CelebAHQDataModule``: CelebA-HQ in the CelebAMask-HQ release layout (30,000 faces, 1024 px, 40 attributes).

Split protocols (``split_protocol``):
    ``celeba``    CelebA's own partition (``list_eval_partition.txt`` in ``root``) through the HQ -> CelebA
                  mapping: 24,183 train / 2,993 val / 2,824 test on the full set.
    ``last3000``  the common convention: the last ``test_size`` (3,000) images by index are the test set, the
                  ``val_size`` images just before them the validation set, the rest training.
    ``auto``      ``celeba`` when ``list_eval_partition.txt`` is in ``root``, else ``last3000``.
Identities come from ``identity_CelebA.txt`` in ``root`` through the mapping, else -1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from datamodules.base import CELEBA_ATTRIBUTES, DataLayoutError
from datamodules.realfaces.annotations import (
    AnnotationError,
    lookup,
    read_attribute_file,
    read_file_int_map,
    read_hq_mapping,
    require_file,
)
from datamodules.realfaces.base import RealFaceDataModule, RealLayout, require_dir
from datamodules.registry import register_datamodule

IMAGE_DIR = "CelebA-HQ-img"
ATTRIBUTE_FILE = "CelebAMask-HQ-attribute-anno.txt"
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
PROTOCOLS = ("auto", "celeba", "last3000")

LAYOUT = f"""<root>/
  {IMAGE_DIR}/0.jpg ... 29999.jpg
  {ATTRIBUTE_FILE}      (count line; 40 attribute names; '<i>.jpg' and 40 values in {{-1, 1}} per row)
  {MAPPING_FILE}       (header 'idx orig_idx orig_file'; one row per HQ image)
  {PARTITION_FILE}               (optional, CelebA's '<orig_file> <0|1|2>': selects the CelebA split)
  {IDENTITY_FILE}                 (optional, CelebA's '<orig_file> <identity>')"""

_HQ_NAME = re.compile(r"^(\d+)\.jpg$")


@register_datamodule("celebahq")
class CelebAHQDataModule(RealFaceDataModule):
    """CelebA-HQ faces, preprocessed once (centre square crop, antialiased resize) into a uint8 cache.

    Args:
        root: the CelebAMask-HQ folder (see ``LAYOUT``).
        attributes: CelebA attribute names to use (default all 40).
        resolution: output side in pixels.
        batch_size / num_workers / seed: loaders (the seed fixes the training shuffle).
        cache_dir: preprocessing cache root (default ``$ATTREDIT_CACHE`` or ``~/.cache/attredit-bench``).
        skip_corrupt: leave undecodable images out (counted in ``num_skipped``) instead of raising.
        split_protocol: ``auto``, ``celeba`` or ``last3000`` (module docstring).
        val_size / test_size: sizes of the ``last3000`` protocol's val and test sets.
        preprocess_workers: processes decoding JPEGs (default min(8, cpu count)).
        crop_size / crop_offset: square crop in source pixels before resizing (default: centre, shorter side).
        resample / draft: the resize filter and JPEG draft decoding (``ResizeSpec``).
        train_sampler / train_augment: how training batches are drawn and augmented (``FaceDataModule``).
    """

    name = "celebahq"
    real_faces = True
    has_counterfactuals = False
    layout_help = LAYOUT

    def __init__(
        self,
        root: str,
        attributes: Sequence[str] | None = None,
        resolution: int = 256,
        batch_size: int = 8,
        num_workers: int = 4,
        seed: int = 0,
        cache_dir: str | None = None,
        skip_corrupt: bool = False,
        split_protocol: str = "auto",
        val_size: int = 1000,
        test_size: int = 3000,
        preprocess_workers: int | None = None,
        crop_size: int | None = None,
        crop_offset: Sequence[int] | None = None,
        resample: str = "bicubic",
        draft: bool = True,
        train_sampler: str = "shuffle",
        train_augment: str = "none",
    ) -> None:
        if split_protocol not in PROTOCOLS:
            raise ValueError(f"unknown split_protocol {split_protocol!r}; expected one of {PROTOCOLS}")
        if val_size < 0 or test_size < 1:
            raise ValueError(f"need val_size >= 0 and test_size >= 1, got {val_size}, {test_size}")
        self.requested_split_protocol = split_protocol
        self.val_size = int(val_size)
        self.test_size = int(test_size)
        super().__init__(root, attributes, resolution, batch_size, num_workers, seed, cache_dir, skip_corrupt,
                         preprocess_workers, crop_size, crop_offset, resample, draft, train_sampler, train_augment)
        self.save_hyperparameters()  # plain types: checkpoints record the data set for scoring

    @property
    def all_attribute_names(self) -> list[str]:
        return list(CELEBA_ATTRIBUTES)

    def resolve_split_protocol(self) -> str:
        if self.requested_split_protocol != "auto":
            return self.requested_split_protocol
        return "celeba" if (self.root / PARTITION_FILE).is_file() else "last3000"

    def config_key(self) -> dict:
        key = super().config_key()
        if key["split_protocol"] == "last3000":
            key.update(val_size=self.val_size, test_size=self.test_size)
        return key

    def read_layout(self) -> RealLayout:
        image_dir = require_dir(self.root / IMAGE_DIR, LAYOUT)
        attr_path = require_file(self.root / ATTRIBUTE_FILE, LAYOUT)
        map_path = require_file(self.root / MAPPING_FILE, LAYOUT)
        table = read_attribute_file(attr_path)
        n = len(table.files)
        index = np.empty(n, dtype=np.int64)
        for row, file in enumerate(table.files):
            match = _HQ_NAME.match(file)
            if match is None:
                raise AnnotationError(f"{attr_path}: row {row + 1} names {file!r}, expected '<index>.jpg'")
            index[row] = int(match.group(1))
        if not np.array_equal(np.sort(index), np.arange(n)):
            raise AnnotationError(f"{attr_path}: the {n} rows must name 0.jpg ... {n - 1}.jpg once each")
        order = np.argsort(index)
        files = [table.files[i] for i in order]
        attrs = table.values[order]
        orig_files = read_hq_mapping(map_path)
        if len(orig_files) != n:
            raise AnnotationError(f"{map_path} has {len(orig_files)} rows but {attr_path} has {n}")

        protocol = self.resolve_split_protocol()
        if protocol == "celeba":
            part_path = self.root / PARTITION_FILE
            if not part_path.is_file():
                raise DataLayoutError(f"split_protocol='celeba' needs {part_path}.\nExpected layout:\n{LAYOUT}")
            split = lookup(read_file_int_map(part_path), orig_files, part_path, "partition").astype(np.int8)
            if not np.isin(split, (0, 1, 2)).all():
                raise AnnotationError(f"{part_path}: partition codes must be 0, 1 or 2")
        else:
            if n <= self.test_size + self.val_size:
                raise ValueError(f"{n} images cannot hold test_size={self.test_size} and val_size={self.val_size} "
                                 "plus a training set; lower them")
            split = np.zeros(n, dtype=np.int8)
            split[n - self.test_size - self.val_size:n - self.test_size] = 1
            split[n - self.test_size:] = 2

        id_path = self.root / IDENTITY_FILE
        if id_path.is_file():
            identity = lookup(read_file_int_map(id_path), orig_files, id_path, "identity")
        else:
            identity = np.full(n, -1, dtype=np.int64)
        return RealLayout(image_dir, files, table.names, attrs, split, identity, protocol, attr_path)
