"""One entry point: build the evaluators of a data set once, then score any method into a result row."""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path

import lightning as L
import numpy as np
import torch

from datamodules.base import FaceDataModule
from evaluators.classifier import get_attribute_classifier
from evaluators.harness import EvaluatorBundle, ScoringModule, evaluation_indices, method_columns
from evaluators.identity_dlib import dlib_available, dlib_identity_report
from evaluators.identity_encoder import IdentityReport, get_identity_encoder
from evaluators.realism import MIN_REALISM_IMAGES, MatchedReference, build_feature_space, reference_stats
from methods.base import EditingMethod

log = logging.getLogger(__name__)

#: every column of scores.csv, in order (see docs/metrics.md for how each is computed)
SCORE_COLUMNS = [
    "method", "dataset", "resolution", "attribute", "strength", "mode", "deviations", "n_images",
    "success", "success_lo", "success_hi", "success_add", "success_remove", "success_ceiling",
    "attr_acc", "attr_acc_lo", "attr_acc_hi", "attr_acc_add", "attr_acc_remove",
    "attr_preservation", "attr_preservation_lo", "attr_preservation_hi", "id_sim", "id_match", "id_match_lo",
    "id_match_hi", "realism_metric", "realism_reference", "realism", "realism_floor", "kid", "kid_std",
    "realism_domain", "realism_domain_floor", "realism_matched", "realism_matched_floor", "realism_note",
    "cf_l1", "cf_l1_in", "cf_l1_out", "cf_psnr", "cf_ssim",
    "edit_ms", "edit_batch_size", "device", "params_m",
    "classifier_acc", "id_encoder_auc", "id_encoder_tar", "id_threshold", "id_backend",
    "feature_extractor", "resizer", "n_real", "reference_split", "classifier_hash", "id_encoder_hash",
    "realism_ref_hash", "seed", "code_version", "timestamp",
]

#: the scalar metrics the scoring module computes (copied into a row as they are; NaN when absent)
_MEASURED = ("success", "success_lo", "success_hi", "success_add", "success_remove", "success_ceiling",
             "attr_acc", "attr_acc_lo", "attr_acc_hi", "attr_acc_add", "attr_acc_remove", "attr_preservation",
             "attr_preservation_lo", "attr_preservation_hi", "id_sim", "id_match", "id_match_lo", "id_match_hi",
             "realism", "realism_floor", "kid", "kid_std", "realism_domain", "realism_domain_floor",
             "realism_matched", "realism_matched_floor", "cf_l1",
             "cf_l1_in", "cf_l1_out", "cf_psnr", "cf_ssim", "edit_ms")


@dataclass
class EvaluatorConfig:
    """How the evaluator networks are trained and how realism is measured (cached by all of it)."""

    classifier_epochs: int = 6
    identity_epochs: int = 8          # CosFace encoder (data sets with identity labels, no renderer)
    identity_renders: int = 49_152    # factor judge (rendered data sets): training renders, one pass
    identity_backend: str = "auto"    # auto (dlib on real data when installed) | trained | dlib
    batch_size: int = 128
    seed: int = 0
    realism: str = "auto"             # auto | inception | attrclf
    inception_weights: str | None = None
    realism_real_images: int = 50_000  # real train images in the reference statistics (capped by the split)
    kid_images: int = 5_000


def build_evaluators(dm: FaceDataModule, cfg: EvaluatorConfig | None = None) -> EvaluatorBundle:
    cfg = cfg or EvaluatorConfig()
    dm.setup()
    clf = get_attribute_classifier(dm, epochs=cfg.classifier_epochs, batch_size=cfg.batch_size, seed=cfg.seed)
    log.info("attribute classifier test accuracy: %s", clf.test_accuracy)
    ident = identity_backend(dm, cfg)
    log.info("identity encoder: ROC AUC %.4f, TAR@FAR=%g %.4f, threshold %.4f", ident.roc_auc, ident.far,
             ident.tar_at_far, ident.threshold)
    space = build_feature_space(cfg.realism, clf.model, cfg.inception_weights)
    key_extra = {"classifier": clf.cache_path} if space.name == "attrclf-resnet18" else {}
    ref = reference_stats(space, dm, "train", cfg.realism_real_images, cfg.kid_images, key_extra)
    return EvaluatorBundle(clf, ident, space, ref, reference_args={
        "max_images": cfg.realism_real_images, "kid_images": cfg.kid_images, "key_extra": key_extra})


