"""Parsers of the CelebA / CelebAMask-HQ text annotation files, with errors that name file and line.

Formats (whitespace-separated; values of attributes are -1 or 1):
    attribute file   line 1: <count>; line 2: the attribute names; then ``<file> <v_1> ... <v_K>``
    two-column file  ``<file> <integer>`` (CelebA's list_eval_partition.txt, identity_CelebA.txt)
    HQ mapping file  header ``idx orig_idx orig_file``; then ``<idx> <orig_idx> <orig_file>``
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.base import DataLayoutError


class AnnotationError(DataLayoutError):
    """An annotation file exists but its content is inconsistent (counts, columns, values)."""


def require_file(path: Path, layout: str) -> Path:
    """``path`` if it is a file, else ``DataLayoutError`` naming it and describing ``layout``."""
    if not path.is_file():
        raise DataLayoutError(f"expected file {path} is missing.\nExpected layout:\n{layout}")
    return path


@dataclass
class AttributeTable:
    """The content of an attribute file: ``values`` int8 (N, K) in {0, 1}, row i for ``files[i]``."""

    names: list[str]
    files: list[str]
    values: np.ndarray


def _lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line for line in f.read().splitlines()]


def read_attribute_file(path: Path) -> AttributeTable:
    """Parse an attribute file; checks the count line against the rows and every row's width and values."""
    lines = _lines(path)
    if len(lines) < 2:
        raise AnnotationError(f"{path}: expected a count line and a header line of attribute names")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise AnnotationError(f"{path}:1: expected the number of images, got {lines[0][:80]!r}") from None
    names = lines[1].split()
    rows = [(n + 3, line.split()) for n, line in enumerate(lines[2:]) if line.strip()]
    if count != len(rows):
        raise AnnotationError(f"{path}: the count line says {count} images but the file has {len(rows)} rows")
    width = len(names) + 1
    for lineno, parts in rows:
        if len(parts) != width:
            raise AnnotationError(f"{path}:{lineno}: expected a file name and {len(names)} values, "
                                  f"got {len(parts)} fields")
    files = [parts[0] for _, parts in rows]
    try:
        raw = np.array([parts[1:] for _, parts in rows], dtype=np.int8).reshape(len(rows), len(names))
        valid = bool(np.isin(raw, (-1, 1)).all())
    except (ValueError, OverflowError):
        valid = False
    if not valid:
        lineno, parts = next(((n, p) for n, p in rows if not set(p[1:]) <= {"-1", "1"}), (0, []))
        raise AnnotationError(f"{path}:{lineno}: attribute values must be -1 or 1, got {parts[1:6]}...")
    if len(set(files)) != len(files):
        raise AnnotationError(f"{path}: duplicate file names")
    return AttributeTable(names=names, files=files, values=(raw > 0).astype(np.int8))


def read_file_int_map(path: Path) -> dict[str, int]:
    """Parse ``<file> <integer>`` rows into a dict (list_eval_partition.txt, identity_CelebA.txt)."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise AnnotationError(f"{path}:{lineno}: expected '<file> <integer>', got {line[:80]!r}")
        try:
            out[parts[0]] = int(parts[1])
        except ValueError:
            raise AnnotationError(f"{path}:{lineno}: expected an integer, got {parts[1]!r}") from None
    return out


def read_hq_mapping(path: Path) -> list[str]:
    """Parse CelebA-HQ-to-CelebA-mapping.txt into the CelebA file name of each HQ index 0..N-1."""
    lines = [line for line in _lines(path) if line.strip()]
    if not lines or lines[0].split()[:3] != ["idx", "orig_idx", "orig_file"]:
        raise AnnotationError(f"{path}:1: expected the header 'idx orig_idx orig_file'")
    orig: list[str] = []
    for lineno, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if len(parts) != 3 or not parts[0].isdigit():
            raise AnnotationError(f"{path}:{lineno}: expected '<idx> <orig_idx> <orig_file>', got {line[:80]!r}")
        if int(parts[0]) != len(orig):
            raise AnnotationError(f"{path}:{lineno}: expected idx {len(orig)}, got {parts[0]} (rows must be in order)")
        orig.append(parts[2])
    return orig


def lookup(table: dict[str, int], keys: list[str], path: Path, what: str) -> np.ndarray:
    """``table[k]`` for every key as int64; an ``AnnotationError`` naming missing keys otherwise."""
    missing = [k for k in keys if k not in table]
    if missing:
        raise AnnotationError(f"{path} has no {what} for {len(missing)} image(s), e.g. {missing[:5]}")
    return np.array([table[k] for k in keys], dtype=np.int64)
