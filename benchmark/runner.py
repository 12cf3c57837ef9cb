"""``python -m benchmark run``: train the evaluators, train every method, score it, write the leaderboard.

Each (method, seed) training unit — one per (method, attribute, seed) for a method that trains one model per
attribute (see ``per_attribute``) — and each (method, attribute, strength, editing mode, seed) scoring unit is
resumable: a finished unit is skipped on a re-run (``--force`` redoes it), a killed training resumes from its last
checkpoint, and nothing written by a finished unit is lost.

Outputs go to ``--output`` when given, else to ``results/<data set>-<preset>[-<method>+<method>...]`` (the
methods only when ``--methods`` names other than the preset's). Only ``make demo`` writes the committed demo,
``results/synthfaces``, by passing it as ``--output``.
Every check that needs no network (names, data folder, attributes, preset keys, realism weights) runs first.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from benchmark import preflight
from benchmark.preflight import UserError
from benchmark.results_io import append_rows, has_row, read_results

log = logging.getLogger("benchmark.run")
PRESETS = Path(__file__).parent / "presets"
METHODS_DIR = Path(__file__).resolve().parent.parent / "methods"
STAGES = ("train", "score", "leaderboard", "plots", "grids")


@dataclass
class RunContext:
    preset: dict
    data: str
    data_root: str | None
    out: Path
    force: bool = False
    accelerator: str | None = None
    devices: int | None = None
    methods: list[str] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)

    @property
    def work(self) -> Path:
        return self.out / "_work"

    def status(self, unit: str, state: str, seconds: float | None = None) -> None:
        took = f" ({seconds:.0f} s)" if seconds is not None else ""
        print(f"[{time.strftime('%H:%M:%S')}] {unit:<44} {state}{took}", flush=True)


def load_preset(name: str) -> dict:
    """A preset by name (``benchmark/presets/<name>.yaml``) or by path (ending in .yaml / .yml, or naming a folder)."""
    is_path = name.endswith((".yaml", ".yml")) or os.sep in name
    path = Path(name).expanduser() if is_path else PRESETS / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESETS.glob("*.yaml"))
        if is_path:
            raise UserError(f"preset file {path} does not exist (a preset is a path to a YAML file or one of: "
                            f"{', '.join(known)})")
        raise UserError(f"no preset {name!r}{preflight.closest(name, known)}; known presets: {', '.join(known)} "
                        "(or a path to a YAML file)")
    preset = yaml.safe_load(path.read_text())
    preflight.check_preset(preset, str(path))
    return preset


def data_init_args(ctx: RunContext, attribute: str | None = None) -> dict:
    """The data module's arguments. Methods train on (and the data module selects) the preset's attributes;
    ``--attributes`` only narrows which of them are scored. ``attribute``: the one attribute of a per-attribute
    training unit (see ``per_attribute``)."""
    args = dict(ctx.preset["data"].get("init_args", {}))
    args["attributes"] = [attribute] if attribute else list(ctx.preset["attributes"])
    if ctx.data_root:
        args["root"] = ctx.data_root
    return args


def build_data(ctx: RunContext):
    from datamodules.registry import build_datamodule

    args = data_init_args(ctx)
    root = args.pop("root", None)
    dm = build_datamodule(ctx.data, root=root, **args)
    dm.setup()
    return dm


# -- training ----------------------------------------------------------------------------------------------
def _config_path(method: str, preset: str) -> Path:
    """``methods/<method>/configs/<preset>.yaml`` when it exists, else where the registry says (variants)."""
    from methods.base import config_path

    local = METHODS_DIR / method / "configs" / f"{preset}.yaml"
    return local if local.exists() else config_path(method, preset)


def read_method_config(ctx: RunContext, method: str) -> dict:
    """The method's preset config as written (empty when it has none)."""
    src = _config_path(method, ctx.preset["method_config"])
    return (yaml.safe_load(src.read_text()) or {}) if src.exists() else {}


def per_attribute(ctx: RunContext, method: str) -> bool:
    """Whether ``method`` trains one model per scored attribute, each on that attribute alone: its preset config
    says ``per_attribute: true`` (the official releases of some methods train one model per attribute) or its
    class edits one attribute per model (``multi_attribute = False``). Methods without training never do."""
    from methods.base import get_method

    cls = get_method(method)
    if not cls.needs_training:
        return False
    src = _config_path(method, ctx.preset["method_config"])
    return preflight.check_per_attribute(read_method_config(ctx, method), cls.multi_attribute, str(src))


