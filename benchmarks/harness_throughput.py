"""Harness throughput: images scored per second by ``evaluators.suite.score`` against the bare forward passes
of its networks (classifier x2, identity encoder x2, realism features x2 per image), on the synthetic set.

    python benchmarks/harness_throughput.py [--resolution 64] [--batch-size 100] [--method identity]

The evaluators are trained (or loaded from the cache) first; that time is not counted.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from datamodules.synthfaces import SynthFacesDataModule
from evaluators.suite import EvaluatorConfig, build_evaluators, score
from methods import get_method


@torch.no_grad()
def bare_forward(bundle, images: torch.Tensor, batch_size: int) -> float:
    t0 = time.perf_counter()
    for s in range(0, len(images), batch_size):
        x = images[s:s + batch_size]
        for _ in range(2):  # input and edit
            bundle.classifier.model(x)
            bundle.identity.model(x)
            bundle.space(x)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--method", default="identity")
    p.add_argument("--classifier-epochs", type=int, default=6)
    p.add_argument("--identity-epochs", type=int, default=8)
    args = p.parse_args()
    dm = SynthFacesDataModule(resolution=args.resolution, batch_size=args.batch_size)
    dm.setup()
    bundle = build_evaluators(dm, EvaluatorConfig(classifier_epochs=args.classifier_epochs,
                                                  identity_epochs=args.identity_epochs))
    m = get_method(args.method)(attribute_names=dm.attribute_names, image_size=dm.resolution)
    t0 = time.perf_counter()
    row = score(m, dm, "Smiling", bundle, batch_size=args.batch_size,
                trainer_kwargs={"enable_progress_bar": False})
    harness = time.perf_counter() - t0
    test = dm.dataset("test")
    images = torch.stack([test[i]["image"] for i in range(len(test))])
    bare = bare_forward(bundle, images, args.batch_size)
    n = row["n_images"]
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.resolution} px, batch {args.batch_size}, method {args.method}, realism {bundle.space.name}")
    print(f"harness: {n} images in {harness:.1f} s = {n / harness:.1f} img/s "
          f"(includes the exact counterfactual renders)")
    print(f"bare forward passes of its networks: {n / bare:.1f} img/s; harness overhead {harness / bare:.2f}x")


if __name__ == "__main__":
    main()
