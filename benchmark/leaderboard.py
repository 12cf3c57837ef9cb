"""The leaderboard: one row per method, headline metrics averaged over attributes (then over seeds), sorted
by the joint per-image ``success``. Reference points (methods that need no training: the no-op and the
exact-counterfactual oracle) are shown in their own block and never ranked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.results_io import write_csv_atomic
from datamodules.cache import atomic_write_bytes

#: headline metric -> True when higher is better
HEADLINE = {
    "success": True, "attr_acc": True, "attr_preservation": True, "id_sim": True, "id_match": True,
    "realism": False, "kid": False, "cf_l1_in": False, "cf_l1_out": False, "edit_ms": False,
}
#: bootstrap-interval columns averaged beside their metric
INTERVALS = [f"{m}_{e}" for m in ("success", "attr_acc", "id_match", "attr_preservation") for e in ("lo", "hi")]


def is_reference_point(method: str) -> bool:
    """Whether ``method`` is a reference point (its class needs no training), by the method registry."""
    try:
        from methods import get_method

        return not get_method(method.split(":")[0]).needs_training
    except (KeyError, ValueError, ImportError):
        return False


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


def label_modes(df: pd.DataFrame) -> pd.DataFrame:
    """Each editing mode is its own leaderboard row: a method scored in several modes is shown as
    ``method:mode`` (one mode: the plain name)."""
    if "mode" not in df.columns or df.empty:
        return df
    mode = df["mode"].fillna("latent").astype(str)
    several = df.assign(mode=mode).groupby("method")["mode"].transform("nunique") > 1
    return df.assign(method=df["method"].where(~several, df["method"] + ":" + mode))


def not_shown_note(df: pd.DataFrame) -> str:
    """A note naming the headline columns that are NaN in every row (left out of the board) and why, where the
    rows say: no calibrated identity threshold (real data without identity labels), realism_note, no exact
    counterfactuals. Empty when every headline column has a value."""
    empty = [c for c in HEADLINE if c in df.columns and not df[c].notna().any()]
    if not empty:
        return ""
    no_threshold = "id_threshold" in df.columns and not df["id_threshold"].notna().any()
    no_cf = "no exact counterfactuals on this data set"
    why = {"realism": "see realism_note in scores.csv", "kid": "see realism_note in scores.csv",
           "cf_l1_in": no_cf, "cf_l1_out": no_cf}
    if no_threshold:
        why["id_match"] = ("no calibrated identity threshold: id_threshold is NaN, the data set has no identity "
                           "labels (identity.threshold_rule in evaluators.yaml)")
        why["success"] = "needs id_match"
    shown = [f"{c} ({why[c]})" if c in why else c for c in empty]
    return "Not shown, NaN in every row: " + "; ".join(shown) + "."


def leaderboard(scores: pd.DataFrame) -> pd.DataFrame:
    """Nominal-strength rows (strength 1): mean over attributes per (method, seed), then mean (and std, with
    several seeds) over seeds. Methods sorted by success; reference points last (``reference`` True)."""
    if scores.empty:
        raise ValueError("no scores yet: run the score stage first")
    df, note = common_attribute_rows(label_modes(scores[scores["strength"] == 1.0]))
    if "seed" not in df:
        df = df.assign(seed=0)
    cols = [c for c in list(HEADLINE) + INTERVALS if c in df.columns and df[c].notna().any()]
    per_seed = df.groupby(["method", "seed"])[cols].mean()
    board = per_seed.groupby("method").mean()
    n_seeds = df.groupby("method")["seed"].nunique()
    if n_seeds.max() > 1:
        for c in [c for c in HEADLINE if c in cols]:
            board[f"{c}_std"] = per_seed[c].groupby("method").std(ddof=1)
    board.insert(0, "attributes", df.groupby("method")["attribute"].nunique())
    board.insert(1, "seeds", n_seeds)
    board.insert(2, "params_m", df.groupby("method")["params_m"].first())
    if "deviations" in df.columns:  # declared deviations from the official code (NaN for reference points)
        board.insert(3, "deviations", df.groupby("method")["deviations"].first())
    board["reference"] = [is_reference_point(m) for m in board.index]
    sort = "success" if "success" in board else "attr_acc"
    board = board.sort_values(["reference", sort], ascending=[True, False]).reset_index()
    realism = df["realism_metric"].dropna().unique() if "realism_metric" in df else []
    refname = df["realism_reference"].dropna().unique() if "realism_reference" in df else []
    board.attrs["realism_metric"] = "/".join(realism) if len(realism) else "realism"
    board.attrs["realism_reference"] = "/".join(refname)
    board.attrs["tied"] = tied_with_leader(board)
    board.attrs["note"] = " ".join(n for n in (note, not_shown_note(df)) if n)
    board.attrs["sorted_by"] = sort
    return board


def tied_with_leader(board: pd.DataFrame) -> list[str]:
    """Ranked methods whose success interval overlaps the leader's (their order is not established)."""
    ranked = board[~board["reference"]]
    if not len(ranked) or "success_lo" not in board:
        return []
    lead = ranked.iloc[0]
    return [r["method"] for _, r in ranked.iloc[1:].iterrows()
            if r["success_hi"] >= lead["success_lo"] and r["success_lo"] <= lead["success_hi"]]


