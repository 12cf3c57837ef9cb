"""The scoring protocol, in one visible place.

For one (method, attribute): every selected test image is edited to flip the attribute (strength as given;
in reference mode the method gets a seeded test image that has the target value, of another identity; in
latent mode none). Then:
  * attribute manipulation: the classifier reads the flipped attribute on the edit (overall / add / remove);
  * attribute preservation: the classifier's other attributes are unchanged between input and edit;
  * identity: cosine of identity embeddings of input and edit, and the share above the FAR=1e-3 threshold;
  * realism: Fréchet distance and KID of the edits against the real train images, and the real-vs-real floor
    (unedited test images against the same reference);
  * counterfactual error (exact-counterfactual data sets): L1 whole / in-region / out-of-region, PSNR, SSIM;
  * cost: edit latency per image and parameter count.
Scoring runs as ``trainer.test`` of a ``ScoringModule``, so it runs on any Lightning accelerator/strategy; the
test images are sharded without padding and every metric is a torchmetrics Metric synced at ``compute``,
which every rank calls, so 1 and N processes give the same numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler
from torchmetrics import Metric
from torchmetrics.aggregation import SumMetric

from datamodules.base import FaceDataModule
from datamodules.cache import config_hash
from evaluators.attribute_metrics import AttributeManipulation, AttributePreservation
from evaluators.classifier import ClassifierReport
from evaluators.counterfactual import CounterfactualError
from evaluators.frechet import FrechetDistance, KernelDistance
from evaluators.identity_encoder import IdentityReport
from evaluators.identity_metrics import IdentityPreservation
from evaluators.realism import FeatureSpace, ReferenceStats
from methods.base import EditingMethod


class InputEvaluations:
    """What the evaluators read on the *unedited* test images — classifier logits, identity embedding, realism
    features — kept on the CPU per (data set configuration, image index), so scoring N methods runs these
    forward passes once instead of N times. Pure caching: the values are those a fresh forward pass gives."""

    def __init__(self) -> None:
        self._store: dict[tuple[str, int], tuple[torch.Tensor, ...]] = {}

    def __len__(self) -> int:
        return len(self._store)

    def get(self, tag: str, index: torch.Tensor, compute: Callable[[], tuple[torch.Tensor, ...]]
            ) -> tuple[torch.Tensor, ...]:
        """The cached outputs of the images ``index`` (B,), or ``compute()`` them (each (B, ...)) and keep them."""
        keys = [(tag, int(i)) for i in index.tolist()]
        if keys and all(k in self._store for k in keys):
            rows = [self._store[k] for k in keys]
            return tuple(torch.stack([r[j] for r in rows]) for j in range(len(rows[0])))
        out = compute()
        on_cpu = [o.detach().cpu() for o in out]  # one device-to-host copy per output, not one per image
        for b, key in enumerate(keys):
            self._store[key] = tuple(c[b].clone() for c in on_cpu)
        return out


@dataclass
class EvaluatorBundle:
    """The evaluator networks and reference statistics of one data set (built once, shared by all methods)."""

    classifier: ClassifierReport
    identity: IdentityReport
    space: FeatureSpace
    reference: ReferenceStats
    #: evaluator outputs on unedited test images (they do not depend on the method), computed once per image
    inputs: InputEvaluations = field(default_factory=InputEvaluations)


class ShardSampler(Sampler[int]):
    """Indices ``indices[rank::world]``: every sample exactly once over all ranks (no padding, no repeats)."""

    def __init__(self, indices: list[int], rank: int, world: int) -> None:
        self.indices = indices[rank::world]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def evaluation_indices(n: int, max_images: int | None, seed: int) -> list[int]:
    """The test images scored: all of them, or a seeded subset of ``max_images`` (sorted)."""
    if max_images is None or max_images >= n:
        return list(range(n))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_images]
    return sorted(perm.tolist())


def reference_indices(attrs: torch.Tensor, identity: torch.Tensor, column: int, seed: int) -> torch.Tensor:
    """For each test image, a seeded test image with the opposite value of ``column`` and another identity."""
    g = torch.Generator().manual_seed(seed + 7919)
    out = torch.empty(len(attrs), dtype=torch.long)
    for value in (0.0, 1.0):
        pool = torch.nonzero(attrs[:, column] == value).squeeze(1)
        need = torch.nonzero(attrs[:, column] != value).squeeze(1)
        if len(pool) == 0 and len(need) > 0:
            raise ValueError(f"no test image has value {value} of the target attribute to serve as reference")
        for i in need.tolist():
            cand = pool[torch.randint(len(pool), (8,), generator=g)]
            other = cand[identity[cand] != identity[i]]
            out[i] = other[0] if len(other) else cand[0]
    return out


class ScoringModule(L.LightningModule):
    def __init__(self, method: EditingMethod, bundle: EvaluatorBundle, dm: FaceDataModule, attribute: str,
                 strength: float = 1.0, max_images: int | None = None, batch_size: int = 64, seed: int = 0,
                 mode: str | None = None) -> None:
        super().__init__()
        self.mode = method.check_mode(mode)  # None = the method's default mode
        self.method, self.dm = method, dm
        self.classifier = bundle.classifier.model
        self.id_encoder = bundle.identity.model
        self.space = bundle.space
        self.attribute, self.strength, self.batch_size = attribute, float(strength), batch_size
        self.column = method.attribute_index(attribute)
        self.clf_column = bundle.classifier.model.attribute_names.index(attribute)
        test = dm.dataset("test")
        self.indices = evaluation_indices(len(test), max_images, seed)
        self.uses_reference = self.mode == "reference"  # exemplars only in reference mode
        if self.uses_reference:
            self.ref_index = reference_indices(test.attrs, test.identity, dm.attribute_names.index(attribute), seed)
        self.manipulation = AttributeManipulation()
        self.preservation = AttributePreservation()
        self.identity = IdentityPreservation(bundle.identity.threshold)
        self.fd = FrechetDistance(bundle.reference.mu, bundle.reference.sigma)
        self.fd_floor = FrechetDistance(bundle.reference.mu, bundle.reference.sigma)
        self.kid = KernelDistance(bundle.reference.features)
        self.cf = CounterfactualError() if dm.has_counterfactuals else None
        self.inputs = bundle.inputs
        self.input_tag = config_hash({"data": dm.config_key(), "split": "test"})
        self.edit_seconds, self.edited = SumMetric(), SumMetric()
        self.results: dict[str, float] = {}

    def test_dataloader(self) -> DataLoader:
        world, rank = self.trainer.world_size, self.trainer.global_rank
        return DataLoader(self.dm.dataset("test"), batch_size=self.batch_size,
                          sampler=ShardSampler(self.indices, rank, world), num_workers=self.dm.num_workers)

    def on_test_start(self) -> None:
        # Fresh state tensors in every process: under ddp_spawn the pickled module's tensors live in shared
        # memory, so without this every rank would add into the same storage.
        for m in self.modules():
            if isinstance(m, Metric):
                m.reset()

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        return self.space(images)

    def test_step(self, batch, batch_idx):
        x, src = batch["image"], batch["attrs"]
        tgt = src.clone()
        tgt[:, self.column] = 1 - tgt[:, self.column]
        reference = None
        if self.uses_reference:
            test = self.dm.dataset("test")
            ref_i = self.ref_index[batch["index"].cpu()]
            reference = torch.stack([test[int(i)]["image"] for i in ref_i]).to(x)
        if x.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        edit = self.method.edit(x, src, tgt, strength=self.strength, reference=reference)
        if x.is_cuda:
            torch.cuda.synchronize()
        self.edit_seconds.update(torch.tensor(time.perf_counter() - t0, dtype=torch.float64))
        self.edited.update(torch.tensor(float(x.shape[0]), dtype=torch.float64))
        if edit.shape != x.shape or edit.dtype != x.dtype:
            raise ValueError(f"{self.method.method_name}.edit returned {tuple(edit.shape)} {edit.dtype}, "
                             f"expected {tuple(x.shape)} {x.dtype}")
        if not torch.isfinite(edit).all():
            raise ValueError(f"{self.method.method_name}.edit returned non-finite values")
        edit = edit.clamp(-1, 1)
        pred_in, emb_in, f_in = (t.to(x.device) for t in self.inputs.get(
            self.input_tag, batch["index"], lambda: (self.classifier.predict(x), self.id_encoder(x),
                                                     self._features(x))))
        pred_edit = self.classifier.predict(edit)
        self.manipulation.update(pred_edit[:, self.clf_column], tgt[:, self.column])
        self.preservation.update(pred_in, pred_edit, self.clf_column)
        self.identity.update(emb_in, self.id_encoder(edit))
        f_edit = self._features(edit)
        self.fd.update(f_edit)
        self.kid.update(f_edit)
        self.fd_floor.update(f_in)
        if self.cf is not None:
            truth = self.dm.counterfactuals("test", batch["index"].cpu(), tgt.cpu()).to(x)
            self.cf.update(x, edit, truth)

    def on_test_epoch_end(self) -> None:
        r: dict[str, float] = {}
        r.update({k: float(v) for k, v in self.manipulation.compute().items()})
        r["attr_preservation"] = float(self.preservation.compute())
        r.update({k: float(v) for k, v in self.identity.compute().items()})
        r["realism"] = float(self.fd.compute())
        r["realism_floor"] = float(self.fd_floor.compute())
        r["kid"] = float(self.kid.compute())
        if self.cf is not None:
            r.update({k: float(v) for k, v in self.cf.compute().items()})
        n = float(self.edited.compute())
        r["n_images"] = n
        r["edit_ms"] = 1000.0 * float(self.edit_seconds.compute()) / max(n, 1.0)
        self.results = r
        self.log_dict({k: v for k, v in r.items() if not math.isnan(v)}, sync_dist=False, rank_zero_only=False)

