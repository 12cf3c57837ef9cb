"""Attribute-manipulation accuracy (L2M-GAN's protocol) and attribute preservation, as torchmetrics Metrics.

Inputs are the classifier's predictions (B, K) in {0, 1} on inputs and edits, the target attribute column
and the target values (B,).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class AttributeManipulation(Metric):
    """Share of edits the classifier reads as the target value: overall, adding (0->1), removing (1->0)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("hit_add", "n_add", "hit_remove", "n_remove"):
            self.add_state(name, torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred_edit: torch.Tensor, target_value: torch.Tensor) -> None:
        """pred_edit: (B,) predicted target attribute on the edits; target_value: (B,) wanted value."""
        hit = pred_edit.round() == target_value.round()
        add = target_value.round() == 1
        self.hit_add += (hit & add).sum()
        self.n_add += add.sum()
        self.hit_remove += (hit & ~add).sum()
        self.n_remove += (~add).sum()

    def compute(self) -> dict[str, torch.Tensor]:
        nan = torch.tensor(float("nan"))
        n = self.n_add + self.n_remove
        return {
            "attr_acc": (self.hit_add + self.hit_remove).float() / n if n > 0 else nan,
            "attr_acc_add": self.hit_add.float() / self.n_add if self.n_add > 0 else nan,
            "attr_acc_remove": self.hit_remove.float() / self.n_remove if self.n_remove > 0 else nan,
        }


class AttributePreservation(Metric):
    """Share of the non-target attributes whose predicted value is unchanged by the edit."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("kept", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred_input: torch.Tensor, pred_edit: torch.Tensor, target_column: int) -> None:
        """pred_input, pred_edit: (B, K) in {0, 1} over all the classifier's attributes."""
        keep = torch.ones(pred_input.shape[1], dtype=torch.bool, device=pred_input.device)
        keep[target_column] = False
        same = pred_input[:, keep].round() == pred_edit[:, keep].round()
        self.kept += same.sum()
        self.total += same.numel()

    def compute(self) -> torch.Tensor:
        return self.kept.float() / self.total if self.total > 0 else torch.tensor(float("nan"))
