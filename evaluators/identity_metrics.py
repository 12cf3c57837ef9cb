"""Identity preservation: cosine similarity of identity embeddings of input and edit, and the match rate."""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric


class IdentityPreservation(Metric):
    """Mean cosine similarity and the share of edits above the FAR-calibrated ``threshold``."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, threshold: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold = float(threshold)
        self.add_state("sim_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("match", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, emb_input: torch.Tensor, emb_edit: torch.Tensor) -> None:
        """emb_input, emb_edit: (B, D) unit embeddings."""
        sim = (emb_input * emb_edit).sum(1)
        self.sim_sum += sim.double().sum()
        self.match += (sim > self.threshold).sum()
        self.n += sim.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        if self.n == 0:
            return {"id_sim": torch.tensor(float("nan")), "id_match": torch.tensor(float("nan"))}
        match = self.match.double() / self.n
        if math.isnan(self.threshold):  # no calibrated threshold (real data without identity labels)
            match = torch.full_like(match, float("nan"))
        return {"id_sim": self.sim_sum / self.n, "id_match": match}
