"""``SynthFacesDataModule``: the embedded default data set, with exact counterfactuals.

A fixed number of identities, each rendered in several images with its own nuisance (pose, scale,
translation, lighting, background, clothes) and attributes. Images are rendered once into an on-disk
uint8 cache keyed by the configuration; the factors are re-sampled from the seed (cheap, deterministic),
so ``counterfactual`` renders the same person under the same nuisance with other attributes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from datamodules.base import SPLITS, FaceDataModule, uint8_to_float
from datamodules.cache import atomic_torch_save, cache_root, config_hash
from datamodules.registry import register_datamodule
from datamodules.synthfaces.factors import sample_attributes
from datamodules.synthfaces.render import (
    ATTRIBUTES,
    region_masks,
    render,
    sample_identities,
    sample_nuisance,
)

log = logging.getLogger(__name__)
RENDER_VERSION = 4  # bump when the renderer's output changes, to invalidate caches
RENDER_CHUNK = 64   # small chunks keep the per-pixel tensors in cache: ~4x faster than one big batch


def take_factors(factors: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rows ``idx`` of every tensor of a factor dict ({name: (N, ...)} -> {name: (len(idx), ...)})."""
    return {k: v[idx] for k, v in factors.items()}


def render_chunked(ident: dict[str, torch.Tensor], nuis: dict[str, torch.Tensor], attrs: torch.Tensor,
                   size: int, progress: bool = False) -> torch.Tensor:
    """Render (N, 3, size, size) uint8 in chunks; inputs are per-image factor dicts and (N, 8) attrs."""
    n = attrs.shape[0]
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    with torch.inference_mode(), tqdm(total=n, desc=f"rendering synthfaces {size}px", disable=not progress,
                                      unit="img") as bar:
        for s in range(0, n, RENDER_CHUNK):
            sl = slice(s, s + RENDER_CHUNK)
            img = render(take_factors(ident, sl), take_factors(nuis, sl), attrs[sl], size)
            out[sl] = (img * 255).round().to(torch.uint8)
            bar.update(img.shape[0])
    return out


class SynthFacesWorld:
    """Every factor of every image of one configuration (all splits), and the renderer."""

    def __init__(self, num_identities: int, images_per_identity: int, seed: int, correlation: float,
                 nuisance: float) -> None:
        g = torch.Generator().manual_seed(seed)
        self.nuisance_strength = float(nuisance)
        self.identity_factors = sample_identities(num_identities, g)
        self.identity = torch.arange(num_identities).repeat_interleave(images_per_identity)
        n = self.identity.numel()
        self.ident = take_factors(self.identity_factors, self.identity)
        self.nuis = sample_nuisance(n, g, strength=nuisance)
        self.attrs = sample_attributes(self.ident, correlation, g)

    def render(self, idx: torch.Tensor, attrs: torch.Tensor | None, size: int) -> torch.Tensor:
        """uint8 (B, 3, size, size) images of global image indices ``idx`` with full (B, 8) ``attrs``."""
        attrs = self.attrs[idx] if attrs is None else attrs
        return render_chunked(take_factors(self.ident, idx), take_factors(self.nuis, idx), attrs, size)

    def regions(self, idx: torch.Tensor, size: int) -> dict[str, torch.Tensor]:
        return region_masks(take_factors(self.ident, idx), take_factors(self.nuis, idx), size)


