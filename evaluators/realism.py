"""Realism: Fréchet distance and KID of edited test images against reference statistics of train images.

References (see docs/metrics.md): the exact counterfactuals of the train images under the same flip
(``counterfactual_reference``; the headline on synthetic data), the train images of the target domain
(``domain_reference``; StarGAN v2 / L2M-GAN), the label-matched train images weighted to the edits' label mix
(``matched_reference``), and all train images (``reference_stats``).

Feature spaces behind a registry:
  * ``inception-v3-compat`` — torch-fidelity's Inception-v3 (the TF-FID weights): the row says ``fid``.
    Weights come from ``weights_path`` / ``$ATTREDIT_INCEPTION_WEIGHTS`` or torch.hub's cache
    (``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``); torch-fidelity downloads them
    there for an online user when this backend is asked for explicitly.
  * ``attrclf-resnet18`` — the pooled 512-d features of the suite's attribute classifier; always available
    offline, and labelled ``fd_attrclf-resnet18`` in every table (never called FID).
``auto`` picks Inception when its weights are on disk, else the classifier's features, and says why.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from datamodules.base import FaceDataModule, float_to_uint8
from datamodules.cache import atomic_torch_save, cache_root, config_hash
from evaluators.frechet import feature_stats, frechet_distance, weighted_feature_stats

log = logging.getLogger(__name__)

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE


class MissingWeightsError(FileNotFoundError):
    """Weights of a feature extractor are not on disk and could not be fetched."""


def inception_weights_path(weights_path: str | None = None) -> str:
    """Where the Inception weights are (or must go)."""
    if weights_path or os.environ.get("ATTREDIT_INCEPTION_WEIGHTS"):
        return str(weights_path or os.environ["ATTREDIT_INCEPTION_WEIGHTS"])
    return os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_FILE)


class FeatureSpace(nn.Module):
    """A named feature extractor: images float (B, 3, H, W) in [-1, 1] -> features (B, D).

    ``name`` is the backbone, ``metric_name`` the column label ("fid" only for Inception), ``resizer`` how
    images reach the extractor's input size. An ``nn.Module``, so it moves with the scorer and pickles for DDP.
    """

    name: str = ""
    metric_name: str = ""
    resizer: str = ""

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.extract(images).float()


class InceptionFeatures(FeatureSpace):
    name, metric_name = "inception-v3-compat", "fid"
    resizer = "torch-fidelity bilinear to 299 (TF-compatible)"

    def __init__(self, weights_path: str) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.net = FeatureExtractorInceptionV3(self.name, ["2048"], feature_extractor_weights_path=weights_path)
        self.net.eval()

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        (feats,) = self.net(float_to_uint8(images))  # uint8 in, resized to 299 inside torch-fidelity
        return feats


class ClassifierFeatures(FeatureSpace):
    name, metric_name = "attrclf-resnet18", "fd_attrclf-resnet18"
    resizer = "none (native resolution)"

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images)


def _inception(weights_path: str | None, allow_download: bool) -> FeatureSpace:
    path = inception_weights_path(weights_path)
    if not os.path.exists(path):
        if not allow_download:
            raise MissingWeightsError(
                f"Inception-v3 weights for FID not found. Put {INCEPTION_FILE} (from {INCEPTION_URL}) at {path}, "
                "or pass its path with --inception-weights / $ATTREDIT_INCEPTION_WEIGHTS.")
        try:  # online: let torch.hub fetch it into its cache, as torch-fidelity would
            torch.hub.load_state_dict_from_url(INCEPTION_URL, progress=True, file_name=INCEPTION_FILE)
        except Exception as err:
            raise MissingWeightsError(
                f"could not download {INCEPTION_URL} ({err}). Offline, put {INCEPTION_FILE} at {path} "
                "or pass its path with --inception-weights.") from err
    return InceptionFeatures(path)


def build_feature_space(backend: str, classifier: nn.Module, weights_path: str | None = None) -> FeatureSpace:
    """``backend``: "auto", "inception" (downloads for an online user if needed) or "attrclf"."""
    if backend == "inception":
        return _inception(weights_path, allow_download=True)
    if backend == "auto":
        if os.path.exists(inception_weights_path(weights_path)):
            return _inception(weights_path, allow_download=False)
        log.warning("FID unavailable offline: %s not found at %s; reporting the Fréchet distance in the attribute "
                    "classifier's ResNet18 feature space (fd_attrclf-resnet18) instead.", INCEPTION_FILE,
                    inception_weights_path(weights_path))
        return ClassifierFeatures(classifier)
    if backend == "attrclf":
        return ClassifierFeatures(classifier)
    raise ValueError(f"unknown realism backend {backend!r}; choose auto, inception or attrclf")


#: fewest images on either side of a Fréchet distance the suite reports (fewer: NaN and a ``realism_note``).
#: 2x the feature dimension would make the covariance full rank, impossible at tiny sizes for 512-d features;
#: 50 keeps the mean term meaningful and is documented in docs/metrics.md.
MIN_REALISM_IMAGES = 50


@dataclass
class ReferenceStats:
    """Real-image statistics in a feature space: mean (D,), covariance (D, D), a KID subset (M, D), the number
    of images behind mu/sigma and ``key_hash``, the hash of everything that made them (the cache key)."""

    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray  # a subset for KID
    n: int
    key_hash: str = ""


def _extract(space: FeatureSpace, n: int, images: Callable[[list[int]], torch.Tensor], batch_size: int,
             desc: str) -> torch.Tensor:
    """Features (n, D) on the CPU of ``n`` images given in batches by ``images(positions)`` -> (B, 3, H, W)."""
    feats = []
    for s in tqdm(range(0, n, batch_size), desc=desc, unit="batch"):
        feats.append(space(images(list(range(s, min(n, s + batch_size))))).cpu())
    return torch.cat(feats)


def _cached_stats(space: FeatureSpace, key: dict, n: int, images: Callable[[list[int]], torch.Tensor],
                  kid_images: int, batch_size: int, desc: str) -> ReferenceStats:
    """Statistics of ``n`` images given in batches by ``images(positions)`` -> (B, 3, H, W) in [-1, 1], cached
    (atomically) under the hash of ``key``."""
    key_hash = config_hash(key)
    path = os.path.join(cache_root(), "realism", f"{space.name}-{key_hash}.pt")
    if os.path.exists(path):
        try:
            blob = torch.load(path, weights_only=True)
            return ReferenceStats(blob["mu"].numpy(), blob["sigma"].numpy(), blob["features"].numpy(), n, key_hash)
        except Exception as err:
            log.warning("realism cache %s unreadable (%s); recomputing", path, err)
    f = _extract(space, n, images, batch_size, desc)
    mu, sigma = feature_stats(f)
    g = torch.Generator().manual_seed(0)
    sub = f[torch.randperm(len(f), generator=g)[:kid_images]].double()
    atomic_torch_save({"mu": torch.from_numpy(mu), "sigma": torch.from_numpy(sigma), "features": sub, "key": key},
                      path)
    return ReferenceStats(mu, sigma, sub.numpy(), n, key_hash)


def _base_key(space: FeatureSpace, dm: FaceDataModule, split: str, n: int, kid_images: int | None,
              key_extra: dict | None) -> dict:
    """The cache key of features of ``n`` ``split`` images in ``space`` (``kid_images`` None: no KID subset)."""
    kid = {} if kid_images is None else {"kid_images": kid_images}
    return {"data": dm.config_key(), "split": split, "n": n, "space": space.name, "resizer": space.resizer,
            **kid, **(key_extra or {})}


def reference_stats(space: FeatureSpace, dm: FaceDataModule, split: str = "train", max_images: int = 50_000,
                    kid_images: int = 5_000, key_extra: dict | None = None, batch_size: int = 128
                    ) -> ReferenceStats:
    """Statistics of all real ``split`` images in ``space`` (the attribute mix of the split), cached by
    everything that changes them."""
    ds = dm.dataset(split)
    n = min(len(ds), max_images)
    key = _base_key(space, dm, split, n, kid_images, key_extra)
    return _cached_stats(space, key, n, lambda pos: torch.stack([ds[i]["image"] for i in pos]), kid_images,
                         batch_size, f"real {split} features ({space.name})")


def _seeded_subset(indices: torch.Tensor, max_images: int) -> torch.Tensor:
    """``indices`` (N,), or a seeded sorted subset of ``max_images`` of them."""
    if len(indices) <= max_images:
        return indices
    g = torch.Generator().manual_seed(0)
    return indices[torch.randperm(len(indices), generator=g)[:max_images]].sort().values


def counterfactual_reference(space: FeatureSpace, dm: FaceDataModule, attribute: str, max_images: int = 50_000,
                             kid_images: int = 5_000, key_extra: dict | None = None, batch_size: int = 128
                             ) -> ReferenceStats:
    """Statistics of the exact counterfactuals of the *train* images under the flip of ``attribute`` (each train
    image rendered with that one attribute flipped, all else kept): the distribution a perfect edit of test
    images is drawn from. Only for data sets with ``has_counterfactuals``."""
    ds = dm.dataset("train")
    col = dm.attribute_names.index(attribute)
    chosen = _seeded_subset(torch.arange(len(ds)), max_images)
    key = _base_key(space, dm, "train", len(chosen), kid_images, key_extra) | {
        "reference": "counterfactual-train", "attribute": attribute}

    def images(pos: list[int]) -> torch.Tensor:
        idx = chosen[pos]
        tgt = ds.attrs[idx].clone()
        tgt[:, col] = 1 - tgt[:, col]
        return dm.counterfactuals("train", idx, tgt)

    return _cached_stats(space, key, len(chosen), images, kid_images, batch_size,
                         f"counterfactual train features {attribute} ({space.name})")


def domain_reference(space: FeatureSpace, dm: FaceDataModule, attribute: str, value: int,
                     max_images: int = 50_000, kid_images: int = 5_000, key_extra: dict | None = None,
                     batch_size: int = 128, labels: dict[str, int] | None = None) -> ReferenceStats | None:
    """Statistics of the train images whose ``attribute`` equals ``value`` (the target domain, as StarGAN v2's
    and L2M-GAN's ``metrics/eval.py``), further restricted to ``labels`` {name: value} when given (for the
    weighted label-matched mixture see ``matched_reference``). None when fewer than ``MIN_REALISM_IMAGES`` train
    images qualify."""
    ds = dm.dataset("train")
    want = {attribute: int(value), **(labels or {})}
    mask = torch.ones(len(ds), dtype=torch.bool)
    for name, v in want.items():
        mask &= ds.attrs[:, dm.attribute_names.index(name)] == float(v)
    pool = torch.nonzero(mask).squeeze(1)
    if len(pool) < MIN_REALISM_IMAGES:
        return None
    chosen = _seeded_subset(pool, max_images)
    key = _base_key(space, dm, "train", len(chosen), kid_images, key_extra) | {
        "reference": "target-domain-train", "labels": sorted(want.items())}
    return _cached_stats(space, key, len(chosen), lambda pos: torch.stack([ds[int(i)]["image"] for i in chosen[pos]]),
                         kid_images, batch_size, f"train features {want} ({space.name})")


def split_subset(dm: FaceDataModule, split: str, max_images: int) -> torch.Tensor:
    """The ``split`` images behind ``split_features``: all indices (N,), or a seeded sorted subset of ``max_images``."""
    return _seeded_subset(torch.arange(len(dm.dataset(split))), max_images)


def split_features(space: FeatureSpace, dm: FaceDataModule, split: str, max_images: int = 50_000,
                   key_extra: dict | None = None, batch_size: int = 128) -> torch.Tensor:
    """Features (N, D) float32 of the images ``split_subset(dm, split, max_images)`` (row n is image subset[n]),
    the whole matrix (not only statistics: weighted references need it), cached atomically under the hash of
    everything that changes it."""
    ds = dm.dataset(split)
    chosen = split_subset(dm, split, max_images)
    key = _base_key(space, dm, split, len(chosen), None, key_extra) | {"reference": "features", "subset": "seeded-0"}
    path = os.path.join(cache_root(), "realism", f"{space.name}-features-{config_hash(key)}.pt")
    if os.path.exists(path):
        try:
            return torch.load(path, weights_only=True)["features"]
        except Exception as err:
            log.warning("realism cache %s unreadable (%s); recomputing", path, err)
    f = _extract(space, len(chosen), lambda pos: torch.stack([ds[int(i)]["image"] for i in chosen[pos]]),
                 batch_size, f"{split} features ({space.name})").float()
    atomic_torch_save({"features": f, "key": key}, path)
    return f


def intended_labels(dm: FaceDataModule, attribute: str, indices: list[int]) -> torch.Tensor:
    """The intended labels (M, K) in {0, 1} of the edits of test images ``indices`` (M,): each image's selected
    labels with ``attribute``'s column flipped."""
    tgt = dm.dataset("test").attrs[torch.as_tensor(indices, dtype=torch.long)].round().clone()
    col = dm.attribute_names.index(attribute)
    tgt[:, col] = 1 - tgt[:, col]
    return tgt


