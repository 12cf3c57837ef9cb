"""A method's paper config for a few optimizer steps on CPU, on a CelebAMask-HQ-layout folder of synthetic JPEGs at
the config's resolution: wall time and peak RSS (the "does the paper config fit a 16 GB workstation" check).

    .venv/bin/python benchmarks/paper_config_smoke.py interfacegan [--steps 2] [--batch-size N] [--images 48]
        [--boundary-samples 64]

The config is used unchanged but for: CPU, ``max_steps``, no checkpoints/logger, the data folder, loader workers 0,
and optionally the batch size. For methods with a boundary search after a stopped fit (InterFaceGAN) the number of
samples is capped by ``--boundary-samples`` (the search's cost is not the training's). Prints one JSON line.
Run it alone on the machine: it is a timing.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("method")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    p.add_argument("--images", type=int, default=48, help="JPEGs in the synthetic CelebAMask-HQ folder")
    p.add_argument("--boundary-samples", type=int, default=64)
    args = p.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from fixtures_real import paper_config_on_cpu, write_celebahq

    from benchmark.train import make_cli
    from methods.base import _discover, config_path

    _discover()
    cfg = yaml.safe_load(config_path(args.method, "paper").read_text())
    data = cfg["data"]["init_args"]
    tmp = Path(tempfile.mkdtemp(prefix="paper-smoke-"))
    batch = args.batch_size or data.get("batch_size", 32)
    write_celebahq(tmp / "hq", n=max(args.images, 3 * batch), size=data["resolution"])
    model = {}
    if "num_boundary_samples" in cfg["model"]["init_args"]:
        model = {"num_boundary_samples": args.boundary_samples,
                 "boundary_ratio": max(cfg["model"]["init_args"].get("boundary_ratio", 0.02),
                                       8 / args.boundary_samples)}
    _, path = paper_config_on_cpu(args.method, tmp / "hq", tmp, args.steps, batch, model)
    t0 = time.perf_counter()
    cli = make_cli(["fit", "--config", str(path)])
    seconds = time.perf_counter() - t0
    model = cli.model
    print(json.dumps({
        "method": args.method, "resolution": data["resolution"], "batch_size": batch, "steps": cli.trainer.global_step,
        "params_m": round(sum(q.numel() for q in model.parameters()) / 1e6, 2), "seconds": round(seconds, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }))


if __name__ == "__main__":
    main()
