"""The trained identity judges.

On a data set with identity labels and no renderer (CelebA's identity files): ResNet18 + a CosFace
(large-margin cosine) head trained on the train identities; L2-normalised 128-d embeddings; the cosine
threshold at FAR=1e-3 on different-identity pairs of the VAL split.

On a rendered data set (synthfaces): the factor judge of ``evaluators/identity_factors.py``, validated by the
probes of ``evaluators/identity_probes.py`` (exact counterfactuals must pass, geometry and full identity swaps
must fail); its threshold is the equal-error point of the VAL probes and the pass rates of the TEST probes go
into the report (and evaluators.yaml).

Both report verification on the test identities over all image pairs (ROC AUC, TAR at FAR=1e-3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

from datamodules.base import FaceDataModule
from evaluators.networks import resnet18_backbone
from evaluators.training import adamw_one_cycle, cached_evaluator, fit_quietly

log = logging.getLogger(__name__)


class CosFaceHead(nn.Module):
    """Logits s * (cos(theta_y) - m) for the true class, s * cos(theta_j) otherwise (Wang et al., 2018)."""

    def __init__(self, dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.35) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.linear(F.normalize(emb), F.normalize(self.weight))
        return self.scale * (cos - self.margin * F.one_hot(labels, cos.shape[1]))


class IdentityEncoder(L.LightningModule):
    """images (B, 3, H, W) in [-1, 1] -> unit identity embeddings (B, dim)."""

    def __init__(self, num_identities: int, image_size: int, dim: int = 128, lr: float = 2e-3,
                 scale: float = 30.0, margin: float = 0.35) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = resnet18_backbone(image_size)
        self.embed = nn.Sequential(nn.Linear(self.backbone.num_features, dim), nn.BatchNorm1d(dim))
        self.head = CosFaceHead(dim, num_identities, scale, margin)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embed(self.backbone(images)), dim=1)

    def training_step(self, batch, batch_idx):
        x, y = batch["image"], batch["identity"]
        flip = torch.rand(x.shape[0], device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        loss = F.cross_entropy(self.head(self.embed(self.backbone(x)), y), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return adamw_one_cycle(self, self.hparams.lr, weight_decay=5e-4)


@dataclass
class IdentityReport:
    model: nn.Module
    roc_auc: float
    tar_at_far: float
    threshold: float
    far: float
    cache_path: str
    backend: str = "resnet18-cosface"
    #: how ``threshold`` was chosen
    threshold_rule: str = "FAR=1e-3 on val different-identity pairs"
    #: probe pass rates at ``threshold`` ({"val": {kind: rate}, "test": {...}}; None without a renderer)
    probes: dict | None = None
    #: per-factor R^2 of the factor judge on val renders (None for other backends)
    factor_r2: dict | None = None


@torch.no_grad()
def embed_split(model: nn.Module, dm: FaceDataModule, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    embs, ids = [], []
    for batch in dm._loader(split, shuffle=False):
        embs.append(model(batch["image"]))
        ids.append(batch["identity"])
    return torch.cat(embs), torch.cat(ids)


def verification(emb: torch.Tensor, ids: torch.Tensor, far: float = 1e-3) -> dict[str, float]:
    """ROC AUC, TAR at ``far`` and the cosine threshold at ``far`` over all pairs of distinct images."""
    sim = emb @ emb.T
    iu = torch.triu_indices(len(ids), len(ids), offset=1)
    scores = sim[iu[0], iu[1]].numpy().astype(np.float64)
    same = (ids[iu[0]] == ids[iu[1]]).numpy()
    if same.all() or not same.any():
        raise ValueError("verification needs both same- and different-identity pairs")
    fpr, tpr, thr = roc_curve(same, scores)
    ok = np.nonzero(fpr <= far)[0]
    i = ok[-1]
    threshold = float(np.quantile(scores[~same], 1 - far))
    return {"roc_auc": float(roc_auc_score(same, scores)), "tar_at_far": float(tpr[i]), "threshold": threshold,
            "far": far, "pairs_same": int(same.sum()), "pairs_diff": int((~same).sum())}


def get_identity_encoder(dm: FaceDataModule, epochs: int = 8, batch_size: int = 128, lr: float = 2e-3,
                         seed: int = 0, far: float = 1e-3, retrain: bool = False,
                         renders: int = 49_152) -> IdentityReport:
    """Train (or load from the cache) the identity judge of ``dm``'s data set: the factor judge on a rendered
    set (``renders`` training renders), else the CosFace encoder (``epochs``); needs identity labels."""
    dm.setup()
    train_ids = dm.dataset("train").identity if hasattr(dm.dataset("train"), "identity") else None
    if train_ids is None or (torch.as_tensor(train_ids) < 0).all():
        raise ValueError(f"{dm.name} has no identity labels: give identity files or use a pretrained backend")
    if getattr(dm, "world", None) is not None:
        return get_factor_judge(dm, renders=renders, batch_size=batch_size, seed=seed, far=far, retrain=retrain)
    settings = {"kind": "identity_encoder", "data": dm.config_key(), "epochs": epochs, "batch_size": batch_size,
                "lr": lr, "seed": seed, "far": far, "version": 2}
    uniq = torch.unique(torch.as_tensor(train_ids))

    def train() -> tuple[IdentityEncoder, dict]:
        L.seed_everything(seed, workers=True)
        remap = RemappedIdentities(dm, uniq, batch_size)
        model = IdentityEncoder(len(uniq), dm.resolution, lr=lr)
        fit_quietly(model, remap, epochs, desc="identity encoder")
        meta = verification(*embed_split(model, dm, "test"), far)
        try:  # calibrated on val identities, never on the test identities it is reported on
            meta["threshold"] = verification(*embed_split(model, dm, "val"), far)["threshold"]
        except ValueError:
            log.warning("val split has too few identities to calibrate the threshold; using test pairs")
        return model, meta

    def build(meta: dict) -> IdentityEncoder:
        return IdentityEncoder(len(uniq), dm.resolution, lr=lr)

    model, meta, path = cached_evaluator(settings, train, build, retrain=retrain)
    return IdentityReport(model.eval(), meta["roc_auc"], meta["tar_at_far"], meta["threshold"], far, path)


class RemappedIdentities(L.LightningDataModule):
    """The train split of ``dm`` with identity labels mapped to 0..C-1 (for the CosFace head)."""

    def __init__(self, dm: FaceDataModule, train_ids: torch.Tensor, batch_size: int = 128) -> None:
        super().__init__()
        self.dm, self.batch_size = dm, batch_size
        self.lookup = {int(v): i for i, v in enumerate(train_ids.tolist())}

    def train_dataloader(self):
        base = self.dm.dataset("train")
        lookup = self.lookup

        class _Remapped(torch.utils.data.Dataset):
            def __len__(self) -> int:
                return len(base)

            def __getitem__(self, i: int) -> dict:
                item = dict(base[i])
                item["identity"] = torch.tensor(lookup[int(item["identity"])])
                return item

        return torch.utils.data.DataLoader(_Remapped(), batch_size=self.batch_size, shuffle=True,
                                           drop_last=len(base) > self.batch_size,
                                           num_workers=self.dm.num_workers,
                                           generator=torch.Generator().manual_seed(self.dm.seed))


def get_factor_judge(dm: FaceDataModule, renders: int = 49_152, batch_size: int = 128, seed: int = 0,
                     far: float = 1e-3, retrain: bool = False, probe_images: int = 1000,
                     calibration_renders: int = 4096,
                     colour_scales: tuple[float, ...] = (1.0, 0.7, 0.5, 0.35, 0.25, 0.15)) -> IdentityReport:
    """Train (or load) the factor judge of a rendered data module (``dm.world``), calibrate its factor weights
    and threshold on val people, and measure the probes on val and test people.

    Colours are part of a person but edits move them (Pale_Skin pales the skin, ageing greys the hair), so the
    colour columns' weights are scaled by the value in ``colour_scales`` that gives the lowest equal error on
    the VAL probes (ties: the earlier value); test probes are only reported."""
    from evaluators.identity_factors import FactorJudge, FactorRenders, colour_columns, factor_matrix, factor_names
    from evaluators.identity_probes import probe_equal_error, probe_pass_rates, probe_similarities, render_probes

    split = dm.split_identities()
    world = dm.world
    settings = {"kind": "identity_factor_judge", "data": dm.config_key(), "renders": renders,
                "batch_size": batch_size, "seed": seed, "far": far, "probe_images": probe_images,
                "calibration_renders": calibration_renders,
                "colour_scales": list(colour_scales), "version": 2}
    people = factor_matrix(world.identity_factors)[split["train"]]

    def build(meta: dict) -> FactorJudge:
        return FactorJudge(people.mean(0), people.std(0))

    def train() -> tuple[FactorJudge, dict]:
        L.seed_everything(seed, workers=True)
        model = build({})
        data = FactorRenders(world, split["train"], dm.resolution, renders, seed=seed)
        fit_quietly(model, data.loader(batch_size, shuffle=True, seed=seed), 1, desc="identity factor judge")
        r2 = model.calibrate(FactorRenders(world, split["val"], dm.resolution, calibration_renders, seed=seed + 1))
        val_probes = render_probes(dm.dataset("val"), probe_images, seed=seed)
        colour = colour_columns()
        base, choice = model.weight.clone(), None
        for scale in colour_scales:  # the earlier scale wins a tie
            model.weight.copy_(torch.where(colour, base * scale, base))
            sims = probe_similarities(model, val_probes)
            th, err = probe_equal_error(sims)
            if choice is None or err < choice[0]:
                choice = (err, scale, th, sims)
        _, colour_scale, threshold, val_sims = choice
        model.weight.copy_(torch.where(colour, base * colour_scale, base))
        test_sims = probe_similarities(model, render_probes(dm.dataset("test"), probe_images, seed=seed))
        meta = verification(*embed_split(model, dm, "test"), far)
        r2 = dict(zip(factor_names(), [round(float(v), 4) for v in r2]))
        meta.update(threshold=threshold, colour_scale=colour_scale, factor_r2=r2,
                    probes={"val": probe_pass_rates(val_sims, threshold),
                            "test": probe_pass_rates(test_sims, threshold)})
        return model, meta

    model, meta, path = cached_evaluator(settings, train, build, retrain=retrain)
    return IdentityReport(model.eval(), meta["roc_auc"], meta["tar_at_far"], meta["threshold"], far, path,
                          backend="factor-regression-smallresnet",
                          threshold_rule="equal-error point of the val probes (worst attribute's counterfactuals "
                                         f"vs geometry and full swaps); colour weights x{meta['colour_scale']} "
                                         "(lowest val equal error)",
                          probes=meta["probes"], factor_r2=meta["factor_r2"])
