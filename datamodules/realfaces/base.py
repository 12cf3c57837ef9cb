"""What CelebA and CelebA-HQ share: a parsed layout, the preprocessing cache, split datasets, the data module.

A subclass only reads its layout (``read_layout``) into a ``RealLayout``: image files, their 40 attributes,
split codes and identities, in one row order. This module checks the files, builds the cache and the splits.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import SPLITS, DataLayoutError, FaceDataModule, uint8_to_float
from datamodules.cache import config_hash
from datamodules.realfaces.annotations import AnnotationError
from datamodules.realfaces.cache import ImageCache, build_image_cache
from datamodules.realfaces.decode import ResizeSpec

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}  # CelebA's list_eval_partition.txt codes


@dataclass
class RealLayout:
    """A real data set as read from disk, one row per image.

    image_dir: folder of the images; files: their names in it; attribute_names: the attribute file's header;
    attrs: int8 (N, A) in {0, 1}; split: int8 (N,) 0 train / 1 val / 2 test; identity: int64 (N,), -1 unknown;
    split_protocol: how ``split`` was decided (logged and exposed by the data module);
    annotation: the attribute file (named in errors).
    """

    image_dir: Path
    files: list[str]
    attribute_names: list[str]
    attrs: np.ndarray
    split: np.ndarray
    identity: np.ndarray
    split_protocol: str
    annotation: Path


def require_dir(path: Path, layout: str) -> Path:
    if not path.is_dir():
        raise DataLayoutError(f"expected folder {path} is missing.\nExpected layout:\n{layout}")
    return path


def check_images_match(image_dir: Path, files: Sequence[str], annotation: Path) -> int:
    """Every annotated file is in ``image_dir`` and every image there is annotated; returns the image count."""
    present = {e.name for e in os.scandir(image_dir) if e.name.lower().endswith(IMAGE_SUFFIXES)}
    wanted = set(files)
    missing, extra = sorted(wanted - present), sorted(present - wanted)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} annotated image(s) are missing from {image_dir}, e.g. {missing[:5]}")
        if extra:
            parts.append(f"{len(extra)} image(s) in {image_dir} have no row in {annotation}, e.g. {extra[:5]}")
        raise AnnotationError(f"{annotation} has {len(files)} rows but {image_dir} holds {len(present)} images: "
                              + "; ".join(parts))
    return len(present)


class RealFaceDataset(Dataset):
    """One split of a real data set, read from the preprocessing cache (a memory map, opened per process).

    Items follow the batch schema: image float32 (3, R, R) in [-1, 1], attrs float32 (K,) in {0, 1},
    identity int64 (-1 unknown), index int64 (position in this dataset). ``files[i]`` names item i's source.
    """

    def __init__(self, images_path: Path, rows: np.ndarray, attrs: torch.Tensor, identity: torch.Tensor,
                 files: list[str]) -> None:
        self.images_path = Path(images_path)
        self.rows = torch.as_tensor(rows, dtype=torch.long)  # (N,) rows of the cache (the layout's order)
        self.attrs = attrs                                     # float32 (N, K) in {0, 1}
        self.identity = identity                               # int64 (N,)
        self.files = files
        self._images: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None}  # workers reopen the memory map instead of copying it

    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self.images_path, mmap_mode="r")
        return self._images

    def __len__(self) -> int:
        return self.rows.numel()

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(np.array(self.images()[int(self.rows[i])]))
        return {"image": uint8_to_float(image), "attrs": self.attrs[i], "identity": self.identity[i],
                "index": torch.tensor(i, dtype=torch.long)}


class RealFaceDataModule(FaceDataModule):
    """Base of the real-photograph data modules (CelebA, CelebA-HQ). See their docstrings for the arguments."""

    real_faces = True
    has_counterfactuals = False
    #: the expected layout, quoted in DataLayoutError messages
    layout_help: str = ""

    def __init__(self, root: str, attributes: Sequence[str] | None, resolution: int, batch_size: int,
                 num_workers: int, seed: int, cache_dir: str | None, skip_corrupt: bool,
                 preprocess_workers: int | None, crop_size: int | None, crop_offset: Sequence[int] | None,
                 resample: str, draft: bool, train_sampler: str = "shuffle", train_augment: str = "none") -> None:
        super().__init__(attributes, resolution, batch_size, num_workers, seed, train_sampler, train_augment)
        self.root = Path(root).expanduser()
        self.cache_dir = cache_dir
        self.skip_corrupt = bool(skip_corrupt)
        self.preprocess_workers = preprocess_workers
        self.spec = ResizeSpec(int(resolution), crop_size, tuple(crop_offset) if crop_offset else None, resample,
                               bool(draft))
        self._select()
        self._layout: RealLayout | None = None
        self.cache: ImageCache | None = None
        #: which split protocol is in use, set by ``setup``
        self.split_protocol: str | None = None
        #: names of the images skipped as undecodable (``skip_corrupt=True``), set by ``setup``
        self.skipped_files: list[str] = []

    # -- what subclasses provide -------------------------------------------------------------------------
    def read_layout(self) -> RealLayout:
        raise NotImplementedError

    def resolve_split_protocol(self) -> str:
        """The split protocol, decided from the files present (cheap, no parsing)."""
        raise NotImplementedError

    # -- shared behaviour --------------------------------------------------------------------------------
    @property
    def num_skipped(self) -> int:
        return len(self.skipped_files)

    def config_key(self) -> dict:
        return {"name": self.name, "root": str(self.root.resolve()), "resolution": self.resolution,
                "seed": self.seed, "split_protocol": self.resolve_split_protocol(), "resize": self.spec.key()}

    def layout(self) -> RealLayout:
        if self._layout is None:
            if not self.root.is_dir():
                raise DataLayoutError(f"data root {self.root} does not exist.\nExpected layout:\n{self.layout_help}")
            lay = self.read_layout()
            missing = [a for a in self.attribute_names if a not in lay.attribute_names]
            if missing:  # checked before the (long) preprocessing
                raise AnnotationError(f"{lay.annotation} has no column(s) {missing}; it has {lay.attribute_names}")
            self._layout = lay
        return self._layout

    def _build_cache(self) -> ImageCache:
        if self.cache is None:
            lay = self.layout()
            count = check_images_match(lay.image_dir, lay.files, lay.annotation)
            key = {"root": str(lay.image_dir.resolve()), "file_count": count,
                   "files_hash": config_hash({"files": lay.files})}
            paths = [str(lay.image_dir / f) for f in lay.files]
            self.cache = build_image_cache(self.name, paths, lay.files, self.spec, key, self.cache_dir,
                                           self.skip_corrupt, self.preprocess_workers)
        return self.cache

    def prepare_data(self) -> None:
        self._build_cache()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        lay = self.layout()
        cache = self._build_cache()
        columns = [lay.attribute_names.index(a) for a in self.attribute_names]
        ok = np.ones(len(lay.files), dtype=bool)
        ok[list(cache.corrupt)] = False
        self.skipped_files = [lay.files[i] for i in sorted(cache.corrupt)]
        self.split_protocol = lay.split_protocol
        for split in SPLITS:
            rows = np.nonzero((lay.split == SPLIT_CODES[split]) & ok)[0]
            if rows.size == 0:
                log.warning("%s: the %s split is empty", self.name, split)
            self.datasets[split] = RealFaceDataset(
                cache.images_path, rows, torch.from_numpy(lay.attrs[rows][:, columns].astype(np.float32)),
                torch.from_numpy(lay.identity[rows]), [lay.files[i] for i in rows])
        log.info("%s: split protocol %r, %s, %d skipped", self.name, self.split_protocol,
                 ", ".join(f"{s} {len(d)}" for s, d in self.datasets.items()), self.num_skipped)
