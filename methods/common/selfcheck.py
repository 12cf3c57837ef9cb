"""Shared pieces of the methods' self-check commands (``python -m methods.<name>.check``): the command line, the
checkpoint and synthetic test split they run on, the counterfactual errors inside / outside the region the exact
edit changes, and the PNG grid. No evaluator network is involved: a self-check reads only the method and the data.

Images are float (B, 3, H, W) in [-1, 1].
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import save_image

from datamodules.synthfaces import SynthFacesDataModule
from datamodules.synthfaces.datamodule import SynthFacesDataset
from methods.base import EditingMethod, load_method


def change_region(x: torch.Tensor, cf: torch.Tensor, tol: float = 2.0 / 127.5, dilate: int = 1) -> torch.Tensor:
    """(B, H, W) bool: pixels where the exact counterfactual differs from the input, dilated."""
    changed = ((cf - x).abs() > tol).any(dim=1, keepdim=True).float()
    return F.max_pool2d(changed, 2 * dilate + 1, stride=1, padding=dilate)[:, 0] > 0


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image mean |a - b| (channel mean) over ``mask`` (B, H, W); NaN where the mask is empty."""
    err = (a - b).abs().mean(1)
    count = mask.flatten(1).sum(1).float()
    return torch.where(count > 0, (err * mask).flatten(1).sum(1) / count.clamp(min=1), torch.nan)


def check_parser(method: str, doc: str | None) -> argparse.ArgumentParser:
    """``--ckpt``, ``--attribute`` (default Smiling), ``--strength``, ``--seed`` (the synthetic set's) and ``--out``
    (default ``results/<method>/check.png``)."""
    p = argparse.ArgumentParser(prog=f"python -m methods.{method}.check", description=doc)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--attribute", default="Smiling")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="data seed of the synthetic set")
    p.add_argument("--out", default=f"results/{method}/check.png")
    return p


def load_for_check(args: argparse.Namespace, batch_size: int = 256
                   ) -> tuple[EditingMethod, SynthFacesDataModule, SynthFacesDataset, int]:
    """(method in eval mode, the synthetic data module at its resolution, its test split, index of
    ``args.attribute``)."""
    method = load_method(args.ckpt).eval()
    dm = SynthFacesDataModule(attributes=method.attribute_names, resolution=method.image_size,
                              batch_size=batch_size, seed=args.seed)
    return method, dm, dm.dataset("test"), method.attribute_index(args.attribute)


@dataclass
class CounterfactualErrors:
    """Accumulates, over batches, the edit's L1 to the exact counterfactual inside / outside the region the exact
    edit changes, beside the no-op edit's (the input's)."""

    edit_in: list[torch.Tensor] = field(default_factory=list)
    edit_out: list[torch.Tensor] = field(default_factory=list)
    noop_in: list[torch.Tensor] = field(default_factory=list)
    noop_out: list[torch.Tensor] = field(default_factory=list)

    def update(self, x: torch.Tensor, edit: torch.Tensor, cf: torch.Tensor) -> torch.Tensor:
        """Adds one batch; returns its change region (B, H, W)."""
        region = change_region(x, cf)
        self.edit_in.append(masked_l1(edit, cf, region))
        self.edit_out.append(masked_l1(edit, cf, ~region))
        self.noop_in.append(masked_l1(x, cf, region))
        self.noop_out.append(masked_l1(x, cf, ~region))
        return region

    def summary(self) -> dict[str, float]:
        return {name: nanmean(getattr(self, name)) for name in ("edit_in", "edit_out", "noop_in", "noop_out")}


def nanmean(values: list[torch.Tensor]) -> float:
    return torch.cat(values).nanmean().item()


def write_grid(columns: list[torch.Tensor], out: str | Path, rows: int = 8) -> Path:
    """A PNG of the first ``rows`` images of each column (each (B, 3, H, W) in [-1, 1]), one row per image."""
    n = min(rows, columns[0].shape[0])
    grid = torch.stack([c[:n] for c in columns], dim=1).flatten(0, 1)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image((grid + 1) / 2, out, nrow=len(columns), padding=2, pad_value=1.0)
    return out
