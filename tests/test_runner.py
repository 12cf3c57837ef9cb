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
    """--dry-run prints, for every method of the paper preset (every unit of a per-attribute one), the effective
    resolution, attributes and steps and its differences from its paper.yaml, and trains nothing."""
    from benchmark.runner import _config_path, load_preset

    preset, out = load_preset("paper"), tmp_path / "results"
    assert run_main(["--preset", "paper", "--stage", "train", "--dry-run", "--output", str(out)]) == 0
    log = capsys.readouterr().out
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.split("|")[1:-1]] for line in log.splitlines()
                                               if line.startswith("| ") and not line.startswith("| unit |"))}
    expected = []
    for method in preset["methods"]:
        paper = yaml.safe_load(_config_path(method, "paper").read_text())
        attributes = preset["attributes"] if paper.get("per_attribute") else [None]
        for a in attributes:
            unit = f"{method}@{a}" if a else method
            resolution, shown, steps, differences = rows[unit]
            assert resolution == "256" and steps == str(paper["trainer"]["max_steps"]) and differences != ""
            assert shown == (a or ", ".join(preset["attributes"]))
            expected.append(unit)
    assert sorted(rows) == sorted(expected)
    assert "aif@Smiling" in rows and "data.init_args.resolution: 64 -> 256" in rows["aif@Smiling"][3]
    assert "data.init_args.attributes: ['Smiling'] -> ['Young']" in rows["aif@Young"][3]
    assert not out.exists()


# -- per-attribute training units ---------------------------------------------------------------------------
def per_attribute_config(tmp_path, monkeypatch, method: str):
    """``method``'s demo config with ``per_attribute: true``, found by the runner in place of its own."""
    from benchmark import runner

    real = runner._config_path
    path = tmp_path / f"{method}-per-attribute.yaml"
    cfg = yaml.safe_load(real(method, "demo").read_text())
    path.write_text(yaml.safe_dump({**cfg, "per_attribute": True}, sort_keys=False))
    monkeypatch.setattr(runner, "_config_path",
                        lambda m, preset: path if (m, preset) == (method, "demo") else real(m, preset))
    return path


def fast_units(monkeypatch) -> list[tuple[str, list[str], str, float]]:
    """Training units run in this process (no interpreter start per unit) and scoring by a stand-in for the
    judges; returns the list every score call appends (method, the model's attribute_names, attribute, strength)."""
    import math
    import subprocess

    import evaluators.suite as suite
    from benchmark.train import make_cli

    real_run = subprocess.run

    def run(cmd, *args, **kwargs):
        if cmd[1:4] != ["-m", "benchmark", "train"]:
            return real_run(cmd, *args, **kwargs)
        make_cli(cmd[4:])
        return subprocess.CompletedProcess(cmd, 0)

    calls = []

    def score(m, dm, attribute, bundle, strength=1.0, max_images=None, batch_size=64, seed=0, trainer_kwargs=None,
              per_image_path=None, mode=None):
        calls.append((m.method_name, list(m.attribute_names), attribute, float(strength)))
        row = {c: math.nan for c in suite.SCORE_COLUMNS}
        row.update(method=m.method_name, dataset=dm.name, resolution=dm.resolution, attribute=attribute,
                   strength=float(strength), mode=m.check_mode(mode), seed=seed, success=0.0, attr_acc=0.0,
                   id_match=0.0, **judges(None))
        return row

    def judges(bundle):
        return {"classifier_hash": "c", "id_encoder_hash": "i", "realism_ref_hash": "r"}

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(suite, "score", score)
    monkeypatch.setattr(suite, "judge_hashes", judges)
    monkeypatch.setattr(suite, "build_evaluators", lambda dm, cfg: None)
    monkeypatch.setattr(suite, "describe", lambda bundle: {})
    return calls


