"""Counterfactual error (data sets with exact counterfactuals only).

Compares each edit with the exact counterfactual image, over the whole image and split by region:
*in* = pixels where the exact counterfactual differs from the input (any channel by more than ``tol``),
dilated by ``dilate`` pixels — did the edit do the right thing there? — and *out* = the rest: did the edit
leave it alone? Per-image means, averaged over images (images whose in-region is empty are left out of
the in-region mean). Images are float (B, 3, H, W) in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def change_region(inputs: torch.Tensor, counterfactuals: torch.Tensor, tol: float = 2.0 / 127.5,
                  dilate: int = 1) -> torch.Tensor:
    """(B, 1, H, W) bool mask of the pixels the exact edit changes, dilated by ``dilate`` pixels."""
    changed = ((counterfactuals - inputs).abs() > tol).any(dim=1, keepdim=True).float()
    if dilate > 0:
        changed = F.max_pool2d(changed, 2 * dilate + 1, stride=1, padding=dilate)
    return changed > 0


def _masked_mean(err: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean of ``err`` (B, H, W) over ``mask`` (B, H, W); returns (means, valid)."""
    count = mask.flatten(1).sum(1)
    total = (err * mask).flatten(1).sum(1)
    return total / count.clamp(min=1), count > 0


class CounterfactualError(Metric):
    full_state_update = False
    higher_is_better = False

    def __init__(self, tol: float = 2.0 / 127.5, dilate: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tol, self.dilate = tol, dilate
        for name in ("l1", "l1_in", "l1_out", "psnr", "ssim", "n", "n_in", "n_out"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, inputs: torch.Tensor, edits: torch.Tensor, counterfactuals: torch.Tensor) -> None:
        region = change_region(inputs, counterfactuals, self.tol, self.dilate)[:, 0]
        err = (edits - counterfactuals).abs().mean(dim=1)  # (B, H, W), mean over channels
        self.l1 += err.flatten(1).mean(1).double().sum()
        m_in, v_in = _masked_mean(err, region)
        m_out, v_out = _masked_mean(err, ~region)
        self.l1_in += m_in[v_in].double().sum()
        self.n_in += v_in.sum()
        self.l1_out += m_out[v_out].double().sum()
        self.n_out += v_out.sum()
        e01, c01 = (edits.clamp(-1, 1) + 1) / 2, (counterfactuals + 1) / 2
        psnr = peak_signal_noise_ratio(e01, c01, data_range=1.0, reduction="none", dim=(1, 2, 3))
        self.psnr += psnr.clamp(max=100.0).double().sum()  # identical images: PSNR capped at 100 dB
        ssim = structural_similarity_index_measure(e01, c01, data_range=1.0, reduction="none",
                                                   kernel_size=7 if edits.shape[-1] < 64 else 11)
        self.ssim += ssim.double().sum()
        self.n += edits.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        n = self.n.clamp(min=1)
        return {"cf_l1": self.l1 / n if self.n > 0 else nan,
                "cf_l1_in": self.l1_in / self.n_in if self.n_in > 0 else nan,
                "cf_l1_out": self.l1_out / self.n_out if self.n_out > 0 else nan,
                "cf_psnr": self.psnr / n if self.n > 0 else nan,
                "cf_ssim": self.ssim / n if self.n > 0 else nan}
