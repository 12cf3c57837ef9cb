"""Parsers of the CelebA / CelebAMask-HQ text annotation files, with errors that name the file and the row.

Formats (whitespace-separated; values of attributes are -1 or 1):
    attribute file   line 1: <count>; line 2: the attribute names; then ``<file> <v_1> ... <v_K>``
    two-column file  ``<file> <integer>`` (CelebA's list_eval_partition.txt, identity_CelebA.txt)
    HQ mapping file  header ``idx orig_idx orig_file``; then ``<idx> <orig_idx> <orig_file>``
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

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
    """Parse an attribute file; checks the count line against the rows and every row's width and values.

    The rows are parsed by pandas' C reader (CelebA's 202,599 x 40 table in about a second).
    """
    with open(path, encoding="utf-8") as f:
        first, second = f.readline(), f.readline()
    try:
        count = int(first.strip())
    except ValueError:
        raise AnnotationError(f"{path}:1: expected the number of images, got {first.strip()[:80]!r}") from None
    names = second.split()
    if not names:
        raise AnnotationError(f"{path}:2: expected the attribute names")
    try:
        table = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, dtype={0: str}, engine="c")
    except pd.errors.EmptyDataError:
        table = pd.DataFrame(columns=range(len(names) + 1))
    except pd.errors.ParserError as err:
        raise AnnotationError(f"{path}: rows of unequal width after the 2 header lines ({err})") from None
    if count != len(table):
        raise AnnotationError(f"{path}: the count line says {count} images but the file has {len(table)} rows")
    if table.shape[1] != len(names) + 1:
        raise AnnotationError(f"{path}: rows hold {table.shape[1] - 1} values but line 2 names {len(names)} "
                              "attributes")
    files = [str(f) for f in table[0]]
    values = table.iloc[:, 1:].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.nonzero(~np.isin(values, (-1, 1)).all(axis=1))[0]
    if bad.size:
        row = int(bad[0])
        raise AnnotationError(f"{path}: attribute values must be -1 or 1; row {row + 1} ({files[row]}) has "
                              f"{table.iloc[row, 1:].tolist()[:8]}...")
    if len(set(files)) != len(files):
        raise AnnotationError(f"{path}: duplicate file names")
    return AttributeTable(names=names, files=files, values=(values > 0).astype(np.int8))


def read_file_int_map(path: Path) -> pd.Series:
    """Parse ``<file> <integer>`` rows (list_eval_partition.txt, identity_CelebA.txt): a Series file -> int."""
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype={0: str}, engine="c")
    except pd.errors.EmptyDataError:
        return pd.Series([], dtype=np.int64)
    except pd.errors.ParserError as err:
        raise AnnotationError(f"{path}: expected '<file> <integer>' rows ({err})") from None
    if table.shape[1] != 2:
        raise AnnotationError(f"{path}: expected '<file> <integer>' rows, got {table.shape[1]} columns")
    numbers = pd.to_numeric(table[1], errors="coerce")
    bad = np.nonzero(numbers.isna().to_numpy() | (numbers.to_numpy() % 1 != 0))[0]
    if bad.size:
        raise AnnotationError(f"{path}: row {bad[0] + 1} ({table.iloc[bad[0], 0]}): expected an integer, "
                              f"got {table.iloc[bad[0], 1]!r}")
    series = pd.Series(numbers.to_numpy(dtype=np.int64), index=table[0].astype(str).to_numpy())
    if not series.index.is_unique:
        raise AnnotationError(f"{path}: duplicate file names, e.g. {series.index[series.index.duplicated()][0]}")
    return series


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


def lookup(table: pd.Series, keys: list[str], path: Path, what: str) -> np.ndarray:
    """``table[k]`` for every key as int64; an ``AnnotationError`` naming missing keys otherwise."""
    found = table.reindex(keys)
    missing = [keys[i] for i in np.nonzero(found.isna().to_numpy())[0][:5]]
    if missing:
        raise AnnotationError(f"{path} has no {what} for {int(found.isna().sum())} image(s), e.g. {missing}")
    return found.to_numpy(dtype=np.int64)