def test_per_attribute_config_trains_and_scores_one_model_per_attribute(tmp_path, monkeypatch, capsys):
    """``per_attribute: true``: one training unit per scored attribute, each on that attribute alone, and each
    attribute (its strength sweep and grid too) scored with its own model; a re-run trains nothing."""
    import torch

    per_attribute_config(tmp_path, monkeypatch, "aif")
    calls = fast_units(monkeypatch)
    preset, out = tiny_preset(tmp_path, ["aif"]), tmp_path / "results"
    args = ["--preset", preset, "--output", str(out), "--attributes", "Smiling", "Young"]  # Eyeglasses not scored
    assert run_main([*args, "--stage", "train"]) == 0
    log = capsys.readouterr().out
    assert "train aif@Smiling seed=0" in log and "train aif@Young seed=0" in log and "aif@Eyeglasses" not in log
    units = sorted(p.name for p in (out / "_work").iterdir())
    assert [u.split("-seed0-")[0] for u in units] == ["aif@Smiling", "aif@Young"]
    for unit in units:
        attribute = unit.split("@")[1].split("-")[0]
        cfg = yaml.safe_load((out / "_work" / unit / "config.yaml").read_text())
        assert cfg["data"]["init_args"]["attributes"] == [attribute] and cfg["per_attribute"] is True
        ckpt = torch.load(out / "_work" / unit / "final.ckpt", map_location="cpu", weights_only=True)
        assert ckpt["hyper_parameters"]["attribute_names"] == [attribute]
    assert "| aif@Smiling | 32 | Smiling |" in (out / "preset_vs_paper.md").read_text()

    assert run_main([*args, "--stage", "train", "score", "grids"]) == 0
    log = capsys.readouterr().out
    assert "training" not in log and log.count("done already, skipped") == 2  # resumed, nothing retrained
    aif = [c for c in calls if c[0] == "aif"]
    assert {(a, s) for _, _, a, s in aif} == {("Smiling", 1.0), ("Young", 1.0), ("Smiling", 0.0)}
    assert all(trained == [attribute] for _, trained, attribute, _ in aif)  # its own model, sweep included
    assert all(trained == ["Smiling", "Eyeglasses", "Young"] for m, trained, _, _ in calls if m != "aif")
    prov = json.loads((out / "provenance.json").read_text())
    ids = {k.split("|")[4]: v["checkpoint"] for k, v in prov.items() if k.split("|")[1] == "aif"}  # file|method|..|attr
    assert ids["Smiling"].startswith("aif@Smiling-seed0-") and ids["Young"].startswith("aif@Young-seed0-")
    assert {v["checkpoint"] for k, v in prov.items() if "strength_sweep" in k and "|aif|" in k} == {ids["Smiling"]}
    assert (out / "grids" / "Smiling.png").exists() and (out / "grids" / "Young.png").exists()
    # a third run keeps every row (each was scored from the checkpoint of its own attribute)
    assert run_main([*args, "--stage", "train", "score"]) == 0
    assert "moved to" not in capsys.readouterr().out and not (out / "archive").exists()
    assert len(pd.read_csv(out / "scores.csv")) == 2 * 3  # aif, identity, oracle x Smiling, Young


def test_default_trains_one_unit_for_every_attribute(tmp_path, capsys):
    """Without ``per_attribute`` a method trains one unit on every attribute of the preset (dry run)."""
    out = tmp_path / "results"
    assert run_main(["--preset", tiny_preset(tmp_path, ["aif", "l2mgan"]), "--output", str(out), "--dry-run"]) == 0
    log = capsys.readouterr().out
    for m in ("aif", "l2mgan"):
        assert f"| {m} | 32 | Smiling, Eyeglasses, Young | 4 |" in log
    assert "@" not in log and not out.exists()


def test_per_attribute_units_in_the_dry_run(tmp_path, monkeypatch, capsys):
    per_attribute_config(tmp_path, monkeypatch, "aif")
    assert run_main(["--preset", tiny_preset(tmp_path, ["aif"]), "--output", str(tmp_path / "o"), "--dry-run"]) == 0
    log = capsys.readouterr().out
    for a in ("Smiling", "Eyeglasses", "Young"):
        assert f"| aif@{a} | 32 | {a} | 4 |" in log


def test_per_attribute_key_is_checked(tmp_path, monkeypatch, capsys):
    """A malformed per_attribute stops before any training; a hand-run per-attribute config names one attribute."""
    from benchmark.__main__ import main as bench_main

    path = per_attribute_config(tmp_path, monkeypatch, "aif")
    assert bench_main(["train", "--config", str(path)]) == 2  # demo config: three attributes
    assert "error: the config says per_attribute: true but data.init_args.attributes is" in capsys.readouterr().err
    path.write_text(path.read_text().replace("per_attribute: true", "per_attribute: sometimes"))
    with pytest.raises(UserError, match="per_attribute must be true or false"):
        run_main(["--preset", tiny_preset(tmp_path, ["aif"]), "--output", str(tmp_path / "o"), "--stage", "train"])


def test_gan_sample_units_write_their_own_table_and_resume(tmp_path, capsys):
    preset_path = tiny_preset(tmp_path, ["interfacegan"])
    preset = yaml.safe_load(open(preset_path))
    preset["attributes"] = ["Smiling", "Young"]
    preset["reference_points"] = ["identity"]
    preset["scoring"].update(gan_samples=60, max_images=8, strength_sweep=[])
    open(preset_path, "w").write(yaml.safe_dump(preset))
    out = tmp_path / "results"
    assert run_main(["--preset", preset_path, "--output", str(out), "--stage", "train", "score", "leaderboard"]) == 0
    log = capsys.readouterr().out
    gan = pd.read_csv(out / "gan_samples.csv")
    assert list(gan["attribute"]) == ["Smiling", "Young"] and set(gan["mode"]) == {"gan-sample"}
    assert (gan["n_samples"] == 60).all() and set(gan["method"]) == {"interfacegan"}
    assert "gan-samples interfacegan Smiling seed=0" in log
    assert "not comparable" in (out / "gan_samples.md").read_text()
    assert "gan-sample" not in set(pd.read_csv(out / "scores.csv")["mode"])  # never mixed with real-image rows
    assert run_main(["--preset", preset_path, "--output", str(out), "--stage", "score"]) == 0
    assert "done already, skipped" in capsys.readouterr().out
    assert len(pd.read_csv(out / "gan_samples.csv")) == 2
