"""The embedded synthetic set: determinism, splits, exact and local counterfactuals, bias, caching, errors."""

from __future__ import annotations

import pytest
import torch

from datamodules.base import UnknownAttributeError
from datamodules.synthfaces import GLOBAL_ATTRIBUTES, LOCAL_ATTRIBUTES, SynthFacesDataModule
from datamodules.synthfaces import datamodule as sf_module
from datamodules.synthfaces.render import ATTRIBUTES


def make(tmp_path, **kw):
    args = {"resolution": 32, "num_identities": 24, "images_per_identity": 5, "cache_dir": str(tmp_path)}
    args.update(kw)
    dm = SynthFacesDataModule(**args)
    dm.setup()
    return dm


def test_batch_schema(tiny_synth):
    batch = next(iter(tiny_synth.train_dataloader()))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape[1:] == (3, 32, 32)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    assert batch["attrs"].dtype == torch.float32 and batch["attrs"].shape[1] == len(ATTRIBUTES)
    assert set(batch["attrs"].unique().tolist()) <= {0.0, 1.0}
    assert batch["identity"].dtype == torch.long and batch["index"].dtype == torch.long
    assert tiny_synth.attribute_names == list(ATTRIBUTES)


def test_deterministic_from_seed(tmp_path):
    a = make(tmp_path / "a", seed=3)
    b = make(tmp_path / "b", seed=3)
    c = make(tmp_path / "c", seed=4)
    assert torch.equal(a.dataset("train").images, b.dataset("train").images)
    assert not torch.equal(a.dataset("train").images, c.dataset("train").images)


def test_identity_disjoint_splits(tiny_synth):
    ids = {s: set(tiny_synth.dataset(s).identity.tolist()) for s in ("train", "val", "test")}
    assert ids["train"] and ids["val"] and ids["test"]
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    total = sum(len(tiny_synth.dataset(s)) for s in ("train", "val", "test"))
    assert total == 30 * 6
    # every identity is seen in several images
    counts = torch.bincount(tiny_synth.dataset("train").identity)
    assert (counts[counts > 0] == 6).all()


def test_counterfactual_with_same_attributes_is_the_image(tiny_synth):
    ds = tiny_synth.dataset("test")
    idx = torch.arange(len(ds))
    cf = ds.counterfactuals(idx, ds.attrs[idx])
    orig = torch.stack([ds[i]["image"] for i in idx.tolist()])
    assert torch.equal(cf, orig)


@pytest.mark.parametrize("attr", LOCAL_ATTRIBUTES)
def test_local_flip_changes_only_its_region(tiny_synth, attr):
    ds = tiny_synth.dataset("test")
    idx = torch.arange(len(ds))
    col = ATTRIBUTES.index(attr)
    flipped = ds.attrs.clone()
    flipped[:, col] = 1 - flipped[:, col]
    before, after = ds.counterfactuals(idx, ds.attrs), ds.counterfactuals(idx, flipped)
    changed = (before - after).abs().amax(dim=1) > 0  # (N, H, W)
    region = ds.region_masks(idx)[attr]
    assert changed.any(dim=(1, 2)).float().mean() > 0.9, "a flip must change the image"
    assert not (changed & ~region).any(), f"{attr} changed pixels outside its region"
    assert changed.float().mean() < 0.15, f"{attr} is local but changed {changed.float().mean():.2%} of pixels"


@pytest.mark.parametrize("attr", GLOBAL_ATTRIBUTES)
def test_global_flip_changes_many_pixels(tiny_synth, attr):
    ds = tiny_synth.dataset("test")
    idx = torch.arange(len(ds))
    col = ATTRIBUTES.index(attr)
    flipped = ds.attrs.clone()
    flipped[:, col] = 1 - flipped[:, col]
    changed = (ds.counterfactuals(idx, ds.attrs) - ds.counterfactuals(idx, flipped)).abs().amax(dim=1) > 0
    assert changed.float().mean() > 0.1


def test_counterfactual_single_form_and_selected_columns(tmp_path):
    dm = make(tmp_path, attributes=["Smiling", "Young"])
    ds = dm.dataset("test")
    assert ds.attrs.shape[1] == 2
    target = 1 - ds.attrs[0]
    one = ds.counterfactual(0, target)
    batch = ds.counterfactuals(torch.tensor([0]), target[None])[0]
    assert torch.equal(one, batch)
    assert not torch.equal(one, ds[0]["image"])


def test_attribute_balance_and_default_bias(tmp_path):
    dm = SynthFacesDataModule(resolution=32, num_identities=2000, images_per_identity=3, cache_dir=str(tmp_path))
    world = sf_module.SynthFacesWorld(2000, 3, 0, 1.0, 1.0)
    a = world.attrs
    rates = a.mean(0)
    assert ((rates > 0.1) & (rates < 0.9)).all(), dict(zip(ATTRIBUTES, rates.tolist()))
    col = {n: i for i, n in enumerate(ATTRIBUTES)}
    square = world.ident["jaw_square"] > 0.5
    young = a[:, col["Young"]] > 0.5
    mustache, glasses = a[:, col["Mustache"]], a[:, col["Eyeglasses"]]
    assert mustache[square].mean() - mustache[~square].mean() > 0.25
    assert glasses[~young].mean() - glasses[young].mean() > 0.25
    # without correlation the same gaps vanish
    flat = sf_module.SynthFacesWorld(2000, 3, 0, 0.0, 1.0)
    sq = flat.ident["jaw_square"] > 0.5
    assert abs(flat.attrs[sq, col["Mustache"]].mean() - flat.attrs[~sq, col["Mustache"]].mean()) < 0.06
    assert dm.config_key()["correlation"] == 1.0


def test_unknown_attribute_lists_valid_names(tmp_path):
    with pytest.raises(UnknownAttributeError, match="Smiling"):
        SynthFacesDataModule(attributes=["Smilling"], cache_dir=str(tmp_path))


@pytest.mark.parametrize("bad", [16, 300])
def test_resolution_out_of_range(tmp_path, bad):
    with pytest.raises(ValueError, match="32 to 256"):
        SynthFacesDataModule(resolution=bad, cache_dir=str(tmp_path))


def test_renders_at_any_resolution(tmp_path):
    for size in (48, 128):
        dm = make(tmp_path / str(size), resolution=size, num_identities=3, images_per_identity=1)
        assert dm.dataset("train").images.shape[-1] == size


def test_cache_is_reused_and_a_corrupt_cache_rerenders(tmp_path, monkeypatch):
    first = make(tmp_path)
    path = first.cache_path()
    calls = []
    real = sf_module.render_chunked
    monkeypatch.setattr(sf_module, "render_chunked", lambda *a, **k: calls.append(1) or real(*a, **k))
    make(tmp_path)
    assert calls == [], "a cached configuration must not re-render"
    with open(path, "wb") as f:
        f.write(b"truncated")
    again = make(tmp_path)
    assert calls == [1]
    assert torch.equal(again.dataset("train").images, first.dataset("train").images)
