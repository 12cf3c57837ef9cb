"""Time the synthetic renderer: images/s for rendering N faces at each resolution (no disk cache).

    python benchmarks/render_throughput.py [--num 30000] [--resolutions 32 64 128]

Prints the machine (CPU count, torch threads) with each figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from datamodules.synthfaces.datamodule import SynthFacesWorld, render_chunked


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num", type=int, default=30_000)
    p.add_argument("--resolutions", type=int, nargs="+", default=[32, 64, 128])
    args = p.parse_args()
    ids = max(3, args.num // 12)
    world = SynthFacesWorld(ids, 12, seed=0, correlation=1.0, nuisance=1.0)
    idx = torch.arange(min(args.num, world.identity.numel()))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads")
    for size in args.resolutions:
        t0 = time.perf_counter()
        images = render_chunked({k: v[idx] for k, v in world.ident.items()},
                                {k: v[idx] for k, v in world.nuis.items()}, world.attrs[idx], size)
        dt = time.perf_counter() - t0
        print(f"{size:>4} px: {len(images)} images in {dt:.1f} s = {len(images) / dt:,.0f} img/s")


if __name__ == "__main__":
    main()
