"""Writers of tiny CelebA / CelebAMask-HQ folders in the exact real file formats, for the data module tests.

Images are small random smooth JPEGs; attributes are seeded random -1/1 values; identities are file-derived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.base import CELEBA_ATTRIBUTES


@dataclass
class FixtureInfo:
    """What a writer wrote: ``attrs`` int (N, 40) in {-1, 1}, row i for ``files[i]``; partition/identity per row."""

    root: Path
    files: list[str]
    attrs: np.ndarray
    partition: np.ndarray
    identity: np.ndarray
    orig_files: list[str] = field(default_factory=list)


def smooth_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A random smooth RGB image: a 4x4 colour grid upsampled bicubically."""
    grid = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    return Image.fromarray(grid, "RGB").resize((width, height), Image.Resampling.BICUBIC)


def _attr_lines(files: list[str], attrs: np.ndarray, count: int | None, trailing: bool) -> list[str]:
    header = " ".join(CELEBA_ATTRIBUTES) + (" " if trailing else "")
    rows = [f"{f} " + " ".join(f"{v:2d}" for v in row) for f, row in zip(files, attrs)]
    return [str(len(files) if count is None else count), header, *rows]


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def write_celebahq(root: Path, n: int = 24, size: int = 64, partition: bool = True, identity: bool = True,
                   count: int | None = None, seed: int = 0) -> FixtureInfo:
    """CelebAMask-HQ layout with ``n`` square ``size`` px JPEGs; ``count`` overrides the attribute count line.

    HQ image i maps to CelebA file ``{1000 + 7 i:06d}.jpg``; partition = i % 3 (train/val/test); identity i // 2.
    """
    rng = np.random.default_rng(seed)
    (root / "CelebA-HQ-img").mkdir(parents=True)
    files = [f"{i}.jpg" for i in range(n)]
    for f in files:
        smooth_image(rng, size, size).save(root / "CelebA-HQ-img" / f, quality=95)
    attrs = rng.choice(np.array([-1, 1]), size=(n, len(CELEBA_ATTRIBUTES)))
    _write(root / "CelebAMask-HQ-attribute-anno.txt", _attr_lines(files, attrs, count, trailing=False))
    orig = [f"{1000 + 7 * i:06d}.jpg" for i in range(n)]
    mapping = ["idx         orig_idx    orig_file"]
    mapping += [f"{i:<12d}{999 + 7 * i:<12d}{o}" for i, o in enumerate(orig)]
    _write(root / "CelebA-HQ-to-CelebA-mapping.txt", mapping)
    part = np.arange(n) % 3
    ident = np.arange(n) // 2 + 1
    if partition:  # CelebA's whole partition file: extra rows for files outside HQ, like the real one
        rows = [f"{o} {p}" for o, p in zip(orig, part)] + [f"{900000 + i:06d}.jpg 0" for i in range(3)]
        _write(root / "list_eval_partition.txt", rows)
    if identity:
        _write(root / "identity_CelebA.txt", [f"{o} {k}" for o, k in zip(orig, ident)])
    return FixtureInfo(root, files, attrs, part, ident, orig)


def write_celeba(root: Path, n: int = 18, width: int = 40, height: int = 48, nested: bool = True,
                 identity: bool = True, count: int | None = None, seed: int = 1) -> FixtureInfo:
    """torchvision's CelebA layout (``root/celeba/`` if ``nested``) with ``n`` ``width`` x ``height`` JPEGs.

    Files ``000001.jpg`` ...; partition = first 2/3 train, then val, then test (like CelebA's ordered split);
    identity = i // 3 + 10.
    """
    rng = np.random.default_rng(seed)
    base = root / "celeba" if nested else root
    (base / "img_align_celeba").mkdir(parents=True)
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    for f in files:
        smooth_image(rng, width, height).save(base / "img_align_celeba" / f, quality=95)
    attrs = rng.choice(np.array([-1, 1]), size=(n, len(CELEBA_ATTRIBUTES)))
    _write(base / "list_attr_celeba.txt", _attr_lines(files, attrs, count, trailing=True))
    part = np.zeros(n, dtype=np.int64)
    part[(2 * n) // 3:] = 1
    part[(5 * n) // 6:] = 2
    _write(base / "list_eval_partition.txt", [f"{f} {p}" for f, p in zip(files, part)])
    ident = np.arange(n) // 3 + 10
    if identity:
        _write(base / "identity_CelebA.txt", [f"{f} {k}" for f, k in zip(files, ident)])
    return FixtureInfo(base, files, attrs, part, ident)


def corrupt_file(path: Path, mode: str) -> None:
    """Damage an image: ``truncate`` keeps the first half of the bytes, ``garbage`` overwrites it with noise."""
    data = path.read_bytes()
    if mode == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif mode == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    else:
        raise ValueError(mode)


def paper_config_on_cpu(method: str, root: Path, work: Path, steps: int = 2, batch_size: int | None = 2,
                        model: dict | None = None) -> tuple[dict, Path]:
    """``method``'s paper config, unchanged but for a few optimizer steps on CPU on the CelebAMask-HQ-layout folder
    ``root`` (loader workers 0, no checkpoints, logger or progress bar, caches and runs under ``work``), the batch
    size (``None``: the config's) and the ``model`` init-arg overrides; written to ``work/paper-cpu.yaml``.
    Returns (the config as read, before the changes; the written path)."""
    import copy

    import yaml

    from methods.base import _discover, config_path

    _discover()
    original = yaml.safe_load(config_path(method, "paper").read_text())
    cfg = copy.deepcopy(original)
    data = cfg["data"]["init_args"]
    data.update(root=str(root), cache_dir=str(work / "cache"), num_workers=0)
    if batch_size is not None:
        data["batch_size"] = batch_size
    cfg["model"]["init_args"].update(model or {})
    cfg["trainer"].update(accelerator="cpu", devices=1, max_steps=steps, callbacks=[], logger=False,
                          enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                          default_root_dir=str(work / "runs"))
    cfg["trainer"].pop("strategy", None)
    path = work / "paper-cpu.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return original, path
