"""The scoring protocol, in one visible place.

For one (method, attribute): every selected test image is edited to flip the attribute (strength as given;
in reference mode the method gets a seeded test image that has the target value, of another identity; in
latent mode none). Then:
  * attribute manipulation: the classifier reads the flipped attribute on the edit (overall / add / remove);
  * attribute preservation: the classifier's reading of every other attribute on the edit equals the ground
    truth (the source label, which the edit must keep) where the data set labels it, else its reading of the input;
  * identity: cosine of identity embeddings of input and edit, and the share above the FAR=1e-3 threshold;
  * success (headline): per image, the flip seen (source read on the input, target read on the edit) AND
    identity matched AND every other attribute kept; with a
    95% bootstrap interval over test identities (evaluators/intervals.py) for success, attr_acc, id_match and
    attr_preservation; per-image outcomes are gathered over ranks and written once by rank 0;
  * realism: on exact-counterfactual data the Fréchet distance / KID of the edits to the exact counterfactuals
    of the train images under the same flip, floor = the test images' exact counterfactuals; always also the
    target-domain protocol of StarGAN v2 / L2M-GAN (mean over add/remove of the FD to the train images of the
    target domain, floor = the test images of that domain), the headline on real data; and the label-matched
    FD (the train images having an edit's intended labels, weighted to the edits' label mix; floor = the test
    images matched the same way, computed once outside the loop since it does not depend on the method);
  * counterfactual error (exact-counterfactual data sets): L1 whole / in-region / out-of-region, PSNR, SSIM;
  * cost: edit latency per image and parameter count.
Scoring runs as ``trainer.test`` of a ``ScoringModule``, so it runs on any Lightning accelerator/strategy; the
test images are sharded without padding and every metric is a torchmetrics Metric synced at ``compute``,
which every rank calls, so 1 and N processes give the same numbers.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Sampler
from torchmetrics import Metric
from torchmetrics.aggregation import SumMetric

from datamodules.base import FaceDataModule
from datamodules.cache import atomic_write_bytes, config_hash
from evaluators.attribute_metrics import AttributeManipulation
from evaluators.classifier import ClassifierReport
from evaluators.counterfactual import CounterfactualError
from evaluators.frechet import FrechetDistance, KernelDistance
from evaluators.identity_encoder import IdentityReport
from evaluators.identity_metrics import IdentityPreservation
from evaluators.intervals import PER_IMAGE_COLUMNS, identity_bootstrap
from evaluators.realism import MIN_REALISM_IMAGES, FeatureSpace, MatchedReference, ReferenceStats
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
    #: realism references, built on first use by ``realism_references`` / ``matched_reference``
    references: dict[tuple, ReferenceStats | MatchedReference | None] = field(default_factory=dict)
    #: how references are built: max_images, kid_images, key_extra (see evaluators/realism.py)
    reference_args: dict = field(default_factory=dict)

    def realism_references(self, dm: FaceDataModule, attribute: str) -> dict[str, ReferenceStats | None]:
        """The references of flipping ``attribute``: "cf" (exact counterfactuals of the train images under the
        flip; None without counterfactuals), "dom0" / "dom1" (train images with the attribute 0 / 1; None when
        too few). Built once per attribute and cached on disk by everything that changes them."""
        from evaluators.realism import counterfactual_reference, domain_reference

        args = {"max_images": 50_000, "kid_images": 5_000, **self.reference_args}
        out: dict[str, ReferenceStats | None] = {}
        key = ("cf", attribute)
        if key not in self.references:
            self.references[key] = (counterfactual_reference(self.space, dm, attribute, **args)
                                    if dm.has_counterfactuals else None)
        out["cf"] = self.references[key]
        for v in (0, 1):
            key = ("dom", attribute, v)
            if key not in self.references:
                self.references[key] = domain_reference(self.space, dm, attribute, v, **args)
            out[f"dom{v}"] = self.references[key]
        return out

    def matched_reference(self, dm: FaceDataModule, attribute: str, indices: list[int],
                          min_images: int = MIN_REALISM_IMAGES) -> MatchedReference:
        """The label-matched reference of flipping ``attribute`` on test images ``indices`` (M,) (it does not
        depend on the method): built once per (data set, selected attributes, attribute, indices, min_images) from
        cached train / test features."""
        from evaluators.realism import matched_reference

        key = ("matched", config_hash(dm.config_key()), tuple(dm.attribute_names), attribute, tuple(indices),
               int(min_images))
        if key not in self.references:
            args = {"max_images": 50_000, **self.reference_args}
            self.references[key] = matched_reference(self.space, dm, attribute, indices, min_images,
                                                     args["max_images"], args.get("key_extra"))
        return self.references[key]


class Gathered(Metric):
    """Per-image values concatenated over batches and ranks (``dist_reduce_fx="cat"``): ``update(**columns)``
    with (B,) tensors; ``compute`` returns {name: (N,) float64 numpy} sorted by the "index" column, so the
    result does not depend on sharding or batch size."""

    full_state_update = False

    def __init__(self, names: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.names = list(names)
        for n in self.names:
            self.add_state(n, [], dist_reduce_fx="cat")

    def update(self, **columns: torch.Tensor) -> None:
        for n in self.names:
            getattr(self, n).append(columns[n].detach().double().reshape(-1))

    def compute(self) -> dict[str, np.ndarray]:
        out = {}
        for n in self.names:
            v = getattr(self, n)
            v = v if isinstance(v, torch.Tensor) else (torch.cat(v) if len(v) else torch.zeros(0, dtype=torch.float64))
            out[n] = v.cpu().numpy()
        order = np.argsort(out["index"], kind="stable")
        return {n: v[order] for n, v in out.items()}


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


def method_columns(method: EditingMethod, attribute_names: list[str]) -> list[int]:
    """The columns of a data module's attributes (named ``attribute_names``) that ``method`` edits, in the
    method's order: ``attrs[:, method_columns(...)]`` is what its ``edit`` takes. A per-attribute model knows one
    of the data module's attributes; a multi-attribute model all of them."""
    missing = [a for a in method.attribute_names if a not in attribute_names]
    if missing:
        raise ValueError(f"{method.method_name} edits {method.attribute_names} but the data module selects "
                         f"{list(attribute_names)}; build the data module with the method's attributes")
    return [list(attribute_names).index(a) for a in method.attribute_names]


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
                 references: dict[str, ReferenceStats | None] | None = None, kid_subset_size: int = 1000,
                 min_realism_images: int = MIN_REALISM_IMAGES, per_image_path: str | None = None,
                 bootstrap_resamples: int = 1000, mode: str | None = None,
                 matched: MatchedReference | None = None) -> None:
        super().__init__()
        self.mode = method.check_mode(mode)  # None = the method's default mode
        self.method, self.dm = method, dm
        self.classifier = bundle.classifier.model
        self.id_encoder = bundle.identity.model
        self.space = bundle.space
        self.attribute, self.strength, self.batch_size = attribute, float(strength), batch_size
        method.attribute_index(attribute)  # the method must edit the scored attribute
        self.column = dm.attribute_names.index(attribute)  # in the data module's attrs (src / tgt below)
        self.method_columns = method_columns(method, dm.attribute_names)  # what the method's edit takes
        self.clf_column = bundle.classifier.model.attribute_names.index(attribute)
        test = dm.dataset("test")
        self.indices = evaluation_indices(len(test), max_images, seed)
        self.uses_reference = self.mode == "reference"  # exemplars only in reference mode
        if self.uses_reference:
            self.ref_index = reference_indices(test.attrs, test.identity, self.column, seed)
        self.seed, self.per_image_path, self.bootstrap_resamples = seed, per_image_path, bootstrap_resamples
        self.id_threshold = float(bundle.identity.threshold)
        # classifier columns -> data module columns, where the data set labels that attribute (else -1)
        self.label_column = torch.tensor([dm.attribute_names.index(a) if a in dm.attribute_names else -1
                                          for a in self.classifier.attribute_names])
        self.manipulation = AttributeManipulation()
        self.identity = IdentityPreservation(bundle.identity.threshold)
        refs = references if references is not None else {}
        self.cf = CounterfactualError() if dm.has_counterfactuals else None
        self.fd = self.fd_floor = self.kid = None
        cf_ref = refs.get("cf")
        if cf_ref is not None:
            self.fd = FrechetDistance(cf_ref.mu, cf_ref.sigma)
            self.fd_floor = FrechetDistance(cf_ref.mu, cf_ref.sigma)
            self.kid = KernelDistance(cf_ref.features, subset_size=kid_subset_size)
        # target-domain references (StarGAN v2 / L2M-GAN): edits towards value v against train images with v
        self.fd_dom, self.fd_dom_floor = torch.nn.ModuleDict(), torch.nn.ModuleDict()
        self.kid_dom = torch.nn.ModuleDict()
        for v in ("0", "1"):
            ref = refs.get(f"dom{v}")
            if ref is not None:
                self.fd_dom[v] = FrechetDistance(ref.mu, ref.sigma, min_samples=min_realism_images)
                self.fd_dom_floor[v] = FrechetDistance(ref.mu, ref.sigma, min_samples=min_realism_images)
                if cf_ref is None:
                    self.kid_dom[v] = KernelDistance(ref.features, subset_size=kid_subset_size)
        # label-matched reference (train images with the edits' intended labels, weighted to their label mix)
        self.fd_matched, self.matched_floor = None, float("nan")
        if matched is not None:
            if matched.indices != tuple(self.indices) or matched.attribute != attribute:
                raise ValueError("the label-matched reference was built for other test images or attribute")
            self.matched_floor = matched.floor
            if matched.mu is not None:
                self.fd_matched = FrechetDistance(matched.mu, matched.sigma, min_samples=min_realism_images)
        self.per_image = Gathered(PER_IMAGE_COLUMNS + ["others_frac", "success_ceiling"])
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
        cols = self.method_columns
        edit = self.method.edit(x, src[:, cols], tgt[:, cols], strength=self.strength, reference=reference)
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
        emb_edit = self.id_encoder(edit)
        self.manipulation.update(pred_edit[:, self.clf_column], tgt[:, self.column])
        self.identity.update(emb_in, emb_edit)
        expected = self._expected_others(pred_in, src)
        target_read, id_cos, others_frac, others_kept = self._outcomes(pred_edit, emb_in, emb_edit, expected, tgt)
        source_read = self._source_read(pred_in, src)
        f_edit = self._features(edit)
        if self.fd is not None:
            self.fd.update(f_edit)
            self.kid.update(f_edit)
        if self.fd_matched is not None:
            self.fd_matched.update(f_edit)
        want = tgt[:, self.column].round()
        have = src[:, self.column].round()
        for v, fd in self.fd_dom.items():
            fd.update(f_edit[want == float(v)])
            self.fd_dom_floor[v].update(f_in[have == float(v)])
            if v in self.kid_dom:
                self.kid_dom[v].update(f_edit[want == float(v)])
        nan = torch.full_like(id_cos, float("nan"))
        cf_l1, ceiling = nan, nan
        if self.cf is not None:
            truth = self.dm.counterfactuals("test", batch["index"].cpu(), tgt.cpu()).to(x)
            self.cf.update(x, edit, truth)
            cf_l1 = (edit - truth).abs().mean(dim=1).flatten(1).mean(1)
            pred_t, emb_t, f_t = (t.to(x.device) for t in self.inputs.get(
                self.input_tag + f"-cf-{self.attribute}", batch["index"],
                lambda: (self.classifier.predict(truth), self.id_encoder(truth), self._features(truth))))
            if self.fd_floor is not None:
                self.fd_floor.update(f_t)
            t_read, t_cos, _, t_kept = self._outcomes(pred_t, emb_in, emb_t, expected, tgt)
            ceiling = self._success(source_read, t_read, t_cos, t_kept)
        self.per_image.update(
            index=batch["index"], identity=batch["identity"], target_value=want, source_read=source_read,
            target_read=target_read, id_cos=id_cos, id_match=self._match(id_cos), others_kept=others_kept,
            success=self._success(source_read, target_read, id_cos, others_kept), cf_l1=cf_l1,
            others_frac=others_frac, success_ceiling=ceiling)

    def _expected_others(self, pred_in: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """What every classifier attribute should read on a faithful edit (B, K_clf) in {0, 1}: the source
        label where the data set labels the attribute, else the classifier's reading of the input."""
        out = pred_in.round().clone()
        labelled = self.label_column >= 0
        out[:, labelled] = src[:, self.label_column[labelled].to(src.device)].round().to(out)
        return out

    def _outcomes(self, pred: torch.Tensor, emb_in: torch.Tensor, emb: torch.Tensor, expected: torch.Tensor,
                  tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per image (B,): target read (0/1), identity cosine, share of other attributes kept, all kept (0/1)."""
        target_read = (pred[:, self.clf_column].round() == tgt[:, self.column].round()).double()
        id_cos = (emb_in * emb).sum(1).double()
        others = torch.ones(pred.shape[1], dtype=torch.bool, device=pred.device)
        others[self.clf_column] = False
        same = (pred[:, others].round() == expected[:, others]).double()
        frac = same.mean(1) if same.shape[1] else torch.ones_like(id_cos)
        return target_read, id_cos, frac, (frac == 1).double()

    def _source_read(self, pred_in: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """Per image (B,): 1 where the classifier reads the *input* as the source value of the flipped attribute,
        so that reading the target on the edit is a change the judge saw, not one of its false reads."""
        return (pred_in[:, self.clf_column].round() == src[:, self.column].round()).double()

    def _match(self, id_cos: torch.Tensor) -> torch.Tensor:
        if math.isnan(self.id_threshold):
            return torch.full_like(id_cos, float("nan"))
        return (id_cos > self.id_threshold).double()  # the same rule as IdentityPreservation's id_match

    def _success(self, source_read: torch.Tensor, target_read: torch.Tensor, id_cos: torch.Tensor,
                 others_kept: torch.Tensor) -> torch.Tensor:
        """Joint success per image: 1 when the classifier sees the flip (it reads the source value on the input
        and the target value on the edit), identity matches and every other attribute is kept; NaN where identity
        cannot be judged (no calibrated threshold). Requiring the source read on the input makes a method that
        returns its input score exactly 0 whatever the classifier's false-read rate."""
        return source_read * target_read * self._match(id_cos) * others_kept

    def on_test_epoch_end(self) -> None:
        r: dict[str, float] = {}
        r.update({k: float(v) for k, v in self.manipulation.compute().items()})
        r.update({k: float(v) for k, v in self.identity.compute().items()})
        r.update(self._per_image_scores(self.per_image.compute()))
        r.update(self._realism())
        if self.cf is not None:
            r.update({k: float(v) for k, v in self.cf.compute().items()})
        n = float(self.edited.compute())
        r["n_images"] = n
        r["edit_ms"] = 1000.0 * float(self.edit_seconds.compute()) / max(n, 1.0)
        self.results = r
        self.log_dict({k: v for k, v in r.items() if not math.isnan(v)}, sync_dist=False, rank_zero_only=False)


    def _per_image_scores(self, p: dict[str, np.ndarray]) -> dict[str, float]:
        """success (overall / add / remove / ceiling), attr_preservation and the bootstrap intervals over test
        identities, from the per-image outcomes of all ranks; rank 0 writes them to ``per_image_path``."""
        nan = float("nan")

        def mean(v: np.ndarray) -> float:
            v = v[np.isfinite(v)]
            return float(v.mean()) if len(v) else nan

        add, rem = p["target_value"] == 1, p["target_value"] == 0
        r = {"success": mean(p["success"]), "success_add": mean(p["success"][add]),
             "success_remove": mean(p["success"][rem]), "success_ceiling": mean(p["success_ceiling"]),
             "attr_preservation": mean(p["others_frac"])}
        for name, col in (("success", "success"), ("attr_acc", "target_read"), ("id_match", "id_match"),
                          ("attr_preservation", "others_frac")):
            r[f"{name}_lo"], r[f"{name}_hi"] = identity_bootstrap(p[col], p["identity"], self.bootstrap_resamples,
                                                                  self.seed)
        if self.per_image_path and self.trainer.is_global_zero:
            table = pd.DataFrame({c: p[c] for c in PER_IMAGE_COLUMNS})
            for c in ("index", "identity", "target_value", "source_read", "target_read"):
                table[c] = table[c].astype(int)
            buf = io.StringIO()
            table.to_csv(buf, index=False)
            atomic_write_bytes(self.per_image_path, buf.getvalue().encode())
        return r

    def _realism(self) -> dict[str, float]:
        """Headline realism / floor / KID (counterfactual reference where there is one, else target domain), the
        target-domain columns (mean over add and remove; NaN when a direction has too few images) and the
        label-matched columns (NaN without a measured reference)."""
        nan = float("nan")
        r = {"realism": nan, "realism_floor": nan, "kid": nan, "kid_std": nan}
        if self.fd is not None:
            kid = self.kid.compute()
            r.update(realism=float(self.fd.compute()), realism_floor=float(self.fd_floor.compute()),
                     kid=float(kid[0]), kid_std=float(kid[1]))
        dom, floor, kids = [], [], []
        for v in ("0", "1"):
            if v in self.fd_dom:  # every rank calls compute (a rank that skipped it would hang the others)
                dom.append(float(self.fd_dom[v].compute()))
                floor.append(float(self.fd_dom_floor[v].compute()))
                if v in self.kid_dom:
                    kids.append(self.kid_dom[v].compute())
            else:
                dom.append(nan)
                floor.append(nan)
        # every rank has the same reference, so every rank calls compute or none does
        r["realism_matched"] = float(self.fd_matched.compute()) if self.fd_matched is not None else nan
        r["realism_matched_floor"] = self.matched_floor if self.fd_matched is not None else nan
        r["realism_domain"] = float(np.mean(dom))          # NaN unless both directions are measured
        r["realism_domain_floor"] = float(np.mean(floor))
        if self.fd is None:
            r["realism"], r["realism_floor"] = r["realism_domain"], r["realism_domain_floor"]
            if len(kids) == 2 and not math.isnan(r["realism"]):
                r["kid"] = float(np.mean([float(k[0]) for k in kids]))
                r["kid_std"] = float(np.mean([float(k[1]) for k in kids]))
        return r
