"""Checks run before any network is trained: a user's mistake costs seconds, not a training run.

Every check raises ``UserError`` with one line saying what is wrong and what to do; ``benchmark/__main__.py``
prints it as ``error: ...`` and exits with status 2 (the traceback only with ``--debug``). The checks read no
more than they must: the data set's annotation header line, a checkpoint's metadata, a results file's keys.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from benchmark.results_io import ROW_KEY, has_row


class UserError(Exception):
    """A mistake in the command line, the preset or the inputs: reported as one line, exit status 2."""


def closest(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest valid name, or an empty string."""
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def check_methods(names: Sequence[str]) -> None:
    """Every name is a registered method."""
    from methods.base import list_methods

    known = list_methods()
    for name in names:
        if name not in known:
            raise UserError(f"unknown method {name!r}{closest(name, known)}; registered methods: {', '.join(known)}")


# -- data --------------------------------------------------------------------------------------------------
def _header_attributes(path: Path) -> list[str]:
    """The attribute names on the second line of a CelebA-format annotation file (line 1 is the count)."""
    with open(path) as fh:
        fh.readline()
        return fh.readline().split()


def check_data(data: str, root: str | os.PathLike | None) -> list[str]:
    """The data set exists and its folder has the expected layout; returns the attribute names it annotates."""
    from datamodules.registry import _DATAMODULES, _discover

    _discover()
    if data not in _DATAMODULES:
        known = ", ".join(sorted(_DATAMODULES))
        raise UserError(f"unknown data set {data!r}{closest(data, _DATAMODULES)}; known: {known}")
    if data == "synthfaces":
        from datamodules.synthfaces.datamodule import ATTRIBUTES

        return list(ATTRIBUTES)
    if root is None:
        raise UserError(f"--data {data} needs --data-root DIR (the folder holding the {data} files)")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise UserError(f"data root {base} does not exist; pass --data-root with the {data} folder")
    if data == "celebahq":
        from datamodules import celebahq as mod

        need_dir, need_files = base / mod.IMAGE_DIR, [base / mod.ATTRIBUTE_FILE, base / mod.MAPPING_FILE]
    elif data == "celeba":
        from datamodules import celeba as mod

        base = base / "celeba" if (base / "celeba" / mod.ATTRIBUTE_FILE).is_file() else base
        need_dir, need_files = base / mod.IMAGE_DIR, [base / mod.ATTRIBUTE_FILE]
    else:  # a data set registered by a user: its own setup reports its layout
        return []
    missing = [p.name for p in [need_dir, *need_files] if not p.exists()]
    if missing:
        raise UserError(f"{base} is not a {data} folder: missing {', '.join(missing)} "
                        f"(see `{mod.__name__}.LAYOUT` or docs for the expected layout)")
    header = _header_attributes(need_files[0])
    if not header:
        raise UserError(f"{need_files[0]} has no attribute header on its second line")
    return header


def check_attributes(names: Iterable[str] | None, available: Sequence[str], what: str = "attribute") -> None:
    """Every name is among ``available`` (the annotation header)."""
    if not available:
        return
    for name in names or []:
        if name not in available:
            raise UserError(f"unknown {what} {name!r}{closest(name, available)}; "
                            f"the data set has: {' '.join(available)}")


def identity_labels_file(data: str, root: str | os.PathLike | None) -> Path | None:
    """Where ``data``'s identity labels must be (``identity_CelebA.txt``), or None for a data set without such a
    file (the synthetic set renders its identities; a user-registered set reports its own)."""
    if root is None or data not in ("celebahq", "celeba"):
        return None
    base = Path(root).expanduser()
    if data == "celebahq":
        from datamodules import celebahq as mod
    else:
        from datamodules import celeba as mod

        base = base / "celeba" if (base / "celeba" / mod.ATTRIBUTE_FILE).is_file() else base
    return base / mod.IDENTITY_FILE


def check_identity(data: str, root: str | os.PathLike | None, backend: str = "auto") -> str:
    """The identity judge that will run (``dlib`` or ``trained``). Fails now, not after training, when ``dlib`` is
    asked for without the [dlib] extra, or when the judge must be trained (no dlib) on a real folder without
    identity labels; ``auto`` falling back from dlib to the trained encoder says so once."""
    from evaluators import identity_dlib
    from evaluators.suite import IDENTITY_BACKENDS

    if backend not in IDENTITY_BACKENDS:
        raise UserError(f"unknown identity backend {backend!r}{closest(backend, IDENTITY_BACKENDS)}; "
                        f"choose {', '.join(IDENTITY_BACKENDS)}")
    installed = identity_dlib.dlib_available()
    extra = "pip install -e '.[dlib]' (dlib-bin + face_recognition_models, model files inside the wheel)"
    if backend == "dlib" and not installed:
        raise UserError(f"identity_backend: dlib needs the optional extra, not installed here: {extra}")
    real = data != "synthfaces"
    if backend == "dlib" or (backend == "auto" and real and installed):
        return "dlib"
    labels = identity_labels_file(data, root)
    if labels is not None and not labels.is_file():
        why = "dlib is not installed" if backend == "auto" else "identity_backend is trained"
        raise UserError(f"{data} at {root} has no {labels.name} and {why}: the trained identity encoder needs "
                        f"identity labels; add {labels.name} or install dlib's pretrained descriptor: {extra}")
    if backend == "auto" and real:
        print(f"notice: the dlib identity backend is not installed ({extra}): identity is judged by the "
              f"suite's ResNet18-CosFace trained on {data}'s identity labels", flush=True)
    return "trained"


