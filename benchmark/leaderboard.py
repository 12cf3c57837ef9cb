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


def leaderboard(scores: pd.DataFrame) -> pd.DataFrame:
    """Average the nominal-strength rows (strength 1) of each method over attributes (and seeds); rank."""
    if scores.empty:
        raise ValueError("no scores yet: run the score stage first")
    df = scores[scores["strength"] == 1.0]
    cols = [c for c in HEADLINE if c in df.columns and df[c].notna().any()]
    by = ["method", "mode"] if "mode" in df.columns else ["method"]  # each editing mode is its own row
    df = df.assign(mode=df["mode"].fillna("latent")) if "mode" in df.columns else df
    board = df.groupby(by)[cols].mean()
    board.insert(0, "attributes", df.groupby(by)["attribute"].nunique())
    board.insert(1, "params_m", df.groupby(by)["params_m"].first())
    if "deviations" in df.columns:  # passthrough: declared deviations from the official code
        board.insert(2, "deviations", df.groupby(by)["deviations"].first())
    realism = df["realism_metric"].dropna().unique()
    ranked = [c for c in cols if c != "edit_ms"]
    for c in ranked:
        board[f"rank_{c}"] = board[c].rank(ascending=not HEADLINE[c], method="min")
    board["mean_rank"] = board[[f"rank_{c}" for c in ranked]].mean(axis=1)
    board = board.sort_values(["mean_rank", "attr_acc"], ascending=[True, False]).reset_index()
    board.attrs["realism_metric"] = realism[0] if len(realism) == 1 else "/".join(realism)
    return board


def to_markdown(board: pd.DataFrame) -> str:
    realism = board.attrs.get("realism_metric", "realism")
    show = ["method", "mode", "deviations", "attr_acc", "attr_preservation", "id_sim", "id_match", "realism",
            "kid", "cf_l1_in", "cf_l1_out", "edit_ms", "params_m", "mean_rank"]
    show = [c for c in show if c in board.columns]
    header = [realism if c == "realism" else c for c in show]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in show) + "|"]
    for _, r in board.iterrows():
        cells = []
        for c in show:
            v = r[c]
            cells.append(str(v) if isinstance(v, str) else "" if pd.isna(v) else f"{int(v)}" if c == "deviations"
                         else f"{v:.3f}" if c != "edit_ms" else f"{v:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"\nMeans over attributes at strength 1. Higher is better for attr_acc, attr_preservation, id_sim and "
            f"id_match; lower for {realism}, kid, cf_l1_in, cf_l1_out and edit_ms (ms per image). mean_rank "
            f"averages the per-metric ranks (edit_ms excluded).\n")
    return "\n".join(lines) + "\n" + note


def write_leaderboard(scores: pd.DataFrame, out: Path) -> str:
    board = leaderboard(scores)
    write_csv_atomic(board, out / "leaderboard.csv")
    md = to_markdown(board)
    atomic_write_bytes(out / "leaderboard.md", md.encode())
    return md
