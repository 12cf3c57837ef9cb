"""The GAN-sample protocol (InterFaceGAN, Shen et al., CVPR 2020, Sec. 3): edit the method's *own samples* in its
latent space — no inversion, so no inversion error — and judge them with the same evaluator networks.

For one (method, attribute, strength, seed): ``n`` codes are drawn by the method (seeded), rendered, and read by
the attribute classifier; the source value of the flipped attribute is the classifier's reading of the sample
(GAN samples have no labels), the target its opposite; the method moves each code towards the target and
renders the edit. Per sample:
  * target read: the classifier reads the target value on the edit (the source is read on the sample by
    construction, so this is the flip seen);
  * identity: cosine of the identity judge's embeddings of the sample and its edit, matched above its threshold;
  * others kept: every other attribute the classifier reads on the edit equals its reading on the sample;
  * success: all three.
Realism: the Fréchet distance of the *unedited* samples to all train images (the generator's own quality, the
same number for every attribute), and, per direction (edits towards value v against the train images with
value v, the StarGAN v2 / L2M-GAN target-domain protocol), the edits' distance with the unedited samples the
classifier reads as v as its floor; each the mean over add and remove.

These numbers are **not comparable with the real-image rows** of scores.csv: they skip inversion and the
source labels are the classifier's. They go to their own file, ``gan_samples.csv``. Runs in one process
(the samples are drawn by the method, not sharded from a data set).
"""

from __future__ import annotations

import datetime as _dt
import math
import time

import numpy as np
import torch

from datamodules.base import FaceDataModule
from evaluators.frechet import FrechetDistance
from evaluators.harness import EvaluatorBundle
from evaluators.intervals import identity_bootstrap
from methods.base import EditingMethod

#: every column of gan_samples.csv, in order
GAN_SAMPLE_COLUMNS = [
    "method", "dataset", "resolution", "attribute", "strength", "mode", "seed", "n_samples",
    "success", "success_lo", "success_hi", "attr_acc", "attr_acc_add", "attr_acc_remove", "attr_preservation",
    "id_sim", "id_match", "sample_realism", "realism_domain", "realism_domain_floor", "source_share",
    "edit_ms", "realism_metric", "classifier_hash", "id_encoder_hash", "realism_ref_hash", "code_version",
    "timestamp",
]

#: the ``mode`` of every gan_samples.csv row (its own protocol, never a real-image editing mode)
GAN_SAMPLE_MODE = "gan-sample"

#: fewest samples of a direction for its Fréchet distances (fewer: NaN)
MIN_DIRECTION_SAMPLES = 50


def supports_gan_samples(method: EditingMethod) -> bool:
    """Whether ``method`` edits its own samples: it sets ``edits_own_samples`` and implements the three hooks."""
    return bool(getattr(method, "edits_own_samples", False))


@torch.no_grad()
def score_gan_samples(method: EditingMethod, dm: FaceDataModule, attribute: str, bundle: EvaluatorBundle,
                      n: int = 1000, strength: float = 1.0, seed: int = 0, batch_size: int = 100) -> dict:
    """One row of ``GAN_SAMPLE_COLUMNS`` for flipping ``attribute`` on ``n`` of ``method``'s own samples."""
    from evaluators.suite import code_version, judge_hashes

    if not supports_gan_samples(method):
        raise ValueError(f"{method.method_name} does not edit its own samples (edits_own_samples is False)")
    k = method.attribute_index(attribute)
    clf = bundle.classifier.model.eval()
    ident = bundle.identity.model
    clf_cols = [clf.attribute_names.index(a) for a in method.attribute_names]
    c = clf_cols[k]
    refs = bundle.realism_references(dm, attribute)
    fd_all = FrechetDistance(bundle.reference.mu, bundle.reference.sigma, min_samples=MIN_DIRECTION_SAMPLES)
    fd_dom = {v: (FrechetDistance(r.mu, r.sigma, min_samples=MIN_DIRECTION_SAMPLES),
                  FrechetDistance(r.mu, r.sigma, min_samples=MIN_DIRECTION_SAMPLES))
              for v in (0, 1) if (r := refs[f"dom{v}"]) is not None}
    generator = torch.Generator().manual_seed(seed)
    out = {name: [] for name in ("target", "read", "cos", "kept", "frac")}
    seconds = 0.0
    for start in range(0, n, batch_size):
        codes = method.sample_codes(min(batch_size, n - start), generator)
        images = method.render_codes(codes).clamp(-1, 1)
        read_in = clf.predict(images)
        src = read_in[:, clf_cols]
        tgt = src.clone()
        tgt[:, k] = 1 - tgt[:, k]
        t0 = time.perf_counter()
        edits = method.render_codes(method.edit_codes(codes, src, tgt, strength)).clamp(-1, 1)
        seconds += time.perf_counter() - t0
        read = clf.predict(edits)
        cos = (ident(images) * ident(edits)).sum(1)
        others = [j for j in range(read.shape[1]) if j != c]
        same = (read[:, others] == read_in[:, others]).float()
        out["target"].append(tgt[:, k])
        out["read"].append((read[:, c] == tgt[:, k]).float())
        out["cos"].append(cos)
        out["kept"].append(same.all(1).float() if others else torch.ones_like(cos))
        out["frac"].append(same.mean(1) if others else torch.ones_like(cos))
        f_in, f_edit = bundle.space(images), bundle.space(edits)
        fd_all.update(f_in)
        for v, (fd, floor) in fd_dom.items():
            fd.update(f_edit[tgt[:, k] == v])
            floor.update(f_in[src[:, k] == v])
    p = {name: torch.cat(vals).double().cpu().numpy() for name, vals in out.items()}
    threshold = float(bundle.identity.threshold)
    match = (p["cos"] > threshold).astype(np.float64) if not math.isnan(threshold) else np.full_like(p["cos"], np.nan)
    success = p["read"] * match * p["kept"]
    lo, hi = identity_bootstrap(success, np.arange(len(success)), seed=seed)  # every sample is its own identity
    nan = float("nan")
    dom = [float(fd_dom[v][0].compute()) if v in fd_dom else nan for v in (0, 1)]
    floor = [float(fd_dom[v][1].compute()) if v in fd_dom else nan for v in (0, 1)]
    add, rem = p["target"] == 1, p["target"] == 0
    hashes = judge_hashes(bundle)
    return {
        "method": method.method_name, "dataset": dm.name, "resolution": dm.resolution, "attribute": attribute,
        "strength": float(strength), "mode": GAN_SAMPLE_MODE, "seed": seed, "n_samples": int(len(success)),
        "success": float(np.mean(success)), "success_lo": lo, "success_hi": hi,
        "attr_acc": float(p["read"].mean()),
        "attr_acc_add": float(p["read"][add].mean()) if add.any() else nan,
        "attr_acc_remove": float(p["read"][rem].mean()) if rem.any() else nan,
        "attr_preservation": float(p["frac"].mean()), "id_sim": float(p["cos"].mean()),
        "id_match": float(np.mean(match)), "sample_realism": float(fd_all.compute()),
        "realism_domain": float(np.mean(dom)), "realism_domain_floor": float(np.mean(floor)),
        "source_share": float(rem.mean()),  # share of samples the classifier reads as having the attribute
        "edit_ms": 1000.0 * seconds / max(len(success), 1), "realism_metric": bundle.space.metric_name,
        **hashes, "code_version": code_version(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