IDENTITY_BACKENDS = ("auto", "trained", "dlib")


def wants_dlib(dm: FaceDataModule, backend: str) -> bool:
    """Whether ``backend`` resolves to dlib's descriptor on ``dm`` (``auto``: real data and the extra installed)."""
    if backend not in IDENTITY_BACKENDS:
        raise ValueError(f"identity_backend must be one of {IDENTITY_BACKENDS}, got {backend!r}")
    return backend == "dlib" or (backend == "auto" and not dm.has_counterfactuals and dlib_available())


def identity_backend(dm: FaceDataModule, cfg: EvaluatorConfig) -> IdentityReport:
    """The identity embedder: dlib's pretrained descriptor (``dlib``; ``auto`` on real photographs when the
    optional extra is installed) or the suite's own ResNet18-CosFace trained on ``dm``'s identities."""
    if wants_dlib(dm, cfg.identity_backend):
        return dlib_identity_report(dm, seed=cfg.seed)
    return get_identity_encoder(dm, epochs=cfg.identity_epochs, batch_size=cfg.batch_size, seed=cfg.seed,
                                renders=cfg.identity_renders)


def code_version() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],
                               cwd=root, capture_output=True, text=True, timeout=5)
        if rev.returncode == 0:
            return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import version

    return f"v{version('attredit-bench')}"


