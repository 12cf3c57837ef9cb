"""The attribute classifier: timm ResNet18, multi-label over ALL the data set's attributes.

Trained by a LightningModule on the train split, selected on val, cached on disk keyed by (data set
configuration, resolution, seed, training settings). Its per-attribute test accuracy is the ceiling of the
attribute metrics and is reported beside every score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate, get_worker_info

from datamodules.base import FaceDataModule
from evaluators.networks import FeatureNet
from evaluators.training import adamw_one_cycle, cached_evaluator, clone_all_attributes, fit_quietly

log = logging.getLogger(__name__)


class AttributeClassifier(L.LightningModule):
    """images (B, 3, H, W) in [-1, 1] -> logits (B, K) over ``attribute_names``."""

    def __init__(self, attribute_names: list[str], image_size: int, lr: float = 1e-3, weight_decay: float = 1e-4,
                 hflip: bool = True) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.attribute_names = list(attribute_names)
        self.net = FeatureNet(image_size, len(attribute_names))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 512) pooled features: the realism fallback's feature space."""
        return self.net.features(images)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted attributes (B, K) in {0, 1}."""
        return (self(images) > 0).float()

    def training_step(self, batch, batch_idx):
        x = batch["image"]
        if self.hparams.hflip:  # every attribute we use is left-right symmetric
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        loss = F.binary_cross_entropy_with_logits(self(x), batch["attrs"])
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        acc = ((self(batch["image"]) > 0).float() == batch["attrs"]).float().mean()
        self.log("val_acc", acc, prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        return adamw_one_cycle(self, self.hparams.lr, weight_decay=self.hparams.weight_decay)


@dataclass
class ClassifierReport:
    model: AttributeClassifier
    test_accuracy: dict[str, float]
    cache_path: str


@torch.no_grad()
def per_attribute_accuracy(model: AttributeClassifier, dm: FaceDataModule, split: str = "test") -> dict[str, float]:
    model.eval()
    correct, total = None, 0
    for batch in dm._loader(split, shuffle=False):
        hit = (model.predict(batch["image"]) == batch["attrs"]).float().sum(0)
        correct = hit if correct is None else correct + hit
        total += batch["image"].shape[0]
    return {a: float(c / total) for a, c in zip(dm.attribute_names, correct)}


class IndependentAttributeRenders:
    """A train loader's collate for data sets that render exact counterfactuals: ``default_collate``, then every
    image is replaced by the render of the same face (identity, pose, light) with all attributes drawn
    independently, each 0 or 1 with probability 1/2, and ``attrs`` by those labels.

    The judge then never sees the data set's attribute correlations (Mouth_Slightly_Open goes with Smiling,
    Eyeglasses with not-Young), so it cannot read one attribute off another: an edit that flips Smiling alone is
    read as Smiling alone. Seeded per loader (and once per DataLoader worker from the worker's seed), so two
    trainings with the same settings see the same renders."""

    def __init__(self, dataset, seed: int) -> None:  # noqa: ANN001  (a dataset with ``counterfactuals``)
        self.dataset, self.seed = dataset, seed
        self.generator = torch.Generator().manual_seed(seed)
        self._worker_seeded = False

    def __call__(self, items: list[dict]) -> dict:
        batch = default_collate(items)
        info = get_worker_info()
        if info is not None and not self._worker_seeded:
            self.generator.manual_seed((self.seed * 1_000_003 + info.seed) % 2**63)
            self._worker_seeded = True
        attrs = (torch.rand(batch["attrs"].shape, generator=self.generator) < 0.5).float()
        batch["image"] = self.dataset.counterfactuals(batch["index"], attrs)
        batch["attrs"] = attrs
        return batch


def get_attribute_classifier(dm: FaceDataModule, epochs: int = 6, batch_size: int = 128, lr: float = 2e-3,
                             seed: int = 0, retrain: bool = False) -> ClassifierReport:
    """Train (or load from the cache) the attribute classifier of ``dm``'s data set, over all its attributes.

    On a data set that renders exact counterfactuals the train images are re-rendered with independent uniform
    attributes (``IndependentAttributeRenders``; same faces, new labels every epoch); elsewhere it trains on the
    train split as it is. Validation and the reported test accuracy are always on the unchanged val / test
    splits."""
    full = clone_all_attributes(dm)
    renders = bool(full.has_counterfactuals)
    settings = {"kind": "attribute_classifier", "data": full.config_key(), "epochs": epochs,
                "batch_size": batch_size, "lr": lr, "seed": seed, "version": 2,
                "train_images": "independent-attribute-renders" if renders else "train-split"}

    def train() -> tuple[AttributeClassifier, dict]:
        L.seed_everything(seed, workers=True)
        full.batch_size = batch_size
        model = AttributeClassifier(full.attribute_names, full.resolution, lr=lr)
        if renders:
            ds = full.dataset("train")
            loader = full._loader("train", shuffle=True, drop_last=True,
                                  collate_fn=IndependentAttributeRenders(ds, seed + 104_729))
            fit_quietly(model, loader, epochs, desc="attribute classifier (independent-attribute renders)",
                        val=full.val_dataloader())
        else:
            fit_quietly(model, full, epochs, desc="attribute classifier")
        return model, {"test_accuracy": per_attribute_accuracy(model, full)}

    def build(meta: dict) -> AttributeClassifier:
        return AttributeClassifier(full.attribute_names, full.resolution, lr=lr)

    model, meta, path = cached_evaluator(settings, train, build, retrain=retrain)
    return ClassifierReport(model.eval(), meta["test_accuracy"], path)