def check_per_attribute(config: dict, multi_attribute: bool, source: str = "config") -> bool:
    """Whether a method config trains one model per attribute: its ``per_attribute:`` key (true or false;
    absent = false), forced true for a method class that edits one attribute per model (``multi_attribute``
    False), which may not say ``per_attribute: false``."""
    flag = config.get("per_attribute")
    if flag is not None and not isinstance(flag, bool):
        raise UserError(f"{source}: per_attribute must be true or false, got {flag!r}")
    if flag is False and not multi_attribute:
        raise UserError(f"{source}: per_attribute: false, but the method edits one attribute per model "
                        "(multi_attribute = False); remove the key")
    return bool(flag) or not multi_attribute


# -- checkpoints -------------------------------------------------------------------------------------------
def check_checkpoint(path: str | os.PathLike, method: str | None = None, attributes: Sequence[str] | None = None,
                     resolution: int | None = None) -> dict:
    """``path`` is an attredit checkpoint of ``method``, trained on ``attributes`` at ``resolution`` (each
    checked only when given). Returns its hyper-parameters."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint {p} does not exist")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (any unreadable file is the same user mistake)
        raise UserError(f"{p} is not a PyTorch checkpoint ({type(err).__name__}); pass a .ckpt written by "
                        "`python -m benchmark train`") from err
    name = blob.get("attredit_method") if isinstance(blob, dict) else None
    if not name:
        raise UserError(f"{p} is not an attredit-bench method checkpoint (no 'attredit_method'); pass a .ckpt "
                        "written by `python -m benchmark train`")
    if method is not None and name != method:
        raise UserError(f"{p} holds method {name!r}, not {method!r}; pass --method {name} or that method's checkpoint")
    hp = dict(blob.get("hyper_parameters") or {})
    trained = list(hp.get("attribute_names") or [])
    if attributes is not None and trained and list(attributes) != trained:
        raise UserError(f"{p} was trained on {trained}, not {list(attributes)}; score with those attributes "
                        "or retrain")
    size = hp.get("image_size")
    if resolution is not None and size is not None and int(size) != int(resolution):
        raise UserError(f"{p} was trained at {size} px, not {resolution} px; pass --resolution {size} or retrain")
    return hp


# -- evaluators, presets, outputs --------------------------------------------------------------------------
def check_realism(realism: str, weights: str | None = None) -> str:
    """The realism backend that will run: ``inception`` asked for explicitly with no weights file and no
    network fails now; ``auto`` without the weights falls back to the classifier-space distance (one notice)."""
    from evaluators.realism import INCEPTION_FILE, inception_weights_path

    if realism not in ("auto", "inception", "attrclf"):
        raise UserError(f"unknown realism backend {realism!r}{closest(realism, ['auto', 'inception', 'attrclf'])}; "
                        "choose auto, inception or attrclf")
    if realism == "attrclf" or os.path.exists(inception_weights_path(weights)):
        return "inception" if realism != "attrclf" else "attrclf"
    if realism == "inception":
        if weights or not _online():
            raise UserError(f"realism: inception needs {INCEPTION_FILE} at {inception_weights_path(weights)} and "
                            "this machine is offline; put the file there, pass --inception-weights, or use "
                            "realism: auto (falls back to the classifier-space distance)")
        return "inception"
    print(f"notice: {INCEPTION_FILE} not found at {inception_weights_path(weights)}: realism is the Fréchet "
          "distance in the attribute classifier's feature space (fd_attrclf-resnet18)", flush=True)
    return "attrclf"


def _online(host: str = "download.pytorch.org", timeout: float = 2.0) -> bool:
    import socket

    if os.environ.get("ATTREDIT_OFFLINE"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


#: every key a preset may have, and the keys its nested sections may have
PRESET_KEYS: dict[str, set[str] | None] = {
    "data": {"name", "init_args"}, "attributes": None, "methods": None, "reference_points": None,
    "method_config": None, "seeds": None, "trainer": None, "grids": {"rows"}, "output": None,
    "evaluators": {"classifier_epochs", "identity_epochs", "identity_renders", "identity_backend",
                   "batch_size", "seed", "realism",
                   "inception_weights", "realism_real_images", "kid_images"},
    "scoring": {"max_images", "batch_size", "strength_sweep", "sweep_attribute", "sweep_max_images", "gan_samples"},
}


def check_preset(preset: object, source: str = "preset") -> None:
    """Unknown keys are an error naming the closest valid key (a typo would otherwise be silently ignored)."""
    if not isinstance(preset, dict):
        raise UserError(f"{source} is not a YAML mapping")
    for key, value in preset.items():
        if key not in PRESET_KEYS:
            raise UserError(f"{source}: unknown key {key!r}{closest(key, PRESET_KEYS)}; valid keys: "
                            f"{', '.join(PRESET_KEYS)}")
        sub = PRESET_KEYS[key]
        if sub is not None and isinstance(value, dict):
            for k in value:
                if k not in sub:
                    raise UserError(f"{source}: unknown key {key}.{k}{closest(k, sub)}; "
                                    f"valid: {', '.join(sorted(sub))}")
    for key in ("data", "attributes", "methods"):
        if key not in preset:
            raise UserError(f"{source}: missing key {key!r}")


def check_new_rows(path: str | os.PathLike, keys: Iterable[dict], overwrite: bool = False) -> None:
    """No row about to be scored is already in ``path`` (refused before the work, not after it)."""
    if overwrite:
        return
    for key in keys:
        if has_row(path, key):
            shown = {k: key.get(k) for k in ROW_KEY if key.get(k) is not None}
            raise UserError(f"{path} already has a row for {shown}; pass --overwrite to replace it or --output "
                            "another file")


__all__ = ["UserError", "check_attributes", "check_checkpoint", "check_data", "check_identity", "check_methods",
           "check_new_rows", "check_per_attribute", "check_preset", "check_realism", "closest", "identity_labels_file"]
