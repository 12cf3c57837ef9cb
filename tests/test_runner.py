"""The runner end to end on a tiny preset: outputs, resumable units, no duplicate rows, clear errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from benchmark.preflight import UserError
from benchmark.runner import main as run_main


def tiny_preset(tmp_path, methods):
    preset = {
        "data": {"name": "synthfaces", "init_args": {"resolution": 32, "num_identities": 30, "images_per_identity": 4,
                                                     "batch_size": 16, "cache_dir": str(tmp_path / "data")}},
        "attributes": ["Smiling", "Eyeglasses", "Young"],
        "methods": methods,
        "reference_points": ["identity", "oracle"],
        "method_config": "demo",
        "seeds": [0],
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 4, "enable_progress_bar": False},
        "evaluators": {"classifier_epochs": 1, "identity_epochs": 1, "identity_renders": 256, "batch_size": 32},
        "scoring": {"batch_size": 16, "strength_sweep": [0.0, 1.0], "sweep_attribute": "Smiling",
                    "sweep_max_images": 8},
        "grids": {"rows": 3},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(preset))
    return str(path)


def test_runner_outputs_and_resume(tmp_path, capsys):
    from methods.base import get_method, list_methods

    trained = [m for m in ("aif", "aign", "elegant", "l2mgan", "interfacegan") if m in list_methods()][:1]
    preset, out = tiny_preset(tmp_path, trained), tmp_path / "results"
    # a first, partial run: only Smiling is scored (as if the run had been killed after it)
    assert run_main(["--preset", preset, "--output", str(out), "--attributes", "Smiling",
                     "--stage", "train", "score"]) == 0
    first = pd.read_csv(out / "scores.csv")
    assert set(first["attribute"]) == {"Smiling"}
    capsys.readouterr()
    # the full run skips what is done, adds the rest, writes every output
    assert run_main(["--preset", preset, "--output", str(out)]) == 0
    log = capsys.readouterr().out
    assert "score identity Smiling latent s=1 seed=0" in log and "done already, skipped" in log
    for m in trained:
        assert f"train {m} seed=0" in log
    scores = pd.read_csv(out / "scores.csv")
    key = ["method", "attribute", "strength", "mode", "seed"]
    assert not scores.duplicated(key).any()
    assert len(scores) == 3 * (sum(len(get_method(m).edit_modes) for m in trained) + 2)
    assert set(scores["mode"]) <= {"latent", "reference"}
    declared = scores.set_index("method")["deviations"]
    assert all(declared[m].min() >= 1 for m in trained)  # counted from the config's deviations: list
    assert set(scores["method"]) == {*trained, "identity", "oracle"}
    for name in ("preview.png", "leaderboard.csv", "leaderboard.md", "evaluators.yaml", "plots/bar_attr_acc.png",
                 "plots/tradeoff.png", "plots/strength_sweep.png", "grids/Smiling.png"):
        assert (out / name).exists(), name
    board = pd.read_csv(out / "leaderboard.csv")
    assert set(board["method"]) == set(scores["method"])
    # a third run redoes nothing
    assert run_main(["--preset", preset, "--output", str(out), "--stage", "train", "score"]) == 0
    log = capsys.readouterr().out
    assert "training" not in log and "attr_acc=" not in log
    assert len(pd.read_csv(out / "scores.csv")) == len(scores)
    # rows scored from other checkpoints (a fresh clone holds the committed results but retrains other weights)
    # are moved to archive/ and rescored: neither skipped as finished nor silently overwritten
    prov = json.loads((out / "provenance.json").read_text())
    assert {v["checkpoint"] for k, v in prov.items() if "|identity|" in k} == {"reference"}
    assert all(v["judges"].count("|") == 2 for v in prov.values())  # classifier|identity encoder|realism ref
    prov = {k: (v if v["checkpoint"] == "reference" else {**v, "checkpoint": v["checkpoint"][:-4] + "beef"})
            for k, v in prov.items()}
    (out / "provenance.json").write_text(json.dumps(prov))
    assert run_main(["--preset", preset, "--output", str(out), "--stage", "train", "score"]) == 0
    log = capsys.readouterr().out
    archived = list((out / "archive").glob("*/scores.csv"))
    assert len(archived) == 1 and "moved to" in log
    old = pd.read_csv(archived[0])
    assert set(old["method"]) == set(trained) and len(old) == 3 * len(trained)
    again = pd.read_csv(out / "scores.csv")
    assert len(again) == len(scores) and not again.duplicated(key).any()
    assert "score identity Smiling latent s=1 seed=0" in log and "done already, skipped" in log  # reference rows kept
    for m in trained:
        assert f"score {m} Smiling {get_method(m).edit_modes[0]} s=1 seed=0" in log


def test_runner_rejects_unknown_method_and_preset(tmp_path):
    with pytest.raises(UserError, match="registered methods"):
        run_main(["--preset", tiny_preset(tmp_path, ["nosuchmethod"]), "--output", str(tmp_path / "o")])
    with pytest.raises(UserError, match="known presets"):
        run_main(["--preset", "nosuchpreset"])


def test_paper_dry_run_states_what_it_runs(tmp_path, capsys):
    """--dry-run prints each method's effective setup and its differences from paper.yaml, and trains nothing."""
    out = tmp_path / "results"
    assert run_main(["--preset", "paper", "--stage", "train", "--dry-run", "--output", str(out)]) == 0
    log = capsys.readouterr().out
    assert "| aif | 256 |" in log and "data.init_args.resolution: 64 -> 256" in log
    assert not out.exists()
