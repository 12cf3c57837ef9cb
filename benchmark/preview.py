"""``python -m benchmark preview``: a grid of the data set; on the synthetic set each attribute flipped.

Rows are identities; columns are the original and, for each attribute, its exact counterfactual.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import torch
from torchvision.utils import save_image

from datamodules.cache import atomic_write_bytes
from datamodules.registry import build_datamodule


def write_preview(dm, out: Path, rows: int = 8) -> list[str]:
    """Write the grid to ``out`` (atomically); returns the column names."""
    dm.setup()
    ds = dm.dataset("test")
    seen, index = set(), []
    for i in range(len(ds)):  # one image per identity, the first of the test split
        ident = int(ds.identity[i]) if hasattr(ds, "identity") else i
        ident = ident if ident >= 0 else -1 - i  # no identity label (-1): every image is its own person
        if ident not in seen:
            seen.add(ident)
            index.append(i)
        if len(index) == rows:
            break
    index_t = torch.tensor(index)
    columns = [torch.stack([ds[i]["image"] for i in index])]
    names = ["original"]
    if dm.has_counterfactuals:
        attrs = torch.stack([ds[i]["attrs"] for i in index])
        for k, name in enumerate(dm.attribute_names):
            flipped = attrs.clone()
            flipped[:, k] = 1 - flipped[:, k]
            columns.append(dm.counterfactuals("test", index_t, flipped))
            names.append(f"flip {name}")
    grid = torch.stack(columns, dim=1).flatten(0, 1)
    buf = io.BytesIO()
    save_image((grid + 1) / 2, buf, format="png", nrow=len(columns), padding=2, pad_value=1.0)
    atomic_write_bytes(out, buf.getvalue())
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark preview", description=__doc__)
    p.add_argument("--data", default="synthfaces")
    p.add_argument("--data-root", default=None)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--output", default=None, help="PNG path (default results/<data>/preview.png)")
    args = p.parse_args(argv)
    dm = build_datamodule(args.data, root=args.data_root, resolution=args.resolution)
    out = Path(args.output or Path("results") / dm.name / "preview.png")
    names = write_preview(dm, out, args.rows)
    print(f"wrote {out}: rows = test identities, columns = {', '.join(names)}")
    return 0
