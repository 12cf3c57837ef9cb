"""InterFaceGAN's two demo generators side by side: each config's GAN phase trains for the same wall time on the
demo data, and the realism of its unedited EMA samples is measured at checkpoints of that time (the Fréchet
distance of ``--samples`` samples to all train images in the suite's realism space: ``sample_realism`` of
gan_samples.csv, lower is better).

    .venv/bin/python benchmarks/interfacegan_generators.py [--seconds 150] [--every 30] [--samples 1200]
        [--configs methods/interfacegan/configs/dcgan-demo.yaml methods/interfacegan/configs/demo.yaml] [--seed 1]

Only the GAN trains (the predictor and encoder phases are switched off; their cost is the same whichever
generator they serve, apart from the generator's own speed); the realism measurements are not counted in the
training time. The judges come from ATTREDIT_CACHE (the demo's, so the numbers are the demo's scale; trained
there when absent). Run it alone on the machine: it is a timing. Prints one JSON line per measurement and a
summary table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import torch
import yaml

DEFAULT_CONFIGS = ["methods/interfacegan/configs/dcgan-demo.yaml", "methods/interfacegan/configs/demo.yaml"]


class WallClockRealism(L.Callback):
    """Stops training after ``seconds`` of training time; every ``every`` seconds of it (and at the end) measures
    the realism of ``samples`` EMA samples. Measurement time is excluded from the training clock."""

    def __init__(self, seconds: float, every: float, measure) -> None:  # noqa: ANN001 (callable)
        self.seconds, self.every, self.measure = seconds, every, measure
        self.trained, self.next_at, self.records = 0.0, every, []
        self._t0 = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.trained += time.perf_counter() - self._t0
        done = self.trained >= self.seconds
        if self.trained >= self.next_at or done:
            self.next_at += self.every
            record = {"train_s": round(self.trained, 1), "iterations": int(pl_module.iteration),
                      "sample_realism": self.measure(pl_module)}
            self.records.append(record)
            print(json.dumps(record), flush=True)
        if done:
            trainer.should_stop = True


def gan_only(init_args: dict) -> dict:
    """The config's model arguments with the schedule cut to the GAN phase (long enough for any wall time)."""
    args = dict(init_args)
    args.pop("attribute_names", None)
    args.pop("image_size", None)
    args.update(gan_steps=10**7, predictor_steps=0, encoder_start=10**7, encoder_steps=0, num_boundary_samples=200)
    return args


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    p.add_argument("--seconds", type=float, default=150.0, help="training wall time per generator")
    p.add_argument("--every", type=float, default=30.0, help="measure realism every this many training seconds")
    p.add_argument("--samples", type=int, default=1200, help="EMA samples per realism measurement")
    p.add_argument("--classifier-epochs", type=int, default=12, help="the demo preset's judge (cache key)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: each config's seed_everything)")
    args = p.parse_args()

    from datamodules.synthfaces import SynthFacesDataModule
    from evaluators.frechet import FrechetDistance
    from evaluators.suite import EvaluatorConfig, build_evaluators
    from methods.interfacegan import InterFaceGAN

    configs = [yaml.safe_load(Path(c).read_text()) for c in args.configs]
    data_args = configs[0]["data"]["init_args"]
    dm = SynthFacesDataModule(**data_args)
    bundle = build_evaluators(dm, EvaluatorConfig(classifier_epochs=args.classifier_epochs,
                                                  identity_renders=49_152, batch_size=128))

    @torch.no_grad()
    def measure(model: InterFaceGAN) -> float:
        was = model.training
        model.eval()
        fd = FrechetDistance(bundle.reference.mu, bundle.reference.sigma, min_samples=50)
        g = torch.Generator().manual_seed(0)
        for start in range(0, args.samples, 100):
            codes = model.sample_codes(min(100, args.samples - start), g)
            fd.update(bundle.space(model.render_codes(codes)))
        model.train(was)
        return round(float(fd.compute()), 2)

    summary = []
    for path, cfg in zip(args.configs, configs):
        if cfg["data"]["init_args"] != data_args:
            raise SystemExit(f"error: {path} trains on other data than {args.configs[0]}")
        L.seed_everything(cfg.get("seed_everything", 0) if args.seed is None else args.seed)
        model = InterFaceGAN(dm.attribute_names, dm.resolution, **gan_only(cfg["model"]["init_args"]))
        clock = WallClockRealism(args.seconds, args.every, measure)
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=-1, max_epochs=-1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[clock])
        print(f"# {path}: backbone {model.hparams.backbone}, "
              f"{sum(q.numel() for q in model.generator.parameters()):,} generator parameters", flush=True)
        trainer.fit(model, dm)
        last = clock.records[-1]
        summary.append((path, model.hparams.backbone, last["iterations"], last["train_s"], last["sample_realism"]))
    print("\n| config | backbone | GAN iterations | training s | sample_realism |\n|---|---|---|---|---|")
    for row in summary:
        print("| " + " | ".join(str(v) for v in row) + " |")
    if len(summary) == 2:
        print(f"\nratio {summary[1][1]} / {summary[0][1]}: {summary[1][4] / summary[0][4]:.3f}")


if __name__ == "__main__":
    main()