def unit_attributes(ctx: RunContext, method: str) -> list[str | None]:
    """The attribute of each of ``method``'s training units: every scored attribute for a per-attribute method,
    else ``[None]`` (one unit on all the preset's attributes)."""
    return list(ctx.attributes) if per_attribute(ctx, method) else [None]


def model_attribute(ctx: RunContext, method: str, attribute: str) -> str | None:
    """The training unit whose model scores ``attribute``: its own (per-attribute methods) or the one (None)."""
    return attribute if per_attribute(ctx, method) else None


def unit_name(method: str, attribute: str | None = None) -> str:
    """``<method>`` or, for a per-attribute unit, ``<method>@<Attribute>``."""
    return f"{method}@{attribute}" if attribute else method


def method_config(ctx: RunContext, method: str, seed: int, unit_dir: Path, attribute: str | None = None) -> Path:
    """The method's preset config with this run's data, seed, devices and checkpoint folder, saved in the unit."""
    cfg = effective_config(ctx, method, seed, unit_dir, attribute)
    path = unit_dir / "config.yaml"
    unit_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
    tmp.replace(path)
    return path


def effective_config(ctx: RunContext, method: str, seed: int, unit_dir: Path, attribute: str | None = None
                     ) -> dict:
    """The config a training unit runs: the method's preset config with this run's data (``attribute`` alone for
    a per-attribute unit), seed, devices and checkpoint folder, and ``per_attribute`` stated (nothing is
    written)."""
    src = _config_path(method, ctx.preset["method_config"])
    if not src.exists():
        raise UserError(f"{method} has no {src.name} config at {src}")
    cfg = yaml.safe_load(src.read_text())
    from datamodules.registry import _DATAMODULES, _discover

    _discover()
    data_cls = _DATAMODULES[ctx.data]
    cfg["data"] = {"class_path": f"{data_cls.__module__}.{data_cls.__qualname__}",
                   "init_args": {**cfg.get("data", {}).get("init_args", {}), **data_init_args(ctx, attribute)}}
    if ctx.data != "synthfaces":
        cfg["data"]["init_args"] = {k: v for k, v in cfg["data"]["init_args"].items()
                                    if k not in ("num_identities", "images_per_identity", "correlation", "nuisance")}
    cfg["seed_everything"] = seed
    cfg["per_attribute"] = attribute is not None
    trainer = cfg.setdefault("trainer", {})
    trainer["default_root_dir"] = str(unit_dir)
    trainer.update({k: v for k, v in ctx.preset.get("trainer", {}).items()})
    if ctx.accelerator:
        trainer["accelerator"] = ctx.accelerator
    if ctx.devices:
        trainer["devices"] = ctx.devices
        if ctx.devices > 1:  # GANs step some parameters per optimizer only: Lightning #20328
            trainer.setdefault("strategy", "ddp_find_unused_parameters_true")
    callbacks = [c for c in trainer.get("callbacks") or [] if "ModelCheckpoint" not in c.get("class_path", "")]
    every = 200
    for c in trainer.get("callbacks") or []:
        if "ModelCheckpoint" in c.get("class_path", ""):
            every = c.get("init_args", {}).get("every_n_train_steps", every) or every
    callbacks.append({"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                      "init_args": {"dirpath": str(unit_dir / "checkpoints"), "save_last": True,
                                    "every_n_train_steps": every, "save_top_k": 0}})
    trainer["callbacks"] = callbacks
    trainer.setdefault("logger", False)
    return cfg


#: config keys that only say where things go or how fast they load, not what is trained
_NOT_COMPARED = ("trainer.default_root_dir", "trainer.callbacks", "trainer.logger", "trainer.log_every_n_steps",
                 "trainer.enable_progress_bar", "data.init_args.root", "data.init_args.cache_dir",
                 "data.init_args.num_workers", "deviations", "seed_everything")


