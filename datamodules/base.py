"""The one data API every data set follows.

Batch schema (a dict), identical for every data set:
    image:    float32 (B, 3, H, W) in [-1, 1]
    attrs:    float32 (B, K) in {0, 1}; column k is ``datamodule.attribute_names[k]``
    identity: int64 (B,), -1 where the identity is unknown
    index:    int64 (B,), the sample's index inside its split's dataset
Only training batches of ``train_sampler="balanced"`` add
    domain:   int64 (B,), the domain the sample was drawn for: attribute column k with value v is 2k + v
              (``datamodules.domains``); the sample's ``attrs[:, k]`` equals v
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from datamodules.augment import AugmentingCollate, CropFlip
from datamodules.domains import BalancedDomainSampler, DomainTagged, dataset_attrs, derive_seed

# CelebA's 40 attribute names, in the order of list_attr_celeba.txt.
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
    "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
    "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: how training batches are drawn: ``shuffle`` (a seeded shuffle, every image once per epoch) or ``balanced``
#: (every (attribute, value) domain equally often, the StarGAN v2 / L2M-GAN release's sampler)
TRAIN_SAMPLERS: tuple[str, ...] = ("shuffle", "balanced")
#: training augmentation: ``none`` or ``crop_flip`` (the release's random resized crop + horizontal flip)
TRAIN_AUGMENTS: tuple[str, ...] = ("none", "crop_flip")


class UnknownAttributeError(ValueError):
    """An attribute name the data set does not have."""


class DataLayoutError(FileNotFoundError):
    """A data root, image or annotation file is missing or not in the expected layout."""


def select_attributes(requested: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """Validate requested attribute names against ``available``; ``None`` selects all of them.

    Raises ``UnknownAttributeError`` listing the valid names when one is unknown.
    """
    if requested is None:
        return list(available)
    if isinstance(requested, str):
        requested = [requested]
    unknown = [a for a in requested if a not in available]
    if unknown:
        raise UnknownAttributeError(
            f"unknown attribute(s) {unknown}; valid names for this data set are: {', '.join(available)}"
        )
    if len(set(requested)) != len(requested):
        raise ValueError(f"duplicate attribute names in {list(requested)}")
    return list(requested)


def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) in [0, 255] -> float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def float_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float (..., 3, H, W) in [-1, 1] -> uint8 in [0, 255] (rounded, clamped)."""
    return ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


class FaceDataModule(L.LightningDataModule):
    """Base class of every face data set.

    Subclasses fill ``self.datasets[split]`` (a ``Dataset`` yielding the batch schema) in ``setup`` and set
    ``all_attribute_names``. ``attribute_names`` is the user's selection (CelebA names).

    ``train_sampler`` (``TRAIN_SAMPLERS``) and ``train_augment`` (``TRAIN_AUGMENTS``) change the training loader
    only; validation and test loaders, and ``config_key`` (the data itself), do not depend on them.
    """

    #: short name used in result files ("synthfaces", "celebahq", "celeba")
    name: str = "faces"
    #: True when ``counterfactuals`` can render the exact ground truth of an edit
    has_counterfactuals: bool = False
    #: True when the images are real photographs (selects real-face evaluator backends)
    real_faces: bool = True

    def __init__(
        self,
        attributes: Sequence[str] | None = None,
        resolution: int = 64,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        train_sampler: str = "shuffle",
        train_augment: str = "none",
    ) -> None:
        super().__init__()
        if train_sampler not in TRAIN_SAMPLERS:
            raise ValueError(f"unknown train_sampler {train_sampler!r}; expected one of {TRAIN_SAMPLERS}")
        if train_augment not in TRAIN_AUGMENTS:
            raise ValueError(f"unknown train_augment {train_augment!r}; expected one of {TRAIN_AUGMENTS}")
        self.train_sampler = train_sampler
        self.train_augment = train_augment
        self.requested_attributes = list(attributes) if attributes is not None else None
        self.resolution = int(resolution)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.datasets: dict[str, Dataset] = {}
        self.attribute_names: list[str] = []

    # -- what subclasses provide -------------------------------------------------------------------------
    @property
    def all_attribute_names(self) -> list[str]:
        raise NotImplementedError

    def config_key(self) -> dict:
        """Everything that changes the data: used to key caches of evaluator networks and statistics.

        Not ``train_sampler`` / ``train_augment``: they change how a method is trained, not the data."""
        return {"name": self.name, "resolution": self.resolution, "seed": self.seed}

    # -- shared behaviour --------------------------------------------------------------------------------
    def _select(self) -> None:
        self.attribute_names = select_attributes(self.requested_attributes, self.all_attribute_names)

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_names)

    def dataset(self, split: str) -> Dataset:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if not self.datasets:
            self.setup()
        return self.datasets[split]

    def _loader(self, split: str, shuffle: bool, drop_last: bool = False, dataset: Dataset | None = None,
                sampler: Sampler | None = None, collate_fn: Callable | None = None) -> DataLoader:
        """The loader of ``split`` (or of ``dataset``, a wrapper of it), in a seeded shuffle or ``sampler``'s order."""
        ds = self.dataset(split) if dataset is None else dataset
        generator = torch.Generator().manual_seed(self.seed) if shuffle or sampler is not None else None
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            drop_last=drop_last and len(ds) > self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=generator,
            collate_fn=collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        ds, sampler, collate = self.dataset("train"), None, None
        if self.train_sampler == "balanced":
            sampler = BalancedDomainSampler(dataset_attrs(ds), seed=derive_seed(self.seed, "balanced"),
                                            attribute_names=self.attribute_names)
            ds = DomainTagged(ds)
        if self.train_augment == "crop_flip":
            collate = AugmentingCollate(CropFlip(seed=derive_seed(self.seed, "crop_flip")))
        return self._loader("train", shuffle=True, drop_last=True, dataset=ds, sampler=sampler, collate_fn=collate)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def counterfactuals(self, split: str, index: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        """Exact images of samples ``index`` of ``split`` with attributes ``attrs`` (B, K) in {0, 1}.

        Returns float32 (B, 3, H, W) in [-1, 1]. Only data sets with ``has_counterfactuals``.
        """
        raise NotImplementedError(f"{self.name} has no exact counterfactuals")
