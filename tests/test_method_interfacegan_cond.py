"""``interfacegan-cond``: the registered variant of InterFaceGAN that edits by the paper's conditional manipulation.

It refuses to be built without conditioning attributes, its configs are interfacegan's but for
``conditional_on: all``, and on a trained tiny model whose two boundaries are made non-orthogonal an edit of one
attribute keeps the other's signed distance (plain interfacegan changes it), within the edit contract."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import yaml

from datamodules.synthfaces import SynthFacesDataModule
from methods.base import config_path, get_method, load_method
from methods.interfacegan import InterFaceGAN, InterFaceGANConditional

ATTRS = ["Smiling", "Young"]
TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, g_channel_base=128, g_channel_max=16, d_channel_base=128,
            d_channel_max=16, predictor_width=8, gan_steps=2, predictor_steps=2, encoder_start=2, encoder_steps=2,
            num_boundary_samples=200, boundary_ratio=0.1, inversion_steps=2)


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def non_orthogonal_normals(dim: int, cos: float = 0.6, seed: int = 0) -> torch.Tensor:
    """(2, dim) unit normals with n_A . n_B = ``cos``."""
    g = torch.Generator().manual_seed(seed)
    a, r = torch.randn(2, dim, generator=g)
    a = unit(a)
    u = unit(r - (r @ a) * a)  # orthogonal to a
    return torch.stack([a, unit(cos * a + (1 - cos**2) ** 0.5 * u)])


@pytest.fixture(scope="module")
def cond_pair(tmp_path_factory):
    """(the variant after a tiny fit, plain interfacegan with the same weights, the data module, the trainer);
    both models' boundaries are replaced by non-orthogonal normals (cos 0.6), offsets 0 and unit scales."""
    L.seed_everything(0)
    dm = SynthFacesDataModule(attributes=ATTRS, resolution=32, batch_size=8, num_identities=6,
                              images_per_identity=2, cache_dir=str(tmp_path_factory.mktemp("cache")))
    dm.setup()
    cond = InterFaceGANConditional(dm.attribute_names, 32, conditional_on="all", **TINY)
    trainer = L.Trainer(max_steps=cond.planned_optimizer_steps(), max_epochs=100, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(cond, dm)
    assert bool(cond.boundaries_ready) and int(cond.iteration) == cond.total_iterations
    with torch.no_grad():
        cond.boundary_normals.copy_(non_orthogonal_normals(cond.hparams.w_dim))
        cond.boundary_offsets.zero_()
        cond.boundary_scales.fill_(1.0)
    plain = InterFaceGAN(**{**dict(cond.hparams), "conditional_on": []})
    plain.load_state_dict(cond.state_dict())
    return cond.eval(), plain.eval(), dm, trainer


def test_cond_registered_as_a_variant_of_interfacegan():
    cls = get_method("interfacegan-cond")
    assert cls is InterFaceGANConditional and issubclass(cls, InterFaceGAN)
    assert cls.method_name == "interfacegan-cond" and cls.variant_of == "interfacegan"
    assert get_method("interfacegan").method_name == "interfacegan"  # the subclass does not rename its base
    assert cls.capabilities() == InterFaceGAN.capabilities() and cls.edit_modes == InterFaceGAN.edit_modes
    for preset in ("demo", "paper"):
        assert config_path("interfacegan-cond", preset).parent.name == "interfacegan-cond"
        assert config_path("interfacegan-cond", preset).exists()


def test_cond_refuses_empty_conditioning():
    with pytest.raises(ValueError, match="needs conditioning attributes"):
        InterFaceGANConditional(ATTRS, 32, conditional_on=[], **TINY)
    with pytest.raises(ValueError, match="must be 'all' or a list"):
        InterFaceGANConditional(ATTRS, 32, conditional_on="none", **TINY)
    with pytest.raises(ValueError, match="at least two attributes"):
        InterFaceGANConditional(["Smiling"], 32, **TINY)  # the default "all": nothing left to keep fixed
    with pytest.raises(ValueError, match="not among the attributes"):
        InterFaceGANConditional(ATTRS, 32, conditional_on=["Eyeglasses"], **TINY)  # the base class's check
    # "all" (the default) is every attribute of the model, and the checkpoint records the resolved list
    assert InterFaceGANConditional(ATTRS, 32, **TINY).hparams.conditional_on == ATTRS
    three = InterFaceGANConditional(["Smiling", "Eyeglasses", "Young"], 32, conditional_on="all", **TINY)
    assert three.hparams.conditional_on == ["Smiling", "Eyeglasses", "Young"] and three._conditioned == [0, 1, 2]
    assert InterFaceGANConditional(ATTRS, 32, conditional_on=["Young"], **TINY)._conditioned == [1]


@pytest.mark.parametrize("preset", ["demo", "paper"])
def test_cond_configs_are_interfacegans_but_for_conditioning(preset):
    base = yaml.safe_load(config_path("interfacegan", preset).read_text())
    cond = yaml.safe_load(config_path("interfacegan-cond", preset).read_text())
    assert base["model"]["init_args"]["conditional_on"] == []
    assert cond["model"]["init_args"].pop("conditional_on") == "all"
    base["model"]["init_args"].pop("conditional_on")
    assert cond["model"].pop("class_path") == "methods.interfacegan.InterFaceGANConditional"
    base["model"].pop("class_path")
    for cfg, name in ((base, "interfacegan"), (cond, "interfacegan-cond")):  # where the runs go differs only
        trainer = cfg["trainer"]
        assert trainer.pop("default_root_dir") == f"runs/{name}-{preset}"
        (ckpt,) = trainer["callbacks"]
        assert ckpt["init_args"].pop("dirpath") == f"runs/{name}-{preset}/checkpoints"
    assert cond == base  # same objective, training, data and deviations


def test_cond_directions_project_off_the_unedited_conditions_only():
    model = InterFaceGANConditional(["Smiling", "Eyeglasses", "Young"], 32, **TINY)
    g = torch.Generator().manual_seed(1)
    normals = torch.stack([unit(v) for v in torch.randn(3, TINY["w_dim"], generator=g)])
    model.boundary_normals.copy_(normals)
    one = model.directions([0])  # editing Smiling: kept off Eyeglasses and Young
    assert abs(float(one[0] @ normals[1])) < 1e-6 and abs(float(one[0] @ normals[2])) < 1e-6
    both = model.directions([0, 1])  # editing Smiling and Eyeglasses together: each kept off Young only
    for k in (0, 1):
        assert abs(float(both[k] @ normals[2])) < 1e-6 and abs(float(both[k] @ normals[1 - k])) > 1e-3
    plain = InterFaceGAN(["Smiling", "Eyeglasses", "Young"], 32, **{**TINY, "conditional_on": []})
    plain.boundary_normals.copy_(normals)
    assert torch.equal(plain.directions([0]), normals)


def test_cond_edit_keeps_the_other_attributes_distance(cond_pair):
    cond, plain, dm, _ = cond_pair
    normals = cond.boundary_normals
    assert float(normals[0] @ normals[1]) == pytest.approx(0.6, abs=1e-5)
    batch = next(iter(dm.test_dataloader()))
    x, src = batch["image"][:6], batch["attrs"][:6]
    tgt = src.clone()
    tgt[:, 0] = 1 - tgt[:, 0]  # edit Smiling (A); Young (B) is not edited
    with torch.no_grad():
        codes = cond.invert(x)
        assert torch.equal(plain.invert(x), codes)  # same weights: same inversion
        moved, moved_plain = cond.move(codes, src, tgt), plain.move(codes, src, tgt)
    assert codes.ndim == 3  # w+: the edit is one direction, added to every layer
    step = (moved - codes)[:, 0]
    assert torch.allclose(moved - codes, step[:, None].expand_as(codes), atol=1e-6)
    assert (step.norm(dim=1) > 0.1).all()  # every image moved
    assert (step @ normals[1]).abs().max() < 1e-5  # along a direction orthogonal to B's normal
    before, after, after_plain = (cond.signed_distance(c) for c in (codes, moved, moved_plain))
    assert torch.allclose(after[:, 1], before[:, 1], atol=1e-5)  # B's signed distance kept
    assert ((after_plain[:, 1] - before[:, 1]).abs() > 0.05).all()  # plain interfacegan drags B along
    sign = 2 * tgt[:, 0] - 1
    assert (sign * (after[:, 0] - before[:, 0]) > 0).all()  # A moves towards its target
    with torch.no_grad():  # the sampled-code path (GAN-sample protocol) moves the same way
        assert torch.equal(cond.edit_codes(codes, src, tgt), moved)


def test_cond_edit_contract_and_checkpoint(cond_pair, tmp_path):
    cond, plain, dm, trainer = cond_pair
    batch = next(iter(dm.test_dataloader()))
    x, src = batch["image"][:6], batch["attrs"][:6]
    tgt = src.clone()
    tgt[:, 0] = 1 - tgt[:, 0]
    with torch.no_grad():
        out, again = cond.edit(x, src, tgt), cond.edit(x, src, tgt)
        none = cond.edit(x, src, tgt, strength=0.0)
        rec = cond.render(cond.invert(x)).clamp(-1, 1)
        out_plain = plain.edit(x, src, tgt)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.isfinite(out).all() and out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, again)  # deterministic in eval mode
    assert torch.allclose(none, rec, atol=1e-6)  # strength 0 = the inversion, unedited
    assert not torch.equal(out, out_plain)  # the conditional direction is another edit
    path = tmp_path / "cond.ckpt"
    trainer.save_checkpoint(path)
    assert torch.load(path, map_location="cpu", weights_only=True)["attredit_method"] == "interfacegan-cond"
    loaded = load_method(str(path)).eval()
    assert type(loaded) is InterFaceGANConditional and loaded.hparams.conditional_on == ATTRS
    with torch.no_grad():
        assert torch.equal(loaded.edit(x, src, tgt), out)