def _cell(board: pd.DataFrame, r: pd.Series, c: str) -> str:
    v = r[c]
    if isinstance(v, str):
        return v
    if pd.isna(v):
        return ""
    if c == "deviations":
        return f"{int(v)}"
    text = f"{v:.2f}" if c == "edit_ms" else f"{v:.3f}"
    if f"{c}_lo" in board and not pd.isna(r.get(f"{c}_lo")):
        text += f" [{r[f'{c}_lo']:.2f}, {r[f'{c}_hi']:.2f}]"
    if f"{c}_std" in board and not pd.isna(r.get(f"{c}_std")):
        text += f" ± {r[f'{c}_std']:.3f}"
    return text


def to_markdown(board: pd.DataFrame) -> str:
    realism = board.attrs.get("realism_metric", "realism")
    ref = board.attrs.get("realism_reference", "")
    realism_label = f"{realism} vs {ref}" if ref else realism
    tied = set(board.attrs.get("tied", []))
    show = ["method", "deviations", "success", "attr_acc", "attr_preservation", "id_sim", "id_match", "realism", "kid",
            "cf_l1_in", "cf_l1_out", "edit_ms", "params_m"]
    show = [c for c in show if c in board.columns]
    header = [realism_label if c == "realism" else c for c in show]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in show) + "|"]
    for block, title in ((False, None), (True, "reference points (not ranked)")):
        rows = board[board["reference"] == block]
        if not len(rows):
            continue
        if title:
            lines.append("| " + " | ".join([f"*{title}*"] + [""] * (len(show) - 1)) + " |")
        for _, r in rows.iterrows():
            cells = [_cell(board, r, c) for c in show]
            if r["method"] in tied:
                cells[0] = f"≈ {cells[0]}"
            lines.append("| " + " | ".join(cells) + " |")
    sort = board.attrs.get("sorted_by", "success")
    sorted_by = ("success (per image: the flip seen — source read on the input, target read on the edit — AND "
                 "identity matched AND every other attribute kept)"
                 if sort == "success" else f"{sort} (success is NaN in every row)")
    note = (f"\nSorted by {sorted_by}, "
            f"means over attributes at strength 1; [lo, hi] are 95% bootstrap intervals over test identities "
            f"(mean of the per-attribute bounds); ± is the std over seeds when there are several. ≈ marks a "
            f"method whose success interval overlaps the leader's. Higher is better for success, attr_acc, "
            f"attr_preservation, id_sim and id_match; lower for {realism_label}, kid, cf_l1_in, cf_l1_out and "
            f"edit_ms (ms per image). Reference points bound the scale and are never ranked.\n")
    if board.attrs.get("note"):
        note += f"\n{board.attrs['note']}\n"
    return "\n".join(lines) + "\n" + note


def write_leaderboard(scores: pd.DataFrame, out: Path) -> str:
    board = leaderboard(scores)
    write_csv_atomic(board, out / "leaderboard.csv")
    md = to_markdown(board)
    atomic_write_bytes(out / "leaderboard.md", md.encode())
    return md


#: the columns of gan_samples.md, in order
GAN_SAMPLE_TABLE = ["method", "attribute", "n_samples", "success", "attr_acc", "attr_preservation", "id_sim",
                    "id_match", "sample_realism", "realism_domain", "realism_domain_floor", "edit_ms"]


def write_gan_sample_table(rows: pd.DataFrame, out: Path) -> str:
    """``gan_samples.md``: the GAN-sample protocol's rows (one per method and attribute; means over seeds), under
    a header that says they are not comparable with the real-image leaderboard. Returns the Markdown."""
    cols = [c for c in GAN_SAMPLE_TABLE if c in rows.columns]
    table = rows.groupby(["method", "attribute"], sort=True)[[c for c in cols[2:]]].mean().reset_index()
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(str(r[c]) if c in ("method", "attribute") else
                                       (f"{int(r[c])}" if c == "n_samples" else f"{r[c]:.3f}") for c in cols) + " |")
    metric = str(rows["realism_metric"].iloc[0]) if "realism_metric" in rows and len(rows) else "realism"
    md = ("# GAN-sample editing (not comparable with the real-image leaderboard)\n\n"
          "The method edits its own generator's samples along its directions (InterFaceGAN's protocol): no "
          "inversion, and the source value of each sample is the attribute classifier's reading, not a label. "
          "success = target read on the edit AND identity matched (sample vs edit) AND every other attribute read "
          f"as on the sample. sample_realism: {metric} of the unedited samples to all train images (the "
          "generator's own quality); realism_domain: of the edits to the train images of the target value (mean "
          "over add / remove), floor = the unedited samples read as that value. See evaluators/gan_samples.py.\n\n"
          + "\n".join(lines) + "\n")
    atomic_write_bytes(out / "gan_samples.md", md.encode())
    return md
