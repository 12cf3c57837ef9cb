"""Training pairs for ELEGANT: for attribute k, partner every image with one that has the opposite value.

The official code draws a batch A from the images that have attribute k and a batch B from those that do not.
Here A is the loader's batch and each image's partner is drawn uniformly from the images with the opposite
value of k. The pair {positive, negative} then has the same distribution as in the official code (each side
uniform over its group, independent); only which side is called A changes, and ELEGANT's losses are
symmetric in A and B.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from datamodules.domains import dataset_attrs


class OppositePairs:
    """Draws, for images with labels ``y[:, k]``, partners with the opposite value from a dataset.

    dataset: the training split (items follow the batch schema); seed: the partner draws' generator.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset = dataset
        labels = dataset_attrs(dataset)
        self.num_attributes = labels.shape[1]
        # pools[k][v]: indices of the images whose attribute k equals v
        self.pools = [[torch.nonzero(labels[:, k] == v).squeeze(1) for v in (0, 1)]
                      for k in range(self.num_attributes)]
        self.generator = torch.Generator().manual_seed(int(seed))

    def trainable(self, k: int) -> bool:
        """True when the split has images with and without attribute k."""
        return all(p.numel() > 0 for p in self.pools[k])

    def partner_indices(self, values: torch.Tensor, k: int) -> torch.Tensor:
        """(B,) values of attribute k in {0, 1} -> (B,) dataset indices of images with the opposite value."""
        if not self.trainable(k):
            raise ValueError(f"attribute {k} has a single value in the training split; no pairs can be built")
        out = torch.empty(values.shape[0], dtype=torch.long)
        flip = 1 - values.detach().round().long().cpu()
        for v in (0, 1):
            rows = torch.nonzero(flip == v).squeeze(1)
            if rows.numel():
                pool = self.pools[k][v]
                out[rows] = pool[torch.randint(pool.numel(), (rows.numel(),), generator=self.generator)]
        return out

    def partners(self, values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) in [-1, 1] and labels (B, K) of partners with the opposite value of attribute k."""
        items = [self.dataset[int(i)] for i in self.partner_indices(values, k)]
        return torch.stack([it["image"] for it in items]), torch.stack([it["attrs"] for it in items]).float()
