"""docs/adding-a-method.md's example method and config pass the contract checks (so the docs keep working)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml

import benchmark.runner as runner
import methods.base as registry
from benchmark.train import make_cli
from methods.base import load_method

DOC = Path(__file__).resolve().parent.parent / "docs" / "adding-a-method.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_documented_example_passes_the_contract(tmp_path, monkeypatch: pytest.MonkeyPatch):
    from test_contract import _batch, _check_edit, tiny_context

    module = types.ModuleType("methods.mymethod")
    monkeypatch.setitem(sys.modules, "methods.mymethod", module)
    try:
        exec(compile(blocks("python")[0], str(DOC), "exec"), module.__dict__)
        configs = tmp_path / "methods" / "mymethod" / "configs"
        configs.mkdir(parents=True)
        cfg = yaml.safe_load(blocks("yaml")[0])
        (configs / "demo.yaml").write_text(yaml.safe_dump(cfg))
        monkeypatch.setattr(runner, "METHODS_DIR", tmp_path / "methods")
        ctx = tiny_context(tmp_path)
        config = runner.method_config(ctx, "mymethod", seed=0, unit_dir=tmp_path / "unit")
        cli = make_cli(["fit", "--config", str(config)])
        m = cli.model.eval()
        assert m.to(torch.float32) is m  # .to() works: the example does not override nn.Module._apply
        x, src, tgt, ref = _batch(cli.datamodule)
        with torch.no_grad():
            first = _check_edit(m, x, src, tgt, ref, m.edit_modes[0])
        ckpt = tmp_path / "m.ckpt"
        cli.trainer.save_checkpoint(ckpt)
        with torch.no_grad():
            assert torch.equal(_check_edit(load_method(str(ckpt)).eval(), x, src, tgt, ref, m.edit_modes[0]), first)
    finally:
        registry._REGISTRY.pop("mymethod", None)