class SynthFacesDataset(Dataset):
    """One split. Items follow the batch schema; ``counterfactual`` gives the exact edit."""

    def __init__(self, world: SynthFacesWorld, images: torch.Tensor, global_index: torch.Tensor,
                 attribute_columns: list[int], resolution: int) -> None:
        self.world = world
        self.images = images                    # uint8 (N, 3, H, W)
        self.global_index = global_index        # (N,) index into the world's images
        self.columns = attribute_columns
        self.resolution = resolution
        self.full_attrs = world.attrs[global_index]          # (N, 8)
        self.attrs = self.full_attrs[:, attribute_columns]   # (N, K)
        self.identity = world.identity[global_index]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": uint8_to_float(self.images[i]), "attrs": self.attrs[i], "identity": self.identity[i],
                "index": torch.tensor(i)}

    def counterfactuals(self, index: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        """Exact images of samples ``index`` (B,) with selected attributes ``attrs`` (B, K) in {0, 1}.

        Attributes not selected keep their values. Returns float32 (B, 3, H, W) in [-1, 1].
        """
        index = torch.as_tensor(index).long().reshape(-1).cpu()
        attrs = torch.as_tensor(attrs).float().reshape(index.numel(), -1).cpu()
        full = self.full_attrs[index].clone()
        full[:, self.columns] = attrs.round()
        return uint8_to_float(self.world.render(self.global_index[index], full, self.resolution))

    def counterfactual(self, index: int, attrs: torch.Tensor) -> torch.Tensor:
        """Single-image form of ``counterfactuals``: (3, H, W) in [-1, 1]."""
        return self.counterfactuals(torch.tensor([index]), torch.as_tensor(attrs)[None])[0]

    def region_masks(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Conservative bool masks (B, H, W) of where each local attribute may change pixels."""
        return self.world.regions(self.global_index[torch.as_tensor(index).long()], self.resolution)


@register_datamodule("synthfaces")
class SynthFacesDataModule(FaceDataModule):
    """Procedurally rendered faces with known identities, attributes, nuisance and exact counterfactuals.

    Args:
        attributes: CelebA names to use (default: all 8 of ``ATTRIBUTES``).
        resolution: 32 to 256 px.
        num_identities / images_per_identity: size of the set (identities are split, not images).
        correlation: 0 = independent attributes, 1 = the CelebA-like default bias.
        nuisance: scales pose / jitter / lighting (0 = canonical frontal faces).
        split_fractions: identity fractions of train / val / test.
        cache_dir: where rendered images are cached (default ``$ATTREDIT_CACHE`` or ``~/.cache/attredit-bench``).
        train_sampler / train_augment: how training batches are drawn and augmented (``FaceDataModule``).
    """

    name = "synthfaces"
    has_counterfactuals = True
    real_faces = False

    def __init__(
        self,
        attributes: Sequence[str] | None = None,
        resolution: int = 64,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        num_identities: int = 1000,
        images_per_identity: int = 12,
        correlation: float = 1.0,
        nuisance: float = 1.0,
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
        cache_dir: str | None = None,
        train_sampler: str = "shuffle",
        train_augment: str = "none",
    ) -> None:
        super().__init__(attributes, resolution, batch_size, num_workers, seed, train_sampler, train_augment)
        self.save_hyperparameters()
        if not 32 <= resolution <= 256:
            raise ValueError(f"synthfaces renders 32 to 256 px, got {resolution}")
        if len(split_fractions) != 3 or abs(sum(split_fractions) - 1) > 1e-6 or min(split_fractions) <= 0:
            raise ValueError(f"split_fractions must be three positive numbers summing to 1, got {split_fractions}")
        if num_identities < 3 or images_per_identity < 1:
            raise ValueError("need at least 3 identities (one per split) and 1 image per identity")
        self.num_identities = int(num_identities)
        self.images_per_identity = int(images_per_identity)
        self.correlation = float(correlation)
        self.nuisance = float(nuisance)
        self.split_fractions = tuple(float(f) for f in split_fractions)
        self.cache_dir = cache_dir
        self._select()
        self.world: SynthFacesWorld | None = None

    @property
    def all_attribute_names(self) -> list[str]:
        return list(ATTRIBUTES)

    def config_key(self) -> dict:
        return {"name": self.name, "version": RENDER_VERSION, "resolution": self.resolution, "seed": self.seed,
                "num_identities": self.num_identities, "images_per_identity": self.images_per_identity,
                "correlation": self.correlation, "nuisance": self.nuisance}

    def cache_path(self) -> str:
        return os.path.join(cache_root(self.cache_dir), "synthfaces", f"{config_hash(self.config_key())}.pt")

    def _images(self, world: SynthFacesWorld) -> torch.Tensor:
        path = self.cache_path()
        if os.path.exists(path):
            try:
                images = torch.load(path, weights_only=True)
                if images.shape == (world.identity.numel(), 3, self.resolution, self.resolution):
                    return images
                log.warning("synthfaces cache %s has the wrong shape; re-rendering", path)
            except Exception as err:  # a truncated cache file is re-rendered, never trusted
                log.warning("synthfaces cache %s is unreadable (%s); re-rendering", path, err)
        all_idx = torch.arange(world.identity.numel())
        images = render_chunked(world.ident, world.nuis, world.attrs[all_idx], self.resolution, progress=True)
        atomic_torch_save(images, path)
        return images

    def split_identities(self) -> dict[str, torch.Tensor]:
        """Identity ids of each split, disjoint, from a seeded permutation."""
        perm = torch.randperm(self.num_identities, generator=torch.Generator().manual_seed(self.seed + 1))
        n_train = max(1, int(round(self.split_fractions[0] * self.num_identities)))
        n_val = max(1, int(round(self.split_fractions[1] * self.num_identities)))
        n_train = min(n_train, self.num_identities - 2)
        return {"train": perm[:n_train], "val": perm[n_train:n_train + n_val], "test": perm[n_train + n_val:]}

    def prepare_data(self) -> None:
        if self.world is None:
            self.world = SynthFacesWorld(self.num_identities, self.images_per_identity, self.seed,
                                         self.correlation, self.nuisance)
        self._images(self.world)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.world is None:
            self.world = SynthFacesWorld(self.num_identities, self.images_per_identity, self.seed,
                                         self.correlation, self.nuisance)
        images = self._images(self.world)
        columns = [ATTRIBUTES.index(a) for a in self.attribute_names]
        for split, ids in self.split_identities().items():
            global_index = torch.nonzero(torch.isin(self.world.identity, ids)).squeeze(1)
            self.datasets[split] = SynthFacesDataset(self.world, images[global_index], global_index, columns,
                                                     self.resolution)
        assert set(self.datasets) == set(SPLITS)

    def counterfactuals(self, split: str, index: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        return self.dataset(split).counterfactuals(index, attrs)
