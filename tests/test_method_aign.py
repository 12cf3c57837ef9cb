"""AIGN: training lowers the rendering loss, edits keep the contract, checkpoints round-trip, renderers behave."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from datamodules.synthfaces import SynthFacesDataModule
from methods.aign import AIGN
from methods.aign.renderers import InpaintingRenderer, SuperResolutionRenderer, box_mask
from methods.base import get_method, load_method

ATTRS = ["Smiling", "Eyeglasses"]
TINY = dict(gen_channels=16, gen_res_blocks=1, gen_up_channels=16, inpaint_channels=[8, 16, 8],
            disc_channels=[8, 16], disc_fc=0, lr=3e-3)


@pytest.fixture(scope="module")
def dm(tmp_path_factory) -> SynthFacesDataModule:
    d = SynthFacesDataModule(attributes=ATTRS, resolution=32, batch_size=16, num_identities=12,
                             images_per_identity=4, correlation=0.0, cache_dir=str(tmp_path_factory.mktemp("cache")))
    d.setup()
    return d


def _batch(dm: SynthFacesDataModule, n: int = 16) -> dict[str, torch.Tensor]:
    ds = dm.dataset("train")
    items = [ds[i] for i in range(n)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def _trainer(steps: int, **kw) -> L.Trainer:
    return L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                     limit_val_batches=0, **kw)


@torch.no_grad()
def _recon(model: AIGN, batch: dict[str, torch.Tensor]) -> float:
    """Mean rendering loss || R(G(R(x))) - R(x) ||^2 of every direction's generator on its source images."""
    model.eval()
    rendered = model.renderer(batch["image"])
    losses = []
    for key, k, value in model.directions:
        src = batch["attrs"][:, k] != value
        fake = model.generate(key, rendered[src])
        losses.append(F.mse_loss(model.renderer(fake), rendered[src]))
    model.train()
    return float(torch.stack(losses).mean())


def test_registered_and_capabilities() -> None:
    cls = get_method("aign")
    assert cls is AIGN
    assert cls.capabilities()["multi_attribute"] and not cls.capabilities()["supports_strength"]


def test_renderers() -> None:
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    low = SuperResolutionRenderer(4)(x)
    assert low.shape == (2, 3, 8, 8)
    assert torch.allclose(low[0, :, 0, 0], x[0, :, :4, :4].mean(dim=(1, 2)), atol=1e-6)
    with pytest.raises(ValueError):
        SuperResolutionRenderer(3)
    mask = box_mask(32, (0.5, 0.25, 0.25, 0.5))
    assert mask.sum() == 32 * 32 - 8 * 16 and mask[0, 0, 16, 8] == 0 and mask[0, 0, 15, 8] == 1
    r = InpaintingRenderer(32, (0.5, 0.25, 0.25, 0.5))
    g = torch.rand(2, 3, 32, 32)
    out = r.composite(r(x), g)
    assert torch.equal(out * mask, x * mask) and torch.equal(out * (1 - mask), g * (1 - mask))


@pytest.mark.parametrize(("renderer", "joint"), [("superres", False), ("inpaint", True)])
def test_training_lowers_render_loss_and_stays_finite(dm, renderer: str, joint: bool) -> None:
    torch.manual_seed(0)
    model = AIGN(ATTRS, 32, renderer=renderer, disc_joint_batch=joint, **TINY)
    batch = _batch(dm)
    before = _recon(model, batch)
    iterations = 40
    trainer = _trainer(2 * iterations)  # one generator + one discriminator step per iteration
    trainer.fit(model, dm)
    after = _recon(model, batch)
    assert int(model.iterations) == iterations and trainer.global_step == 2 * iterations
    assert after < 0.75 * before, (before, after)  # measured: 0.134 -> 0.084 (superres), 0.046 (inpaint)
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name
    for name, b in model.named_buffers():
        assert torch.isfinite(b.float()).all(), name


def _snapshot(model: AIGN) -> dict[str, list[torch.Tensor]]:
    return {k: [p.detach().clone() for p in d.parameters()] for k, d in model.discriminators.items()}


def test_discriminator_skipped_while_its_loss_is_low(dm) -> None:
    torch.manual_seed(0)
    model = AIGN(ATTRS, 32, **TINY)
    frozen, seen = "Smiling__add", {}

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            pl_module._last_d_loss[frozen] = 0.0  # below the threshold of 1.0: this discriminator must not move
            seen["before"] = _snapshot(pl_module)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen["after"] = _snapshot(pl_module)

    _trainer(2, callbacks=[Probe()]).fit(model, dm)
    same = {k: all(torch.equal(a, b) for a, b in zip(seen["before"][k], seen["after"][k])) for k in seen["before"]}
    assert same[frozen]
    assert not same["Eyeglasses__remove"] or not same["Smiling__remove"]