def label_mix_weights(labels: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights that make images with ``labels`` (N, K) a mixture with the label mix of ``targets`` (M, K): an
    image whose label vector t is among the targets weighs n_targets(t) / n_images(t), any other 0 (float64, (N,);
    they sum to the number of matched targets). Also ``matched`` (M,) bool: some image has target m's labels."""
    both = torch.cat([labels, targets]).round().long()
    _, group = torch.unique(both, dim=0, return_inverse=True)
    img, tgt = group[:len(labels)], group[len(labels):]
    n_img = torch.bincount(img, minlength=len(both)).double()
    n_tgt = torch.bincount(tgt, minlength=len(both)).double()
    return n_tgt[img] / n_img[img], n_img[tgt] > 0


@dataclass
class MatchedReference:
    """The label-matched reference of the edits of test images ``indices`` flipping ``attribute``: the train
    images whose selected labels equal an edit's intended labels, weighted to the edits' label mix; mu (D,),
    sigma (D, D) (None when it cannot be measured), ``floor`` the FD of real test images matched the same way
    (NaN when not measured), ``n_pool`` train images in it, ``n_unmatched`` edits whose intended labels no
    train image has, ``notes`` why something is NaN or partial."""

    attribute: str
    indices: tuple[int, ...]
    mu: np.ndarray | None
    sigma: np.ndarray | None
    floor: float
    n_pool: int
    n_unmatched: int
    notes: list[str]


def _matched_floor(space: FeatureSpace, dm: FaceDataModule, targets: torch.Tensor, mu: np.ndarray,
                   sigma: np.ndarray, min_images: int, max_images: int, key_extra: dict | None,
                   batch_size: int) -> tuple[float, list[str]]:
    """FD of the real test images weighted to the label mix of ``targets`` (M, K) (a test image of labels t
    weighs n_targets(t) / n_test(t)) to the reference (mu, sigma), and notes; NaN when under ``min_images``."""
    chosen = split_subset(dm, "test", max_images)
    w, matched = label_mix_weights(dm.dataset("test").attrs[chosen], targets)
    notes = []
    if int((~matched).sum()):
        notes.append(f"realism_matched_floor: {int((~matched).sum())} of {len(targets)} matched edits have no "
                     "test image with their intended labels")
    pool = w > 0
    if int(pool.sum()) < min_images:
        return float("nan"), notes + [f"realism_matched_floor: {int(pool.sum())} test images have the edits' "
                                      f"intended labels (< {min_images})"]
    if int(matched.sum()) < 2:  # a single label vector: the weights sum to 1, no covariance
        return float("nan"), notes + ["realism_matched_floor: fewer than 2 edits have a test image with their "
                                      "intended labels"]
    f = split_features(space, dm, "test", max_images, key_extra, batch_size)
    return frechet_distance(*weighted_feature_stats(f[pool], w[pool]), mu, sigma), notes


def matched_reference(space: FeatureSpace, dm: FaceDataModule, attribute: str, indices: list[int],
                      min_images: int = MIN_REALISM_IMAGES, max_images: int = 50_000,
                      key_extra: dict | None = None, batch_size: int = 128) -> MatchedReference:
    """The label-matched reference (see ``MatchedReference``, docs/metrics.md) of flipping ``attribute`` on test
    images ``indices``, over the edits whose intended labels some train image has. Unmeasured (mu None, floor
    NaN, a note) with fewer than ``min_images`` edits or train images in the pool."""
    targets = intended_labels(dm, attribute, indices)
    chosen = split_subset(dm, "train", max_images)
    w, matched = label_mix_weights(dm.dataset("train").attrs[chosen], targets)
    n_unmatched, pool = int((~matched).sum()), w > 0
    out = MatchedReference(attribute, tuple(indices), None, None, float("nan"), int(pool.sum()), n_unmatched, [])
    if n_unmatched:
        out.notes.append(f"realism_matched: {n_unmatched} of {len(targets)} edits have no train image with their "
                         "intended labels")
    if len(targets) < min_images:
        out.notes.append(f"realism_matched: {len(targets)} edits (< {min_images})")
    elif out.n_pool < min_images:
        out.notes.append(f"realism_matched: {out.n_pool} train images have the edits' intended labels "
                         f"(< {min_images})")
    elif int(matched.sum()) < 2:  # a single label vector: the weights sum to 1, no covariance
        out.notes.append("realism_matched: fewer than 2 edits have a train image with their intended labels")
    else:
        f = split_features(space, dm, "train", max_images, key_extra, batch_size)
        out.mu, out.sigma = weighted_feature_stats(f[pool], w[pool])
        out.floor, notes = _matched_floor(space, dm, targets[matched], out.mu, out.sigma, min_images, max_images,
                                          key_extra, batch_size)
        out.notes += notes
    return out


def resize_for(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of (B, 3, H, W) images to ``size`` (no-op when equal)."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
