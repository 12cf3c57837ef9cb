"""``python -m benchmark edit`` on a user's folder: resized edits written, unreadable files named or skipped."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_contract import tiny_context  # noqa: I001 (tests folder is on sys.path)

from benchmark.edit import main as edit_main
from benchmark.train import make_cli
from methods.base import list_methods


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from benchmark.runner import method_config

    name = next(m for m in ("aif", "l2mgan", "elegant", "aign", "interfacegan") if m in list_methods())
    tmp = tmp_path_factory.mktemp("edit")
    cli = make_cli(["fit", "--config", str(method_config(tiny_context(tmp), name, 0, tmp / "unit"))])
    path = tmp / "m.ckpt"
    cli.trainer.save_checkpoint(path)
    return name, str(path)


def _folder(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    rng = np.random.RandomState(0)
    Image.fromarray(rng.randint(0, 255, (50, 40, 3), dtype=np.uint8)).save(inp / "a.jpg")
    Image.fromarray(rng.randint(0, 255, (64, 64, 3), dtype=np.uint8)).save(inp / "b.png")
    (inp / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return inp


def test_edit_names_unreadable_file_then_skips_it(checkpoint, tmp_path, capsys):
    name, ckpt = checkpoint
    inp, out = _folder(tmp_path), tmp_path / "out"
    with pytest.raises(SystemExit, match="broken.jpg"):
        edit_main(["--method", name, "--ckpt", ckpt, "--attribute", "Smiling", "--input", str(inp),
                   "--output", str(out)])
    ref = ["--reference", str(inp / "b.png")]
    assert edit_main(["--method", name, "--ckpt", ckpt, "--attribute", "Smiling", "--input", str(inp),
                      "--output", str(out), "--skip-unreadable", *ref]) == 0
    assert "skipped 1 unreadable" in capsys.readouterr().out
    written = sorted(p.name for p in out.iterdir())
    assert written == ["a_Smiling1.png", "b_Smiling1.png"]
    assert Image.open(out / "a_Smiling1.png").size == (32, 32)
    with pytest.raises(SystemExit, match="exists"):
        edit_main(["--method", name, "--ckpt", ckpt, "--attribute", "Smiling", "--input", str(inp / "b.png"),
                   "--output", str(out), *ref])


def test_edit_rejects_unknown_attribute(checkpoint, tmp_path):
    name, ckpt = checkpoint
    with pytest.raises(SystemExit, match="trained on"):
        edit_main(["--method", name, "--ckpt", ckpt, "--attribute", "Bald", "--input", str(_folder(tmp_path)),
                   "--output", str(tmp_path / "o")])
