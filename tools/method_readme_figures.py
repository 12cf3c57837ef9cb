"""Rewrite the "## Demo figures" section of every methods/<name>/README.md from a results folder's scores.csv.

    .venv/bin/python tools/method_readme_figures.py results/synthfaces --commit c0085bb --date 2026-12-03

Each section gets the method's rows (its variants' too, e.g. aif-fader in methods/aif) at strength 1 beside the
oracle and identity rows, and a line saying which run made them. Text after the table that starts with
"Note:" is kept.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

COLUMNS = ["method", "mode", "attribute", "success", "attr_acc", "attr_preservation", "id_sim", "id_match", "realism",
           "cf_l1_in", "cf_l1_out"]
HEADER = "## Demo figures"


def table(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def section(names: list[str], scores: pd.DataFrame, commit: str, date: str) -> str:
    rows = scores[(scores["strength"] == 1.0)]
    order = {n: i for i, n in enumerate([*names, "oracle", "identity"])}
    rows = rows[rows["method"].isin(order)].copy()
    rows["_o"] = rows["method"].map(order)
    rows = rows.sort_values(["_o", "mode", "attribute"])
    return (f"{HEADER} (protocol v2, `make demo` of {date})\n\n"
            f"From a fresh clone with an empty cache (commit {commit}; README, \"The demo leaderboard\"), synthfaces "
            "32 px,\ntest split, strength 1, this method's `configs/demo.yaml` budget; oracle and identity rows for "
            "scale.\n`success` needs the flip seen (the classifier reads the source on the input and the target on "
            "the edit),\nso the no-op scores 0. Figures earlier in this README were measured before this run.\n\n"
            + table(rows) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path)
    p.add_argument("--commit", required=True)
    p.add_argument("--date", required=True)
    args = p.parse_args()
    scores = pd.read_csv(args.results / "scores.csv")
    for readme in sorted(Path("methods").glob("*/README.md")):
        text = readme.read_text()
        if HEADER not in text:
            continue
        name = readme.parent.name
        names = sorted({m for m in scores["method"].unique() if m == name or m.startswith(name + "-")})
        if not names:
            print(f"{readme}: no rows for {name} in {args.results}, left as it is")
            continue
        start = text.index(HEADER)
        nxt = re.search(r"^## ", text[start + len(HEADER):], flags=re.M)
        end = start + len(HEADER) + nxt.start() if nxt else len(text)
        notes = re.findall(r"^Note:.*$", text[start:end], flags=re.M)
        body = section(names, scores, args.commit, args.date) + "".join("\n" + n + "\n" for n in notes)
        readme.write_text(text[:start] + body + ("\n" + text[end:] if end < len(text) else ""))
        print(f"{readme}: {', '.join(names)}")


if __name__ == "__main__":
    main()