def test_edit_contract_and_checkpoint_round_trip(dm, tmp_path) -> None:
    torch.manual_seed(0)
    model = AIGN(ATTRS, 32, **TINY)
    trainer = _trainer(4)
    trainer.fit(model, dm)
    model.eval()
    batch = _batch(dm, 8)
    x, src = batch["image"], batch["attrs"]
    tgt = src.clone()
    tgt[:4, 0] = 1 - tgt[:4, 0]  # flip Smiling on the first half, keep the rest
    with torch.no_grad():
        out = model.edit(x, src, tgt)
        again = model.edit(x, src, tgt, strength=0.3)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, again)  # deterministic in eval mode; strength is ignored
    assert torch.equal(out[4:], x[4:])  # nothing to edit -> unchanged
    assert not torch.equal(out[:4], x[:4])
    with torch.no_grad():
        half = model.edit(x.half(), src, tgt)
    assert half.dtype == torch.float16

    path = tmp_path / "aign.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_method(str(path))
    assert isinstance(loaded, AIGN) and loaded.attribute_names == ATTRS
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(loaded.edit(x, src, tgt), out)


def _record_reals(model: AIGN) -> list[tuple[int, str, torch.Tensor, torch.Tensor]]:
    """Wrap ``model._discriminate``: every call appends (iteration, direction, real images, fake images)."""
    calls: list[tuple[int, str, torch.Tensor, torch.Tensor]] = []
    inner = model._discriminate

    def spy(key, real, fake):
        calls.append((int(model.iterations), key, real.detach().clone(), fake.detach()))
        return inner(key, real, fake)

    model._discriminate = spy
    return calls


def _domain_images(dm: SynthFacesDataModule, k: int, value: int) -> torch.Tensor:
    ds = dm.dataset("train")
    rows = torch.nonzero(ds.attrs[:, k] == value).squeeze(1)
    return torch.stack([ds[int(i)]["image"] for i in rows])


@pytest.mark.parametrize("real_batch", [None, 5])
def test_discriminator_sees_a_full_batch_of_target_value_reals_every_step(dm, real_batch) -> None:
    """Each step, every active direction's discriminator gets ``disc_real_batch_size`` (default: the data module's
    batch size) real images, all with the direction's target value; the generator gets the batch's other images."""
    torch.manual_seed(0)
    model = AIGN(ATTRS, 32, disc_real_batch_size=real_batch, **TINY)
    calls = _record_reals(model)
    batches: list[torch.Tensor] = []

    class Batches(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            batches.append(batch["attrs"].round())

    iterations = 3
    _trainer(2 * iterations, callbacks=[Batches()]).fit(model, dm)
    want = real_batch or dm.batch_size
    pools = {key: _domain_images(dm, k, value) for key, k, value in model.directions}
    for step, attrs in enumerate(batches):
        expected = {key: int((attrs[:, k] != value).sum()) for key, k, value in model.directions}
        expected = {key: n for key, n in expected.items() if n >= 2}
        got = {key: (real, fake) for it, key, real, fake in calls if it == step}
        assert set(got) == set(expected) and expected, (step, sorted(got), expected)
        for key, (real, fake) in got.items():
            assert real.shape == (want, 3, 32, 32), key          # a full batch, not the batch's few targets
            assert fake.shape[0] == expected[key]                # the generator: the batch's source images
            # every real image is one of the training split's images with the target value
            match = (real[:, None] == pools[key][None]).flatten(2).all(2).any(1)
            assert match.all(), key
    like = torch.zeros((), dtype=torch.float64)
    assert model.real_images("Smiling__add", like).dtype == torch.float64


def test_real_sources_follow_the_run_seed_and_checkpoint(dm, monkeypatch) -> None:
    from types import SimpleNamespace

    def sources(seed: str) -> AIGN:
        monkeypatch.setenv("PL_GLOBAL_SEED", seed)
        model = AIGN(ATTRS, 32, **TINY)
        model._trainer = SimpleNamespace(datamodule=dm, global_rank=0)
        model.on_fit_start()
        return model

    a, b, c = sources("0"), sources("0"), sources("1")
    key = "Eyeglasses__add"
    first = next(a._real_sources[key])["index"]
    assert torch.equal(first, next(b._real_sources[key])["index"])
    assert not torch.equal(first, next(c._real_sources[key])["index"])
    checkpoint: dict = {}
    a.on_save_checkpoint(checkpoint)
    assert set(checkpoint["aign_real_sources"]) == {k for k, _, _ in a.directions}
    resumed = AIGN(ATTRS, 32, **TINY)
    resumed.on_load_checkpoint(checkpoint)
    resumed._trainer = SimpleNamespace(datamodule=dm, global_rank=0)
    resumed.on_fit_start()
    assert torch.equal(next(resumed._real_sources[key])["index"], next(a._real_sources[key])["index"])
