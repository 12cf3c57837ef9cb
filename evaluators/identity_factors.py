"""The identity judge of a rendered data set: a network that reads a face's identity factors.

On the embedded set, identity IS a known vector: face geometry (face and jaw shape, hair shape, eye shape and
spacing, nose, brows, mouth) and colours (skin tone, hair, iris, lips). The judge regresses that vector,
standardised over the train people, from an image under any pose, light and attributes:
``SmallImageResNet`` (a stride-1 stem and a 4x4 pooled map, so one-pixel geometry survives at 32 px) + a linear
head, trained with a mean-squared error on renders of TRAIN people under fresh nuisance and random attributes
(the random attributes teach that an edit keeps the person). Its embedding is the predicted vector weighted by
how reliably each factor is read (the square root of its R^2 on renders of VAL people) and L2-normalised, so
the cosine of two embeddings compares identities, and factors the judge cannot see at this resolution do not
add noise. Val and test people are never trained on.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from datamodules.base import uint8_to_float
from datamodules.synthfaces.datamodule import SynthFacesWorld, render_chunked, take_factors
from datamodules.synthfaces.render import ATTRIBUTES, IDENTITY_COLOURS, IDENTITY_FACTORS, sample_nuisance
from evaluators.identity_probes import COLOUR_FACTORS
from evaluators.networks import SmallImageResNet
from evaluators.training import adamw_one_cycle

log = logging.getLogger(__name__)

#: the identity factors the judge reads, in the order of its output columns (colours take 3 columns each)
FACTOR_KEYS: tuple[str, ...] = (*IDENTITY_FACTORS, *IDENTITY_COLOURS)


def factor_matrix(factors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Identity factor dict ({name: (N,) or (N, 3)}) -> float (N, F) in ``FACTOR_KEYS`` order."""
    return torch.cat([factors[k].reshape(factors[k].shape[0], -1).float() for k in FACTOR_KEYS], 1)


class FactorRenders(Dataset):
    """``samples`` renders of the people ``people`` (identity ids of ``world``), each under fresh nuisance and
    uniformly random attributes. ``collate`` renders a batch: {"image": (B, 3, H, W) in [-1, 1],
    "target": (B, F) raw identity factors}."""

    def __init__(self, world: SynthFacesWorld, people: torch.Tensor, resolution: int, samples: int,
                 seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        people = torch.as_tensor(people).long()
        who = people[torch.randint(len(people), (samples,), generator=g)]
        self.ident = take_factors(world.identity_factors, who)
        self.nuis = sample_nuisance(samples, g, strength=world.nuisance_strength)
        self.attrs = (torch.rand(samples, len(ATTRIBUTES), generator=g) < 0.5).float()
        self.target = factor_matrix(self.ident)
        self.resolution = resolution

    def __len__(self) -> int:
        return self.target.shape[0]

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, idx: list[int]) -> dict[str, torch.Tensor]:
        i = torch.as_tensor(idx)
        images = render_chunked(take_factors(self.ident, i), take_factors(self.nuis, i), self.attrs[i],
                                self.resolution)
        return {"image": uint8_to_float(images), "target": self.target[i]}

    def loader(self, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, drop_last=shuffle, collate_fn=self.collate,
                          generator=torch.Generator().manual_seed(seed))


class FactorJudge(L.LightningModule):
    """images (B, 3, H, W) in [-1, 1] -> unit identity embeddings (B, F) (reliability-weighted factors).

    ``mean`` / ``std`` (F,) standardise the factors (train people); ``weight`` (F,) is set by ``calibrate``.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, width: int = 32, grid: int = 4,
                 lr: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["mean", "std"])
        self.register_buffer("mean", torch.as_tensor(mean).float().clone())
        self.register_buffer("std", torch.as_tensor(std).float().clamp(min=1e-6).clone())
        self.register_buffer("weight", torch.ones_like(self.mean))
        self.backbone = SmallImageResNet(width, grid)
        self.head = nn.Linear(self.backbone.num_features, self.mean.numel())

    def predict_factors(self, images: torch.Tensor) -> torch.Tensor:
        """Standardised predicted identity factors (B, F)."""
        return self.head(self.backbone(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.predict_factors(images) * self.weight, dim=1)

    def training_step(self, batch, batch_idx):
        target = (batch["target"] - self.mean) / self.std
        loss = F.mse_loss(self.predict_factors(batch["image"]), target)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"identity judge loss diverged ({loss.item()}) at step {self.global_step}")
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return adamw_one_cycle(self, self.hparams.lr, weight_decay=5e-4)

    @torch.no_grad()
    def calibrate(self, data: FactorRenders, batch_size: int = 256) -> torch.Tensor:
        """Set ``weight`` to sqrt(max(R^2, 0)) per factor on ``data`` (renders of val people); returns R^2 (F,)."""
        self.eval()
        pred, target = [], []
        for batch in data.loader(batch_size, shuffle=False):
            pred.append(self.predict_factors(batch["image"]))
            target.append((batch["target"] - self.mean) / self.std)
        p, t = torch.cat(pred), torch.cat(target)
        r2 = 1 - (p - t).pow(2).mean(0) / t.var(0).clamp(min=1e-12)
        weight = r2.clamp(min=0).sqrt()
        if weight.sum() == 0:  # an undertrained judge (tiny test configs): every factor counts the same
            log.warning("the identity judge reads no identity factor better than chance; weighting all equally")
            weight = torch.ones_like(weight)
        self.weight.copy_(weight)
        return r2


def colour_columns() -> torch.Tensor:
    """Bool (F,): the output columns that hold a colour (skin tone, hair, iris, lip RGB), in ``factor_names`` order."""
    return torch.tensor([k in COLOUR_FACTORS for k in FACTOR_KEYS for _ in range(3 if k in IDENTITY_COLOURS else 1)])


def factor_names() -> list[str]:
    """One name per output column (colours: name_r, name_g, name_b)."""
    names = []
    for k in FACTOR_KEYS:
        names += [f"{k}_{c}" for c in "rgb"] if k in IDENTITY_COLOURS else [k]
    return names
