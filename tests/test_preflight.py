"""Each class of user mistake: exit status 2, one ``error:`` line, no network trained (the cache stays empty)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest
from fixtures_real import write_celebahq

from benchmark.__main__ import main
from benchmark.leaderboard import common_attribute_rows
from benchmark.preflight import UserError, check_preset
from datamodules.cache import atomic_write_bytes


@pytest.fixture()
def hq(tmp_path: Path) -> Path:
    write_celebahq(tmp_path / "hq", n=12, identity=False)
    return tmp_path / "hq"


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("ATTREDIT_CACHE", str(root))
    return root


def one_error(capsys: pytest.CaptureFixture, argv: list[str], *words: str) -> None:
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    for w in words:
        assert w in err[0], err[0]


def no_network_trained(cache: Path) -> None:
    assert not (cache / "evaluators").exists() or not any((cache / "evaluators").iterdir())


def test_unknown_method(capsys, cache):
    one_error(capsys, ["score", "--method", "identityy", "--attribute", "Smiling"], "did you mean 'identity'")
    no_network_trained(cache)


def test_unknown_attribute_from_header(capsys, cache, hq):
    one_error(capsys, ["score", "--method", "identity", "--data", "celebahq", "--data-root", str(hq),
                       "--attributes", "Smiling", "Male", "--attribute", "Smilling"], "did you mean 'Smiling'")
    no_network_trained(cache)


def test_missing_root(capsys, cache, tmp_path):
    one_error(capsys, ["score", "--method", "identity", "--data", "celebahq", "--data-root", str(tmp_path / "x"),
                       "--attribute", "Male"], "does not exist")
    one_error(capsys, ["run", "--preset", "smoke", "--data", "celebahq", "--output", str(tmp_path / "o")],
              "--data-root")
    no_network_trained(cache)


def test_not_a_checkpoint(capsys, cache, tmp_path):
    bogus = tmp_path / "x.ckpt"
    bogus.write_text("not a checkpoint")
    one_error(capsys, ["score", "--method", "l2mgan", "--ckpt", str(bogus), "--attribute", "Smiling"],
              "not a PyTorch checkpoint")
    one_error(capsys, ["score", "--method", "l2mgan", "--attribute", "Smiling"], "needs training")
    no_network_trained(cache)


def test_duplicate_row_refused_before_work(capsys, cache, hq, tmp_path):
    out = tmp_path / "scores.csv"
    pd.DataFrame([{"method": "identity", "dataset": "celebahq", "resolution": 64, "attribute": "Male",
                   "strength": 1.0, "mode": "latent", "seed": 0}]).to_csv(out, index=False)
    one_error(capsys, ["score", "--method", "identity", "--data", "celebahq", "--data-root", str(hq),
                       "--resolution", "64", "--attributes", "Smiling", "Male", "--attribute", "Male",
                       "--output", str(out)], "already has a row")
    no_network_trained(cache)


def test_preset_typos(capsys, cache, tmp_path):
    with pytest.raises(UserError, match="did you mean 'seeds'"):
        check_preset({"data": {}, "attributes": [], "methods": [], "seed": [0]})
    with pytest.raises(UserError, match="did you mean 'max_images'"):
        check_preset({"data": {}, "attributes": [], "methods": [], "scoring": {"max_image": 3}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {name: synthfaces}\nattributes: [Smiling]\nmethods: [aign]\nseed: [0]\n")
    one_error(capsys, ["run", "--preset", str(bad), "--output", str(tmp_path / "o")], "did you mean 'seeds'")
    one_error(capsys, ["run", "--preset", "smok"], "did you mean 'smoke'")
    no_network_trained(cache)


def test_debug_shows_the_traceback(cache):
    with pytest.raises(UserError):
        main(["score", "--method", "identityy", "--attribute", "Smiling", "--debug"])


def test_results_files_respect_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.csv", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.csv").stat().st_mode) == 0o644


def test_common_attribute_rows():
    df = pd.DataFrame({"method": ["a", "a", "a", "b"], "attribute": ["Smiling", "Male", "Young", "Smiling"]})
    kept, note = common_attribute_rows(df)
    assert set(kept["attribute"]) == {"Smiling"} and "a: Male, Young" in note
    same, none = common_attribute_rows(df[df["attribute"] == "Smiling"])
    assert len(same) == 2 and none == ""


def test_preset_by_path(capsys, cache, tmp_path):
    """A preset is a name in benchmark/presets or a path to a YAML file; a missing file is one error line."""
    from benchmark.runner import load_preset

    path = tmp_path / "mine.yaml"
    path.write_text("data: {name: synthfaces}\nattributes: [Smiling]\nmethods: [aign]\nseeds: [0]\n")
    assert load_preset(str(path))["methods"] == ["aign"]
    assert load_preset("smoke")["method_config"] == "demo"
    one_error(capsys, ["run", "--preset", str(tmp_path / "nosuch.yaml")], "preset file", "does not exist")
    one_error(capsys, ["run", "--preset", str(tmp_path / "folder" / "nosuch")], "does not exist")
    no_network_trained(cache)


def test_identity_judge_checked_before_training(capsys, cache, hq, monkeypatch):
    """Without dlib the identity judge is trained, which needs identity labels: refused up front; with them, a
    notice says which judge runs. dlib asked for without the extra is refused too."""
    from benchmark.preflight import check_identity

    monkeypatch.setattr("evaluators.identity_dlib.dlib_available", lambda: False)
    with pytest.raises(UserError, match="no identity_CelebA.txt and dlib is not installed"):
        check_identity("celebahq", hq, "auto")
    with pytest.raises(UserError, match="no identity_CelebA.txt and identity_backend is trained"):
        check_identity("celebahq", hq, "trained")
    with pytest.raises(UserError, match=r"dlib needs the optional extra.*pip install -e '\.\[dlib\]'"):
        check_identity("synthfaces", None, "dlib")
    with pytest.raises(UserError, match="did you mean 'dlib'"):
        check_identity("celebahq", hq, "dlb")
    assert check_identity("synthfaces", None, "auto") == "trained"
    capsys.readouterr()
    (hq / "identity_CelebA.txt").write_text("001000.jpg 1\n")
    assert check_identity("celebahq", hq, "auto") == "trained"
    assert "notice: the dlib identity backend is not installed" in capsys.readouterr().out
    monkeypatch.setattr("evaluators.identity_dlib.dlib_available", lambda: True)
    (hq / "identity_CelebA.txt").unlink()
    assert check_identity("celebahq", hq, "auto") == "dlib"  # dlib needs no labels (id_match is then NaN)
    one_error(capsys, ["score", "--method", "identity", "--data", "celebahq", "--data-root", str(hq),
                       "--attribute", "Smiling", "--identity-backend", "trained"], "no identity_CelebA.txt")
    no_network_trained(cache)
