"""Train the identity judge of the demo data set (cold cache) and print its time, threshold and probe pass rates.

    .venv/bin/python benchmarks/identity_judge.py [--renders 49152] [--resolution 32]

Uses a fresh temporary cache, so it always trains. Run it alone on the machine (it is a timing).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--renders", type=int, default=49_152)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    os.environ["ATTREDIT_CACHE"] = tempfile.mkdtemp(prefix="attredit-judge-")
    from datamodules.synthfaces import SynthFacesDataModule
    from evaluators.identity_encoder import get_identity_encoder

    dm = SynthFacesDataModule(resolution=args.resolution, attributes=["Smiling", "Eyeglasses", "Young"], seed=0)
    dm.setup()
    t0 = time.perf_counter()
    report = get_identity_encoder(dm, renders=args.renders, batch_size=args.batch_size, seed=0)
    print(json.dumps({"seconds": round(time.perf_counter() - t0, 1), "threshold": report.threshold,
                      "roc_auc": report.roc_auc, "tar_at_far": report.tar_at_far, "probes": report.probes,
                      "factor_r2": report.factor_r2}, indent=1))


if __name__ == "__main__":
    main()
