"""The leaderboard: one row per method, headline metrics averaged over attributes, with ranks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.results_io import write_csv_atomic
from datamodules.cache import atomic_write_bytes

#: headline metric -> True when higher is better
HEADLINE = {
    "attr_acc": True, "attr_preservation": True, "id_sim": True, "id_match": True,
    "realism": False, "kid": False, "cf_l1_in": False, "cf_l1_out": False, "edit_ms": False,
}


def common_attribute_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows of the attributes every method was scored on, and a note naming what was left out (empty when
    nothing was): means over different attribute sets are not comparable."""
    if df.empty or "attribute" not in df.columns:
        return df, ""
    per_method = df.groupby("method")["attribute"].agg(lambda a: frozenset(a))
    common = frozenset.intersection(*per_method)
    if all(attrs == common for attrs in per_method):
        return df, ""
    dropped = {m: sorted(a - common) for m, a in per_method.items() if a - common}
    if not common:
        raise ValueError(f"no attribute was scored for every method ({dict(per_method.map(sorted))}); "
                         "score the same attributes for each method")
    note = (f"Averaged over the attributes every method was scored on ({', '.join(sorted(common))}); left out: "
            + "; ".join(f"{m}: {', '.join(a)}" for m, a in dropped.items()) + ".")
    return df[df["attribute"].isin(common)], note


def leaderboard(scores: pd.DataFrame) -> pd.DataFrame:
    """Average the nominal-strength rows (strength 1) of each method over attributes (and seeds); rank."""
    if scores.empty:
        raise ValueError("no scores yet: run the score stage first")
    df, note = common_attribute_rows(scores[scores["strength"] == 1.0])
    cols = [c for c in HEADLINE if c in df.columns and df[c].notna().any()]
    board = df.groupby("method")[cols].mean()
    board.insert(0, "attributes", df.groupby("method")["attribute"].nunique())
    board.insert(1, "params_m", df.groupby("method")["params_m"].first())
    realism = df["realism_metric"].dropna().unique()
    ranked = [c for c in cols if c != "edit_ms"]
    for c in ranked:
        board[f"rank_{c}"] = board[c].rank(ascending=not HEADLINE[c], method="min")
    board["mean_rank"] = board[[f"rank_{c}" for c in ranked]].mean(axis=1)
    board = board.sort_values(["mean_rank", "attr_acc"], ascending=[True, False]).reset_index()
    board.attrs["realism_metric"] = realism[0] if len(realism) == 1 else "/".join(realism)
    board.attrs["note"] = note
    return board


def to_markdown(board: pd.DataFrame) -> str:
    realism = board.attrs.get("realism_metric", "realism")
    show = ["method", "attr_acc", "attr_preservation", "id_sim", "id_match", "realism", "kid", "cf_l1_in",
            "cf_l1_out", "edit_ms", "params_m", "mean_rank"]
    show = [c for c in show if c in board.columns]
    header = [realism if c == "realism" else c for c in show]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in show) + "|"]
    for _, r in board.iterrows():
        cells = []
        for c in show:
            v = r[c]
            cells.append(str(v) if isinstance(v, str) else ("" if pd.isna(v) else f"{v:.3f}" if c != "edit_ms"
                                                             else f"{v:.2f}"))
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"\nMeans over attributes at strength 1. Higher is better for attr_acc, attr_preservation, id_sim and "
            f"id_match; lower for {realism}, kid, cf_l1_in, cf_l1_out and edit_ms (ms per image). mean_rank "
            f"averages the per-metric ranks (edit_ms excluded).\n")
    if board.attrs.get("note"):
        note += f"\n{board.attrs['note']}\n"
    return "\n".join(lines) + "\n" + note


def write_leaderboard(scores: pd.DataFrame, out: Path) -> str:
    board = leaderboard(scores)
    write_csv_atomic(board, out / "leaderboard.csv")
    md = to_markdown(board)
    atomic_write_bytes(out / "leaderboard.md", md.encode())
    return md
