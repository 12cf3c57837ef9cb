"""``python -m benchmark score``: score one method on one or more attributes into
``results/<data set>-score/scores.csv`` (``--output`` elsewhere; see docs/adding-a-method.md for the leaderboard).

Trained methods are loaded from ``--ckpt`` (the data set they were trained on is read from the checkpoint
unless ``--data`` is given); reference points (identity, oracle) need no checkpoint.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

from benchmark import preflight
from benchmark.preflight import UserError
from benchmark.results_io import DuplicateResultError, append_rows
from datamodules.base import FaceDataModule
from datamodules.registry import build_datamodule
from evaluators.suite import IDENTITY_BACKENDS, SCORE_COLUMNS, EvaluatorConfig, build_evaluators, describe, score
from methods.base import EditingMethod, get_method, load_method

log = logging.getLogger("benchmark.score")


def datamodule_from_checkpoint(ckpt_path: str) -> FaceDataModule | None:
    import torch

    blob = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    spec = blob.get("attredit_data")
    if not spec:
        return None
    module, _, name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(**{k: v for k, v in spec["init_args"].items() if not k.startswith("_")})


def load_method_and_data(method: str, ckpt: str | None, data: str | None, data_root: str | None,
                         resolution: int | None, attributes: list[str] | None, batch_size: int = 64,
                         ) -> tuple[EditingMethod, FaceDataModule]:
    """The method (loaded or built) and a data module selecting exactly the method's attributes."""
    cls = get_method(method)
    if ckpt:
        m = load_method(ckpt)
        if m.method_name != method:
            raise UserError(f"{ckpt} holds method {m.method_name!r}, not {method!r}")
        dm = None if data else datamodule_from_checkpoint(ckpt)
        if dm is None:
            dm = build_datamodule(data or "synthfaces", root=data_root, resolution=m.image_size,
                                  attributes=m.attribute_names, batch_size=batch_size)
        dm.batch_size = batch_size
        return m, dm
    if cls.needs_training:
        raise UserError(f"{method} needs training: pass --ckpt (train it with `python -m benchmark train "
                         f"--config methods/{method}/configs/demo.yaml`)")
    dm = build_datamodule(data or "synthfaces", root=data_root, resolution=resolution or 64,
                          attributes=attributes, batch_size=batch_size)
    return cls(attribute_names=dm.attribute_names, image_size=dm.resolution), dm


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmark score", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--method", required=True)
    p.add_argument("--ckpt", default=None, help="checkpoint of a trained method")
    p.add_argument("--data", default=None, help="synthfaces | celebahq | celeba (default: from the checkpoint)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--resolution", type=int, default=None, help="for methods without a checkpoint (default 64)")
    p.add_argument("--attributes", nargs="+", default=None,
                   help="attributes the data module selects, for methods without a checkpoint (default all)")
    p.add_argument("--attribute", nargs="+", required=True, help="the attribute(s) to flip, one row each")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--mode", default=None, choices=["latent", "reference"],
                   help="editing mode (default: the method's first declared mode, see its edit_modes)")
    p.add_argument("--max-images", type=int, default=None, help="score a seeded subset of the test split")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--realism", default="auto", choices=["auto", "inception", "attrclf"])
    p.add_argument("--inception-weights", default=None)
    p.add_argument("--classifier-epochs", type=int, default=EvaluatorConfig.classifier_epochs)
    p.add_argument("--identity-epochs", type=int, default=EvaluatorConfig.identity_epochs)
    p.add_argument("--identity-renders", type=int, default=EvaluatorConfig.identity_renders,
                   help="training renders of the factor identity judge (rendered data sets)")
    p.add_argument("--identity-backend", default="auto", choices=list(IDENTITY_BACKENDS),
                   help="auto: dlib's pretrained descriptor on real data when the [dlib] extra is installed, "
                        "else the suite's trained judge (factor judge on rendered data, else ResNet18-CosFace)")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--strategy", default="auto")
    p.add_argument("--output", default=None, help="default results/<data set>-score/scores.csv")
    p.add_argument("--overwrite", action="store_true", help="replace rows with the same key instead of failing")
    return p


def preflight_score(args: argparse.Namespace) -> str:
    """Every check that needs no network: method, checkpoint, data folder, attributes, realism weights.
    Returns the realism backend that will run."""
    preflight.check_methods([args.method])
    cls = get_method(args.method)
    hp: dict = {}
    if args.ckpt:
        hp = preflight.check_checkpoint(args.ckpt, args.method, args.attributes, args.resolution)
    elif cls.needs_training:
        raise UserError(f"{args.method} needs training: pass --ckpt (train it with `python -m benchmark train "
                        f"--config methods/{args.method}/configs/demo.yaml`)")
    if args.data or not args.ckpt:
        header = preflight.check_data(args.data or "synthfaces", args.data_root)
        preflight.check_attributes(args.attributes, header)
        preflight.check_attributes(args.attribute, args.attributes or hp.get("attribute_names") or header,
                                   "attribute to flip (--attribute)")
    return preflight.check_realism(args.realism, args.inception_weights)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    realism = preflight_score(args)
    method, dm = load_method_and_data(args.method, args.ckpt, args.data, args.data_root, args.resolution,
                                      args.attributes, args.batch_size)
    output = Path(args.output or Path("results") / f"{dm.name}-score" / "scores.csv")
    preflight.check_attributes(args.attribute, list(dm.attribute_names), "attribute to flip (--attribute)")
    preflight.check_new_rows(output, [{"method": method.method_name, "dataset": dm.name, "resolution": dm.resolution,
                                       "attribute": a, "strength": float(args.strength), "seed": args.seed,
                                       "mode": method.check_mode(args.mode)}
                                      for a in args.attribute], args.overwrite)
    preflight.check_identity(dm.name, getattr(dm, "root", None), args.identity_backend)  # before any judge trains
    cfg = EvaluatorConfig(classifier_epochs=args.classifier_epochs, identity_epochs=args.identity_epochs,
                          identity_renders=args.identity_renders,
                          identity_backend=args.identity_backend, seed=args.seed, realism=realism,
                          inception_weights=args.inception_weights)
    bundle = build_evaluators(dm, cfg)
    log.info("evaluators: %s", json.dumps(describe(bundle), default=str))
    rows = []
    for attribute in args.attribute:
        row = score(method, dm, attribute, bundle, args.strength, args.max_images, args.batch_size, args.seed,
                    {"accelerator": args.accelerator, "devices": args.devices, "strategy": args.strategy},
                    args.mode)
        rows.append(row)
        print(json.dumps(row, default=str))
    try:
        append_rows(output, rows, SCORE_COLUMNS, overwrite=args.overwrite)
    except DuplicateResultError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"appended {len(rows)} row(s) to {output}")
    return 0
