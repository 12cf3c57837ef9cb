"""Time the CelebA-HQ preprocessing (JPEG decode, crop, antialiased resize into the uint8 cache).

Writes ``--num`` synthetic 1024x1024 JPEGs (quality 95, random smooth content plus mild noise, so the files
are about as large as CelebA-HQ's) in the CelebAMask-HQ layout in a temporary folder, then builds the
preprocessing cache at each ``--resolutions`` (a fresh cache folder each time) and prints images/s and the CPU
time per image (user + system, all processes: independent of how busy the machine is).

    python benchmarks/celebahq_preprocess.py [--num 300] [--workers N] [--no-draft-too]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.base import CELEBA_ATTRIBUTES
from datamodules.celebahq import ATTRIBUTE_FILE, IMAGE_DIR, MAPPING_FILE, CelebAHQDataModule
from datamodules.realfaces.cache import default_workers


def write_layout(root: Path, num: int, size: int, quality: int, seed: int = 0) -> float:
    """Write the CelebAMask-HQ layout with ``num`` synthetic JPEGs; returns the mean file size in KiB."""
    rng = np.random.default_rng(seed)
    (root / IMAGE_DIR).mkdir(parents=True)
    total = 0
    for i in range(num):
        grid = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), "RGB")
        smooth = np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
        noisy = np.clip(smooth + rng.normal(0, 3, smooth.shape), 0, 255).astype(np.uint8)
        path = root / IMAGE_DIR / f"{i}.jpg"
        Image.fromarray(noisy, "RGB").save(path, quality=quality)
        total += path.stat().st_size
    values = rng.choice(np.array([-1, 1]), size=(num, len(CELEBA_ATTRIBUTES)))
    rows = [f"{i}.jpg " + " ".join(str(v) for v in row) for i, row in enumerate(values)]
    (root / ATTRIBUTE_FILE).write_text("\n".join([str(num), " ".join(CELEBA_ATTRIBUTES), *rows]) + "\n")
    mapping = ["idx orig_idx orig_file"] + [f"{i} {i} {i + 1:06d}.jpg" for i in range(num)]
    (root / MAPPING_FILE).write_text("\n".join(mapping) + "\n")
    return total / num / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (the decoding pool)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def time_build(root: Path, cache: Path, resolution: int, workers: int, draft: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to build the cache of ``root`` at ``resolution`` into the empty ``cache``."""
    dm = CelebAHQDataModule(str(root), resolution=resolution, cache_dir=str(cache), num_workers=0,
                            preprocess_workers=workers, draft=draft, split_protocol="last3000",
                            val_size=1, test_size=1)
    start, cpu = time.perf_counter(), cpu_seconds()
    dm.prepare_data()
    return time.perf_counter() - start, cpu_seconds() - cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num", type=int, default=300)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--quality", type=int, default=95)
    p.add_argument("--resolutions", type=int, nargs="+", default=[256, 64])
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--no-draft-too", action="store_true", help="also time without JPEG draft decoding")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, os.cpu_count()={os.cpu_count()}, "
          f"usable cpus={len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}, "
          f"load average {os.getloadavg()[0]:.1f}, preprocess workers={args.workers}")
    with tempfile.TemporaryDirectory(prefix="celebahq-bench-") as tmp:
        root = Path(tmp) / "celebahq"
        start = time.perf_counter()
        kib = write_layout(root, args.num, args.size, args.quality)
        print(f"wrote {args.num} {args.size}x{args.size} JPEGs (quality {args.quality}, mean {kib:.0f} KiB) "
              f"in {time.perf_counter() - start:.1f} s")
        runs = [(r, True) for r in args.resolutions]
        runs += [(r, False) for r in args.resolutions] if args.no_draft_too else []
        for n, (resolution, draft) in enumerate(runs):
            seconds, cpu = time_build(root, Path(tmp) / f"cache{n}", resolution, args.workers, draft)
            print(f"{args.size} px -> {resolution} px, draft={draft}: {args.num / seconds:7.1f} images/s "
                  f"({seconds:.2f} s for {args.num}; {1000 * cpu / args.num:.1f} CPU ms per image)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
