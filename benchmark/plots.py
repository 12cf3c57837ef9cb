"""Plots of a results folder (matplotlib, PNG): a bar chart per headline metric, the accuracy-vs-identity
trade-off scatter, and strength-sweep trade-off curves (success and attr_acc against id_sim, one point per
strength, so methods whose strengths mean different things share axes)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmark.leaderboard import HEADLINE, leaderboard  # noqa: E402
from benchmark.results_io import read_results  # noqa: E402
from datamodules.cache import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_plots(out: Path) -> list[Path]:
    scores = read_results(out / "scores.csv")
    board = leaderboard(scores)
    plots = out / "plots"
    written = []
    realism = board.attrs.get("realism_metric", "realism")
    for metric, higher in HEADLINE.items():
        if metric not in board.columns:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.bar(board["method"], board[metric], color="tab:blue")
        label = realism if metric == "realism" else metric
        ax.set_title(f"{label} ({'higher' if higher else 'lower'} is better)")
        ax.tick_params(axis="x", rotation=30)
        _save(fig, plots / f"bar_{metric}.png")
        written.append(plots / f"bar_{metric}.png")
    fig, ax = plt.subplots(figsize=(5, 4))
    for _, r in board.iterrows():
        ax.scatter(r["id_sim"], r["attr_acc"], s=40)
        ax.annotate(r["method"], (r["id_sim"], r["attr_acc"]), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("identity similarity (cosine)")
    ax.set_ylabel("attribute-manipulation accuracy")
    ax.set_title("edit success vs identity preservation")
    _save(fig, plots / "tradeoff.png")
    written.append(plots / "tradeoff.png")
    sweep = read_results(out / "strength_sweep.csv")
    if len(sweep):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        metrics = [m for m in ("success", "attr_acc") if m in sweep.columns]
        for method, g in sweep.groupby("method"):
            g = g.sort_values("strength")
            for ax, metric in zip(axes, metrics):
                ax.plot(g["id_sim"], g[metric], marker="o", label=method)  # each point one strength
        attr = sweep["attribute"].iloc[0]
        n = int(sweep["n_images"].max()) if "n_images" in sweep else 0
        for ax, metric in zip(axes, metrics):
            ax.set(xlabel="identity similarity (cosine)", ylabel=metric,
                   title=f"{attr}: {metric} vs identity ({n} images per point)")
        axes[-1].legend(fontsize=8)
        _save(fig, plots / "strength_sweep.png")
        written.append(plots / "strength_sweep.png")
    return written
