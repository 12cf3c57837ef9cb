"""Result files: appended under a lock, written atomically, never silently overwritten."""

from __future__ import annotations

import fcntl
import io
import math
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from datamodules.cache import atomic_write_bytes

#: a row is identified by these columns: a second row with the same key is a duplicate
ROW_KEY = ("method", "dataset", "resolution", "attribute", "strength", "mode", "seed")


class DuplicateResultError(ValueError):
    """A result row with the same key is already in the file."""


@contextmanager
def locked(path: Path):
    """An exclusive advisory lock beside ``path`` (concurrent writers wait their turn)."""
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_results(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    return pd.read_csv(path) if path.exists() and path.stat().st_size > 0 else pd.DataFrame()


def _key(row: dict, key: Sequence[str]) -> tuple:
    out = []
    for k in key:
        v = row.get(k)
        if isinstance(v, float) and not math.isnan(v):
            v = round(v, 6)
        out.append(str(v))
    return tuple(out)


def write_csv_atomic(df: pd.DataFrame, path: str | Path) -> None:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    atomic_write_bytes(path, buf.getvalue().encode())


def append_rows(path: str | Path, rows: Iterable[dict], columns: Sequence[str], key: Sequence[str] = ROW_KEY,
                overwrite: bool = False) -> pd.DataFrame:
    """Append ``rows`` to the CSV at ``path``. A row whose key is already there raises
    ``DuplicateResultError`` unless ``overwrite`` (then the old row is replaced). Returns the new table."""
    path = Path(path)
    rows = [dict(r) for r in rows]
    with locked(path):
        old = read_results(path)
        existing = {_key(r, key): i for i, r in enumerate(old.to_dict("records"))} if len(old) else {}
        drop = []
        for r in rows:
            k = _key(r, key)
            if k in existing:
                if not overwrite:
                    raise DuplicateResultError(
                        f"{path} already has a row for {dict(zip(key, k))}; pass --overwrite to replace it")
                drop.append(existing[k])
        kept = old.drop(index=drop) if drop else old
        new = pd.DataFrame(rows)
        cols = list(columns) + [c for c in list(kept.columns) + list(new.columns) if c not in columns]
        cols = list(dict.fromkeys(cols))
        table = pd.concat([kept, new], ignore_index=True) if len(kept) else new
        table = table.reindex(columns=cols)
        write_csv_atomic(table, path)
        return table


def has_row(path: str | Path, row_key: dict, key: Sequence[str] = ROW_KEY) -> bool:
    df = read_results(path)
    if not len(df):
        return False
    target = _key(row_key, key)
    return any(_key(r, key) == target for r in df.to_dict("records"))
