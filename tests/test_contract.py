"""Every registered method honours the editing contract — a new method is tested the moment it registers.

Trained methods: a few steps of their demo config (through the runner's config builder and LightningCLI) on a
tiny synthetic set, then ``edit`` in every declared editing mode keeps shape, dtype and range, and a checkpoint
round trip (``weights_only=True``) gives identical edits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.runner import RunContext, method_config
from benchmark.train import make_cli
from methods.base import EDIT_MODES, get_method, list_methods, load_method

ATTRS = ["Smiling", "Eyeglasses", "Young"]


def tiny_context(tmp_path: Path) -> RunContext:
    preset = {"method_config": "demo", "attributes": ATTRS,
              "data": {"name": "synthfaces", "init_args": {
                  "resolution": 32, "num_identities": 12, "images_per_identity": 4, "batch_size": 8,
                  "cache_dir": str(tmp_path / "data")}},
              "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 4, "enable_progress_bar": False}}
    return RunContext(preset, "synthfaces", None, tmp_path / "out", attributes=ATTRS)


def _batch(dm, n=4):
    ds = dm.dataset("test")
    x = torch.stack([ds[i]["image"] for i in range(n)])
    src = ds.attrs[:n]
    tgt = src.clone()
    tgt[:, 0] = 1 - tgt[:, 0]
    ref_pool = [i for i in range(len(ds)) if ds.attrs[i, 0] == 1]  # any exemplar will do for the contract
    ref = torch.stack([ds[ref_pool[i % len(ref_pool)]]["image"] for i in range(n)]) if ref_pool else x.flip(0)
    return x, src, tgt, ref


def _check_edit(m, x, src, tgt, ref, mode):
    """One edit in ``mode``: exemplars are passed only in reference mode, as the harness does."""
    out = m.edit(x, src, tgt, 1.0, ref if mode == "reference" else None)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.isfinite(out).all() and out.min() >= -1 and out.max() <= 1
    return out


def _method_modes() -> list[tuple[str, str]]:
    return [(name, mode) for name in list_methods() for mode in get_method(name).edit_modes]


def test_edit_modes_declared():
    for name in list_methods():
        cls = get_method(name)
        assert cls.edit_modes and set(cls.edit_modes) <= set(EDIT_MODES), name
        assert cls.reference_guided == ("reference" in cls.edit_modes), name
        assert cls.needs_reference == (cls.edit_modes == ("reference",)), name
        assert cls.check_mode(None) == cls.edit_modes[0]
    assert get_method("l2mgan").edit_modes == ("latent", "reference")
    assert get_method("elegant").edit_modes == ("reference",)


@pytest.mark.parametrize(("name", "mode"), _method_modes())
def test_method_contract(name, mode, tmp_path):
    cls = get_method(name)
    assert cls.method_name == name
    assert set(cls.capabilities()) >= {"supports_strength", "needs_reference", "needs_training"}
    ctx = tiny_context(tmp_path)
    if not cls.needs_training:
        from benchmark.runner import build_data

        dm = build_data(ctx)
        m = cls(attribute_names=dm.attribute_names, image_size=dm.resolution)
        m.bind_datamodule(dm)
        with torch.no_grad():
            _check_edit(m, *_batch(dm), mode)
        return
    config = method_config(ctx, name, seed=0, unit_dir=tmp_path / "unit")
    cli = make_cli(["fit", "--config", str(config)])
    m, dm = cli.model.eval(), cli.datamodule
    assert m.attribute_names == ATTRS and m.image_size == 32
    x, src, tgt, ref = _batch(dm)
    with torch.no_grad():
        first = _check_edit(m, x, src, tgt, ref, mode)
        again = _check_edit(m, x, src, tgt, ref, mode)
    assert torch.equal(first, again), "edit must be deterministic in eval mode"
    ckpt = tmp_path / "m.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    loaded = load_method(str(ckpt)).eval()
    with torch.no_grad():
        assert torch.equal(_check_edit(loaded, x, src, tgt, ref, mode), first)


@pytest.mark.parametrize("name", list_methods())
def test_configs_declare_deviations(name):
    """Every demo and paper config of a trained method carries a valid ``deviations:`` list."""
    from benchmark.deviations import DEVIATION_KINDS, read_deviations
    from methods.base import config_path

    if not get_method(name).needs_training:
        return
    for preset in ("demo", "paper"):
        path = config_path(name, preset)
        assert path.exists(), path
        assert all(d["kind"] in DEVIATION_KINDS for d in read_deviations(path))


def test_deviations_check_rejects_missing_list_and_unknown_kind():
    from benchmark.deviations import check_deviations

    with pytest.raises(ValueError, match="no `deviations:`"):
        check_deviations({"model": {}})
    entry = {"what": "lr", "official": "1e-4", "ours": "5e-4", "why": "budget", "kind": "speed"}
    with pytest.raises(ValueError, match="unknown kind"):
        check_deviations({"deviations": [entry]})
    assert check_deviations({"deviations": [{**entry, "kind": "budget"}]}) == [{**entry, "kind": "budget"}]
