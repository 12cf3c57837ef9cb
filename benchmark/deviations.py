"""The ``deviations:`` list of a method config: what differs from the official code, and why.

Each entry is a mapping ``{what, official, ours, why, kind}`` with ``kind`` one of ``DEVIATION_KINDS``:
``budget`` (resolution, widths, steps, learning rate, EMA: the scale of the run), ``objective`` (losses, their
weights, the optimiser), ``architecture`` (networks, how many models) or ``data`` (data set, sampling,
augmentation). The runner counts them into the ``deviations`` column of every score row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEVIATION_KINDS: tuple[str, ...] = ("budget", "objective", "architecture", "data")
DEVIATION_FIELDS: tuple[str, ...] = ("what", "official", "ours", "why", "kind")


def check_deviations(cfg: dict[str, Any], source: str = "config") -> list[dict[str, str]]:
    """The validated ``deviations`` list of a parsed config; raises ValueError if missing or malformed."""
    if "deviations" not in cfg or not isinstance(cfg["deviations"], list):
        raise ValueError(f"{source} has no `deviations:` list (an empty list `[]` if it runs the official setup)")
    for i, d in enumerate(cfg["deviations"]):
        if not isinstance(d, dict) or set(d) != set(DEVIATION_FIELDS):
            raise ValueError(f"{source} deviations[{i}] must have exactly the fields {DEVIATION_FIELDS}, got {d!r}")
        if d["kind"] not in DEVIATION_KINDS:
            raise ValueError(f"{source} deviations[{i}] has unknown kind {d['kind']!r}; kinds: {DEVIATION_KINDS}")
    return cfg["deviations"]


def read_deviations(path: str | Path) -> list[dict[str, str]]:
    """The validated ``deviations`` list of the YAML config at ``path``."""
    return check_deviations(yaml.safe_load(Path(path).read_text()) or {}, str(path))
