"""Data sets by name: ``build_datamodule("synthfaces", ...)``. New data sets register here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datamodules.base import FaceDataModule

_DATAMODULES: dict[str, Callable[..., FaceDataModule]] = {}


def register_datamodule(name: str):
    def wrap(cls):
        _DATAMODULES[name] = cls
        return cls

    return wrap


def _discover() -> None:
    import datamodules.synthfaces  # noqa: F401
    try:
        import datamodules.celeba  # noqa: F401
        import datamodules.celebahq  # noqa: F401
    except ImportError:  # the real-data modules land separately
        pass


def list_datamodules() -> list[str]:
    _discover()
    return sorted(_DATAMODULES)


def build_datamodule(name: str, root: str | None = None, **kwargs: Any) -> FaceDataModule:
    """Build a data module by name; ``root`` is the data folder of real data sets (ignored by synthfaces)."""
    _discover()
    if name not in _DATAMODULES:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(sorted(_DATAMODULES))}")
    cls = _DATAMODULES[name]
    if getattr(cls, "real_faces", True):
        if root is None:
            raise ValueError(f"data set {name!r} needs --data-root pointing at its files")
        kwargs["root"] = root
    return cls(**kwargs)