def _flatten(cfg: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def paper_differences(effective: dict, paper: dict) -> list[tuple[str, object, object]]:
    """(key, the method's paper.yaml value, the effective value) for every trained setting that differs."""
    a, b = _flatten(paper), _flatten(effective)
    keys = [k for k in dict.fromkeys([*a, *b]) if not k.startswith(_NOT_COMPARED)]
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def paper_config(method: str) -> dict:
    """The method's paper.yaml with ``per_attribute`` resolved as the runner resolves it (empty: no paper.yaml)."""
    from methods.base import get_method

    path = _config_path(method, "paper")
    if not path.exists():
        return {}
    paper = yaml.safe_load(path.read_text()) or {}
    return {**paper, "per_attribute": preflight.check_per_attribute(paper, get_method(method).multi_attribute,
                                                                    str(path))}


def describe_units(ctx: RunContext, seed: int = 0) -> str:
    """For every training unit (one per method, or one per scored attribute of a per-attribute method):
    effective resolution, attributes and steps, and what differs from the method's paper.yaml (a Markdown
    table). Written to ``<out>/preset_vs_paper.md`` by the train stage; printed by ``--dry-run``."""
    from methods.base import get_method

    lines = ["| unit | resolution | attributes | max_steps | differences from the method's paper.yaml |",
             "|---|---|---|---|---|"]
    for method in ctx.methods:
        if not get_method(method).needs_training:
            continue
        paper = paper_config(method)
        for attribute in unit_attributes(ctx, method):
            cfg = effective_config(ctx, method, seed, final_checkpoint(ctx, method, seed, attribute).parent,
                                   attribute)
            diffs = paper_differences(cfg, paper)
            shown = "; ".join(f"{k}: {p!r} -> {e!r}" for k, p, e in diffs) or "none"
            d = cfg["data"]["init_args"]
            lines.append(f"| {unit_name(method, attribute)} | {d.get('resolution')} | "
                         f"{', '.join(d.get('attributes', []))} | {cfg['trainer'].get('max_steps')} | {shown} |")
    return "\n".join(lines) + "\n"


def final_checkpoint(ctx: RunContext, method: str, seed: int, attribute: str | None = None) -> Path:
    """Where a finished training unit's checkpoint lives: ``<method>[@<attribute>]-seed<seed>-<hash>/``, the hash
    of everything that changes the training (method config, data arguments with the unit's attributes, trainer
    settings), so a changed preset retrains."""
    from datamodules.cache import config_hash

    src = _config_path(method, ctx.preset["method_config"])
    key = {"config": src.read_text() if src.exists() else None, "data": ctx.data,
           "data_args": data_init_args(ctx, attribute), "trainer": ctx.preset.get("trainer", {}),
           "accelerator": ctx.accelerator, "devices": ctx.devices}
    return ctx.work / f"{unit_name(method, attribute)}-seed{seed}-{config_hash(key, 8)}" / "final.ckpt"


def train_unit(ctx: RunContext, method: str, seed: int, attribute: str | None = None) -> Path:
    """Train one unit (``attribute``: the one attribute of a per-attribute unit), or skip it when finished."""
    unit = f"train {unit_name(method, attribute)} seed={seed}"
    final = final_checkpoint(ctx, method, seed, attribute)
    if final.exists() and not ctx.force:
        ctx.status(unit, "done already, skipped")
        return final
    unit_dir = final.parent
    if ctx.force and unit_dir.exists():
        shutil.rmtree(unit_dir)
    config = method_config(ctx, method, seed, unit_dir, attribute)
    cmd = [sys.executable, "-m", "benchmark", "train", "--config", str(config)]
    last = unit_dir / "checkpoints" / "last.ckpt"
    if last.exists():
        cmd += ["--ckpt_path", str(last)]
        ctx.status(unit, f"resuming from {last}")
    else:
        ctx.status(unit, "training")
    t0 = time.time()
    proc = subprocess.run(cmd)
    if proc.returncode == 2:  # argparse / LightningCLI / preflight: the configuration is wrong, nothing to resume
        raise UserError(f"{unit}: configuration error (see the message above); fix {config} or the preset and "
                        "re-run")
    if proc.returncode != 0:
        raise RuntimeError(f"{unit} failed (exit {proc.returncode}); command: {' '.join(cmd)}. "
                           f"Its checkpoints in {unit_dir} are kept: a re-run resumes from the last one.")
    if not last.exists():
        raise RuntimeError(f"{unit} wrote no {last}")
    tmp = final.with_suffix(".tmp")
    shutil.copyfile(last, tmp)
    os.replace(tmp, final)
    ctx.status(unit, "finished", time.time() - t0)
    return final


# -- scoring -----------------------------------------------------------------------------------------------
def load_unit_method(ctx: RunContext, method: str, seed: int, dm, attribute: str | None = None):
    """The trained model of a unit (``attribute``: of a per-attribute unit), or a reference point built on ``dm``."""
    from methods.base import get_method, load_method

    cls = get_method(method)
    if not cls.needs_training:
        return cls(attribute_names=dm.attribute_names, image_size=dm.resolution)
    final = final_checkpoint(ctx, method, seed, attribute)
    if not final.exists():
        raise FileNotFoundError(f"{unit_name(method, attribute)} seed {seed} is not trained yet ({final}); run the "
                                "train stage first")
    return load_method(str(final))


def checkpoint_id(ctx: RunContext, method: str, seed: int, attribute: str | None = None) -> str:
    """What a score row was computed from: ``<unit>/<sha256[:12] of final.ckpt>``, or ``reference`` for methods
    without training. The id follows the checkpoint's bytes: a changed config or code gives another id; retraining
the same config on the same machine and stack (training is seeded and deterministic on CPU) reproduces it, which
is how a fresh clone's run can tell that the committed rows still hold."""
    from methods.base import get_method

    if not get_method(method).needs_training:
        return "reference"
    final = final_checkpoint(ctx, method, seed, attribute)
    digest = hashlib.sha256()
    with open(final, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"{final.parent.name}/{digest.hexdigest()[:12]}"


def provenance_key(path: Path, key: dict) -> str:
    return "|".join([path.name, *(str(key.get(k)) for k in ("method", "dataset", "resolution", "attribute",
                                                              "strength", "mode", "seed"))])


JUDGE_COLUMNS = ("classifier_hash", "id_encoder_hash", "realism_ref_hash")


def row_judges(row: dict) -> str:
    """The judges that scored a row, as one string (``nan|nan|nan`` for rows from before they were recorded)."""
    return "|".join(str(row.get(c, "nan")) for c in JUDGE_COLUMNS)


def archive_stale_rows(ctx: RunContext, paths: list[Path], current: dict[tuple[str, str, int], str],
                       judges: str | None = None) -> None:
    """Move result rows that were not scored from this run's checkpoints (``current``: the checkpoint id of each
    (method, attribute, seed); ids in ``provenance.json``), or were scored
    by other judges than ``judges`` (classifier, identity encoder, realism reference: any method's rows), to
    ``archive/<time>/``, so they are neither skipped as finished, nor silently overwritten, nor averaged with
    rows scored by these judges."""
    import pandas as pd

    from benchmark.results_io import write_csv_atomic

    prov_path = ctx.out / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path in paths:
        df = read_results(path)
        if not len(df):
            continue
        scored_now = {m for m, _, _ in current}  # rows of methods outside this run are left alone
        keep = [(r["method"] not in scored_now
                 or checkpoint_of(prov.get(provenance_key(path, r)))
                 == current.get((r["method"], r["attribute"], int(r["seed"]))))
                and (judges is None or row_judges(r) == judges)
                for r in df.to_dict("records")]
        stale = df[[not k for k in keep]]
        if not len(stale):
            continue
        dest = ctx.out / "archive" / stamp / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        previous = read_results(dest)
        write_csv_atomic(pd.concat([previous, stale]) if len(previous) else stale, dest)
        write_csv_atomic(df[keep], path)
        ctx.status(f"results {path.name}", f"{len(stale)} row(s) scored from other checkpoints or by other judges "
                                           f"moved to {dest}")


def checkpoint_of(entry: object) -> object:
    """The checkpoint id of a provenance entry (a plain id in files written before the judges were recorded)."""
    return entry.get("checkpoint") if isinstance(entry, dict) else entry


def record_provenance(ctx: RunContext, path: Path, key: dict, checkpoint: str, judges: str | None = None) -> None:
    from datamodules.cache import atomic_write_bytes

    prov_path = ctx.out / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    prov[provenance_key(path, key)] = {"checkpoint": checkpoint, "judges": judges} if judges else checkpoint
    atomic_write_bytes(prov_path, json.dumps(prov, indent=1, sort_keys=True).encode())


def current_checkpoints(ctx: RunContext, dm) -> dict[tuple[str, str, int], str]:
    """The checkpoint id each (method, attribute, seed) of the preset is scored from, where that model is trained
    (a per-attribute method's attributes each have their own model)."""
    from methods.base import get_method

    ids: dict[tuple[str, str | None, int], str] = {}  # one hash per checkpoint, however many attributes it edits
    current = {}
    for seed in ctx.preset.get("seeds", [0]):
        for method in all_methods(ctx, dm):
            for attribute in ctx.preset["attributes"]:
                unit = model_attribute(ctx, method, attribute)
                if get_method(method).needs_training and not final_checkpoint(ctx, method, seed, unit).exists():
                    continue
                if (method, unit, seed) not in ids:
                    ids[(method, unit, seed)] = checkpoint_id(ctx, method, seed, unit)
                current[(method, attribute, seed)] = ids[(method, unit, seed)]
    return current


def score_units(ctx: RunContext, dm, bundle) -> None:
    from evaluators.suite import SCORE_COLUMNS, judge_hashes, score
    from methods.base import get_method

    sc = ctx.preset.get("scoring", {})
    scores, sweep = ctx.out / "scores.csv", ctx.out / "strength_sweep.csv"
    current = current_checkpoints(ctx, dm)
    judges = row_judges(judge_hashes(bundle))
    archive_stale_rows(ctx, [scores, sweep], current, judges)
    trainer_kwargs = {"accelerator": ctx.accelerator or ctx.preset.get("trainer", {}).get("accelerator", "cpu"),
                      "devices": 1, "enable_progress_bar": True}
    for seed in ctx.preset.get("seeds", [0]):
        for method in all_methods(ctx, dm):
            cls = get_method(method)
            models = {}  # unit attribute (None: the one model) -> the loaded model, loaded when first needed
            units = []
            for mode in cls.edit_modes:  # every declared editing mode is its own row (and sweep)
                units += [(a, 1.0, mode, sc.get("max_images"), scores) for a in ctx.attributes]
                if cls.supports_strength and sc.get("sweep_attribute") in ctx.attributes:
                    units += [(sc["sweep_attribute"], float(s), mode, sc.get("sweep_max_images"), sweep)
                              for s in sc.get("strength_sweep", [])]
            for attribute, strength, mode, max_images, path in units:
                key = {"method": method, "dataset": dm.name, "resolution": dm.resolution, "attribute": attribute,
                       "strength": strength, "mode": mode, "seed": seed}
                unit = f"score {method} {attribute} {mode} s={strength:g} seed={seed}"
                if has_row(path, key) and not ctx.force:
                    ctx.status(unit, "done already, skipped")
                    continue
                trained_on = model_attribute(ctx, method, attribute)
                if trained_on not in models:
                    models[trained_on] = load_unit_method(ctx, method, seed, dm, trained_on)
                m = models[trained_on]
                t0 = time.time()
                per_image = ctx.out / "per_image" / f"{method}_{mode}_{attribute}_s{strength:g}_seed{seed}.csv"
                row = score(m, dm, attribute, bundle, strength, max_images, sc.get("batch_size", 64), seed,
                            trainer_kwargs, per_image_path=per_image, mode=mode)
                row["deviations"] = deviation_count(ctx, method)
                append_rows(path, [row], SCORE_COLUMNS, overwrite=ctx.force)
                record_provenance(ctx, path, key, current[(method, attribute, seed)], judges)
                ctx.status(unit, f"success={row['success']:.3f} attr_acc={row['attr_acc']:.3f} "
                                 f"id_match={row['id_match']:.3f}",
                           time.time() - t0)


def gan_sample_units(ctx: RunContext, dm, bundle) -> None:
    """The GAN-sample protocol (evaluators/gan_samples.py) for every method that edits its own samples: one row
    per (method, attribute, seed) in ``gan_samples.csv`` (``scoring.gan_samples`` samples; 0 or absent: off)."""
    from evaluators.gan_samples import GAN_SAMPLE_COLUMNS, GAN_SAMPLE_MODE, score_gan_samples, supports_gan_samples
    from evaluators.suite import judge_hashes
    from methods.base import get_method

    sc = ctx.preset.get("scoring", {})
    n = int(sc.get("gan_samples") or 0)
    methods = [m for m in ctx.methods if get_method(m).edits_own_samples]
    if n <= 0 or not methods:
        return
    path = ctx.out / "gan_samples.csv"
    current = current_checkpoints(ctx, dm)
    judges = row_judges(judge_hashes(bundle))
    archive_stale_rows(ctx, [path], current, judges)
    for seed in ctx.preset.get("seeds", [0]):
        for method in methods:
            models = {}
            for attribute in ctx.attributes:
                key = {"method": method, "dataset": dm.name, "resolution": dm.resolution, "attribute": attribute,
                       "strength": 1.0, "mode": GAN_SAMPLE_MODE, "seed": seed}
                unit = f"gan-samples {method} {attribute} seed={seed}"
                if has_row(path, key) and not ctx.force:
                    ctx.status(unit, "done already, skipped")
                    continue
                trained_on = model_attribute(ctx, method, attribute)
                if trained_on not in models:
                    models[trained_on] = load_unit_method(ctx, method, seed, dm, trained_on)
                if not supports_gan_samples(models[trained_on]):
                    continue
                t0 = time.time()
                row = score_gan_samples(models[trained_on], dm, attribute, bundle, n, 1.0, seed,
                                        sc.get("batch_size", 100))
                append_rows(path, [row], GAN_SAMPLE_COLUMNS, overwrite=ctx.force)
                record_provenance(ctx, path, key, current[(method, attribute, seed)], judges)
                ctx.status(unit, f"success={row['success']:.3f} attr_acc={row['attr_acc']:.3f} "
                                 f"id_match={row['id_match']:.3f} sample_realism={row['sample_realism']:.1f}",
                           time.time() - t0)


def deviation_count(ctx: RunContext, method: str) -> int | float:
    """How many deviations from the official code the method's preset config declares (NaN: no config)."""
    from benchmark.deviations import read_deviations

    src = _config_path(method, ctx.preset["method_config"])
    return len(read_deviations(src)) if src.exists() else float("nan")


def all_methods(ctx: RunContext, dm) -> list[str]:
    from methods.base import get_method

    refs = [r for r in ctx.preset.get("reference_points", [])
            if not get_method(r).synthetic_only or dm.has_counterfactuals]
    return [*ctx.methods, *[r for r in refs if r not in ctx.methods]]


# -- entry point -------------------------------------------------------------------------------------------
def default_output(data: str, preset_name: str, methods: list[str], preset: dict) -> Path:
    """``results/<data>-<preset>[-<methods>]``: a run never writes into another run's (or the demo's) folder."""
    name = f"{data}-{Path(preset_name).stem}"
    if list(methods) != list(preset["methods"]):
        name += "-" + "+".join(methods)
    return Path("results") / name


def preflight_run(ctx: RunContext, stages: tuple[str, ...]) -> None:
    """Everything that can be checked before a network is trained (see benchmark/preflight.py)."""
    from methods.base import get_method

    preflight.check_methods([*ctx.methods, *ctx.preset.get("reference_points", [])])
    root = ctx.data_root or ctx.preset["data"].get("init_args", {}).get("root")
    header = preflight.check_data(ctx.data, root)
    preflight.check_attributes(ctx.preset["attributes"], header)
    extra = [a for a in ctx.attributes if a not in ctx.preset["attributes"]]
    if extra:
        raise UserError(f"--attributes {extra} are not among the preset's attributes {ctx.preset['attributes']} "
                        "(methods train on the preset's attributes; edit the preset to train on others)")
    if "train" in stages:
        for m in ctx.methods:
            src = _config_path(m, ctx.preset["method_config"])
            if get_method(m).needs_training and not src.exists():
                raise UserError(f"{m} has no {src.name} config at {src}; set method_config in the preset")
    for m in ctx.methods:
        per_attribute(ctx, m)  # a malformed per_attribute key stops here
    if "score" in stages:
        ev = ctx.preset.setdefault("evaluators", {})
        ev["realism"] = preflight.check_realism(ev.get("realism", "auto"), ev.get("inception_weights"))
        preflight.check_identity(ctx.data, root, ev.get("identity_backend", "auto"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmark run", description=__doc__)
    p.add_argument("--preset", default="demo", help="demo | paper | path to a preset YAML")
    p.add_argument("--data", default=None, help="synthfaces | celebahq | celeba (default: the preset's)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--methods", nargs="+", default=None)
    p.add_argument("--attributes", nargs="+", default=None)
    p.add_argument("--stage", nargs="+", default=["all"], choices=["all", *STAGES])
    p.add_argument("--accelerator", default=None, help="cpu | gpu | auto (default: the preset's)")
    p.add_argument("--devices", type=int, default=None, help="> 1 trains with Lightning's DDP")
    p.add_argument("--output", default=None, help="default results/<data set>-<preset>[-<methods>]")
    p.add_argument("--force", action="store_true", help="redo finished units (replacing their rows)")
    p.add_argument("--dry-run", action="store_true",
                   help="print each method's effective resolution, attributes, steps and its differences from "
                        "its paper.yaml, then stop (nothing is trained or scored)")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    preset = load_preset(args.preset)
    data = args.data or preset["data"]["name"]
    if data != preset["data"]["name"]:
        preset = copy.deepcopy(preset)
        shared = ("resolution", "attributes", "seed", "batch_size", "num_workers")
        preset["data"] = {"name": data, "init_args": {k: v for k, v in preset["data"].get("init_args", {}).items()
                                                      if k in shared}}
    accelerator = None if args.accelerator in (None, "auto") else args.accelerator
    methods = args.methods or list(preset["methods"])
    out = Path(args.output) if args.output else default_output(data, args.preset, methods, preset)
    ctx = RunContext(preset, data, args.data_root, out, args.force, accelerator, args.devices, methods,
                     args.attributes or list(preset["attributes"]))
    from methods.base import get_method

    stages = STAGES if "all" in args.stage else tuple(s for s in STAGES if s in args.stage)
    if args.dry_run:  # states what would run; needs no data folder
        print(f"preset {args.preset}: data {data}; what each training unit would run\n")
        print(describe_units(ctx, preset.get("seeds", [0])[0]))
        return 0
    preflight_run(ctx, stages)
    ctx.out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    if "all" in args.stage:  # first output: the data set at a glance (and its exact counterfactuals)
        from benchmark.preview import write_preview

        write_preview(build_data(ctx), ctx.out / "preview.png", ctx.preset.get("grids", {}).get("rows", 8))
        ctx.status("preview", f"wrote {ctx.out / 'preview.png'}")
    if "train" in stages:
        from datamodules.cache import atomic_write_bytes

        table = describe_units(ctx, preset.get("seeds", [0])[0])
        atomic_write_bytes(ctx.out / "preset_vs_paper.md", table.encode())
        print(table, flush=True)
        for seed in preset.get("seeds", [0]):
            for method in ctx.methods:
                if get_method(method).needs_training:
                    for attribute in unit_attributes(ctx, method):
                        train_unit(ctx, method, seed, attribute)
    dm = bundle = None
    if "score" in stages or "grids" in stages:
        from evaluators.suite import EvaluatorConfig, build_evaluators, describe

        dm = build_data(ctx)
        if "score" in stages:
            ctx.status("evaluators", "building (cached after the first run)")
            t0 = time.time()
            bundle = build_evaluators(dm, EvaluatorConfig(**preset.get("evaluators", {})))
            write_evaluator_report(ctx, describe(bundle))
            ctx.status("evaluators", "ready", time.time() - t0)
            score_units(ctx, dm, bundle)
            gan_sample_units(ctx, dm, bundle)
    if "leaderboard" in stages:
        from benchmark.leaderboard import write_leaderboard

        table = write_leaderboard(read_results(ctx.out / "scores.csv"), ctx.out)
        print(table)
        gan = read_results(ctx.out / "gan_samples.csv")
        if len(gan):
            from benchmark.leaderboard import write_gan_sample_table

            print(write_gan_sample_table(gan, ctx.out))
    if "plots" in stages:
        from benchmark.plots import write_plots

        write_plots(ctx.out)
    if "grids" in stages:
        from benchmark.grids import write_grids

        write_grids(ctx, dm)
    ctx.status("run", f"complete; outputs in {ctx.out}", time.time() - t_start)
    return 0


def write_evaluator_report(ctx: RunContext, report: dict) -> None:
    from datamodules.cache import atomic_write_bytes

    atomic_write_bytes(ctx.out / "evaluators.yaml", yaml.safe_dump(report, sort_keys=False).encode())


if __name__ == "__main__":
    sys.exit(main())