def score(method: EditingMethod, dm: FaceDataModule, attribute: str, bundle: EvaluatorBundle,
          strength: float = 1.0, max_images: int | None = None, batch_size: int = 64, seed: int = 0,
          trainer_kwargs: dict | None = None, per_image_path: str | Path | None = None,
          kid_subset_size: int = 1000, min_realism_images: int = MIN_REALISM_IMAGES, mode: str | None = None) -> dict:
    """Score ``method`` on flipping ``attribute`` over ``dm``'s test split; returns one row (SCORE_COLUMNS).

    ``method`` edits the data module's attributes or some of them (a per-attribute model: one), by name.

    ``mode``: the editing mode (None = the method's default, ``edit_modes[0]``);
    ``per_image_path``: where the per-image outcomes go (CSV, written atomically by rank 0);
    ``kid_subset_size``: images per KID subset; ``min_realism_images``: fewest images per direction of the
    target-domain Fréchet distances, and fewest edits, train images and test images of the label-matched
    reference and its floor (fewer: NaN and a note).
    """
    if method.synthetic_only and not dm.has_counterfactuals:
        raise ValueError(f"{method.method_name} only runs on data sets with exact counterfactuals")
    method_columns(method, dm.attribute_names)  # every attribute the method edits is in the data module
    method.bind_datamodule(dm)
    refs = bundle.realism_references(dm, attribute)
    matched = bundle.matched_reference(dm, attribute, evaluation_indices(len(dm.dataset("test")), max_images, seed),
                                       min_realism_images)
    module = ScoringModule(method, bundle, dm, attribute, strength, max_images, batch_size, seed, refs,
                           kid_subset_size, min_realism_images, str(per_image_path) if per_image_path else None,
                           mode=mode, matched=matched)
    notes = realism_notes(dm, attribute, module.indices, refs, min_realism_images, matched)
    kwargs = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
              "enable_model_summary": False, "inference_mode": False, "use_distributed_sampler": False,
              **(trainer_kwargs or {})}
    trainer = L.Trainer(**kwargs)
    (logged,) = trainer.test(module, verbose=False)
    r = module.results or {k: float(v) for k, v in logged.items()}
    nan = float("nan")
    row = {
        "method": method.method_name, "dataset": dm.name, "resolution": dm.resolution, "attribute": attribute,
        "strength": float(strength), "mode": module.mode, "deviations": nan, "n_images": int(r.get("n_images", 0)),
        **{k: r.get(k, nan) for k in _MEASURED},
        "realism_metric": bundle.space.metric_name, "edit_batch_size": batch_size,
        "realism_reference": "counterfactual-train" if refs["cf"] is not None else "target-domain-train",
        "realism_note": "; ".join(notes),
        **judge_hashes(bundle),  # the same digests the runner's provenance compares
        "device": str(trainer.strategy.root_device.type) + f"x{trainer.world_size}",
        "params_m": sum(p.numel() for p in method.parameters()) / 1e6,
        "classifier_acc": bundle.classifier.test_accuracy.get(attribute, nan),
        "id_encoder_auc": bundle.identity.roc_auc, "id_encoder_tar": bundle.identity.tar_at_far,
        "id_threshold": bundle.identity.threshold, "id_backend": bundle.identity.backend,
        "feature_extractor": bundle.space.name, "resizer": bundle.space.resizer,
        "n_real": (refs["cf"] or bundle.reference).n,
        "reference_split": "train", "seed": seed, "code_version": code_version(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return {k: row[k] for k in SCORE_COLUMNS}


def realism_notes(dm: FaceDataModule, attribute: str, indices: list[int], refs: dict, min_images: int,
                  matched: MatchedReference | None = None) -> list[str]:
    """Why a realism column is NaN or partial: a direction with fewer than ``min_images`` edits or test images of
    the target domain, or too few train images in its reference; the label-matched reference's own notes (edits
    whose intended labels no train / test image has, too few edits or images), or that it was not built."""
    test = dm.dataset("test")
    col = dm.attribute_names.index(attribute)
    src = test.attrs[torch.tensor(indices, dtype=torch.long), col].round()
    notes = []
    for v, name in ((1, "add"), (0, "remove")):
        edits, domain = int((src != v).sum()), int((src == v).sum())
        if refs[f"dom{v}"] is None:
            notes.append(f"realism_domain: {name} has < {MIN_REALISM_IMAGES} train images with {attribute}={v}")
        elif min(edits, domain) < min_images:
            notes.append(f"realism_domain: {name} has {edits} edits / {domain} test images of the target domain "
                         f"(< {min_images})")
    notes += matched.notes if matched is not None else ["realism_matched: label-matched reference not built"]
    return notes


def describe(bundle: EvaluatorBundle) -> dict:
    """A plain-data summary of the judges (never deep-copies the networks: dlib's embedder cannot be copied)."""
    ident = {f.name: getattr(bundle.identity, f.name) for f in fields(bundle.identity) if f.name != "model"}
    return {"classifier_test_accuracy": bundle.classifier.test_accuracy, "identity": ident,
            "realism": {"space": bundle.space.name, "metric": bundle.space.metric_name, "n_real": bundle.reference.n},
            "hashes": judge_hashes(bundle)}


def _tensor_digest(tensors: list) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        arr = t.detach().cpu().contiguous().numpy() if isinstance(t, torch.Tensor) else np.ascontiguousarray(t)
        digest.update(str(arr.shape).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()[:12]


def weights_hash(report: object) -> str:
    """The report's ``weights_hash`` when it has one, else a digest of its network's parameters and buffers
    (dlib's embedder has none: its backend name stands for its fixed, shipped weights)."""
    given = getattr(report, "weights_hash", None)
    if given:
        return str(given)
    model = getattr(report, "model", None)
    state = list(model.state_dict().values()) if isinstance(model, torch.nn.Module) else []
    if not state:
        return f"{getattr(report, 'backend', type(model).__name__)}-fixed"
    return _tensor_digest(state)


def judge_hashes(bundle: EvaluatorBundle) -> dict[str, str]:
    """Which classifier, identity encoder and realism reference scored a row (12-hex digests)."""
    ref = bundle.reference
    return {"classifier_hash": weights_hash(bundle.classifier), "id_encoder_hash": weights_hash(bundle.identity),
            "realism_ref_hash": getattr(ref, "weights_hash", None)
            or bundle.space.name + ":" + _tensor_digest([ref.mu, ref.sigma])}


__all__ = ["SCORE_COLUMNS", "EvaluatorConfig", "build_evaluators", "score", "describe", "judge_hashes", "torch"]
