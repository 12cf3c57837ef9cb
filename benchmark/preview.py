"""``python -m benchmark preview``: a grid of the data set; on the synthetic set each attribute flipped.

Rows are identities; columns are the original and, for each attribute, its exact counterfactual.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.utils import save_image

from datamodules.registry import build_datamodule


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark preview", description=__doc__)
    p.add_argument("--data", default="synthfaces")
    p.add_argument("--data-root", default=None)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--output", default=None, help="PNG path (default results/<data>/preview.png)")
    args = p.parse_args(argv)
    dm = build_datamodule(args.data, root=args.data_root, resolution=args.resolution)
    dm.setup()
    ds = dm.dataset("test")
    # one image per identity, the first rows of the test split
    seen, index = set(), []
    for i in range(len(ds)):
        ident = int(ds.identity[i]) if hasattr(ds, "identity") else i
        if ident not in seen:
            seen.add(ident)
            index.append(i)
        if len(index) == args.rows:
            break
    index_t = torch.tensor(index)
    originals = torch.stack([ds[i]["image"] for i in index])
    columns = [originals]
    if dm.has_counterfactuals:
        attrs = torch.stack([ds[i]["attrs"] for i in index])
        for k in range(dm.num_attributes):
            flipped = attrs.clone()
            flipped[:, k] = 1 - flipped[:, k]
            columns.append(dm.counterfactuals("test", index_t, flipped))
    grid = torch.stack(columns, dim=1).flatten(0, 1)
    out = Path(args.output or Path("results") / dm.name / "preview.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    save_image((grid + 1) / 2, tmp, nrow=len(columns), padding=2, pad_value=1.0)
    tmp.replace(out)
    names = ["original"] + [f"flip {a}" for a in dm.attribute_names] if dm.has_counterfactuals else ["original"]
    print(f"wrote {out}: rows = {len(index)} test identities, columns = {', '.join(names)}")
    return 0
