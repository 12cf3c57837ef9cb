"""``python -m benchmark <command>``: train, score, run, edit, preview."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "train": "benchmark.train:make_cli",
        "score": "benchmark.score:main",
        "run": "benchmark.runner:main",
        "edit": "benchmark.edit:main",
        "preview": "benchmark.preview:main",
    }
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in commands:
        print("usage: python -m benchmark {" + ",".join(commands) + "} [options]\n"
              "  train   --config methods/<name>/configs/demo.yaml   train a method (LightningCLI)\n"
              "  score   --method NAME [--ckpt PATH] --data synthfaces --attribute Smiling\n"
              "  run     --preset demo|paper --data synthfaces|celebahq   train and score everything\n"
              "  edit    --method NAME --ckpt PATH --attribute Smiling --input DIR --output DIR\n"
              "  preview --data synthfaces   a grid of the data set and its counterfactuals\n"
              "  --debug (any command)   show the traceback of a configuration error")
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    module, func = commands[argv[0]].split(":")
    import importlib

    from benchmark.preflight import UserError
    from datamodules.base import DataLayoutError, UnknownAttributeError
    from evaluators.realism import MissingWeightsError

    try:
        result = getattr(importlib.import_module(module), func)(argv[1:])
    except (UserError, DataLayoutError, UnknownAttributeError, MissingWeightsError) as err:
        if debug:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: {first}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
