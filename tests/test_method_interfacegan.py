"""InterFaceGAN: the phases train (losses drop, tensors stay finite), boundaries and conditional moves behave as
in the official manipulator, edits keep the contract, and a checkpoint round trip gives identical edits."""

from __future__ import annotations

import weakref

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from datamodules.synthfaces import SynthFacesDataModule
from methods.base import get_method, load_method
from methods.interfacegan import InterFaceGAN
from methods.interfacegan.boundary import project_boundary, train_boundary
from methods.interfacegan.inversion import encoder_losses

ATTRS = ["Smiling", "Eyeglasses", "Young"]
TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, g_channel_base=128, g_channel_max=16, d_channel_base=128,
            d_channel_max=16, predictor_width=8, gan_steps=6, predictor_steps=40, encoder_start=6,
            encoder_steps=34, lr_e=0.003, predictor_lr=0.003, num_boundary_samples=400, boundary_ratio=0.1,
            inversion_steps=3, conditional_on=["Young"])


class _Probe(L.Callback):
    """Records the predictor's and the encoder's losses on one fixed batch at chosen iterations."""

    def __init__(self, batch: dict[str, torch.Tensor], at: tuple[int, ...]) -> None:
        self.batch, self.at, self.seen = batch, at, {}

    @torch.no_grad()
    def measure(self, m: InterFaceGAN) -> dict[str, float]:
        x, a = self.batch["image"], self.batch["attrs"]
        g = torch.Generator().manual_seed(0)
        z = torch.randn(x.shape[0], m.hparams.z_dim, generator=g)
        w = m.generator_ema.mapping(z)
        fake = m.generator_ema.synthesize(w)
        losses = encoder_losses(x, fake, w, m.encoder, m.render, None, 0.0)
        pred = torch.nn.functional.binary_cross_entropy_with_logits(m.predictor(x), a)
        return {"predictor": float(pred), **{k: float(v) for k, v in losses.items()}}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        it = int(pl_module.iteration)
        if it in self.at:
            self.seen[it] = self.measure(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.seen["end"] = self.measure(pl_module)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    L.seed_everything(0)
    dm = SynthFacesDataModule(attributes=ATTRS, resolution=32, batch_size=16, num_identities=12,
                              images_per_identity=4, cache_dir=str(cache))
    dm.setup()
    fixed = next(iter(dm.train_dataloader()))
    model = InterFaceGAN(dm.attribute_names, 32, **TINY)
    probe = _Probe(fixed, at=(0, TINY["gan_steps"]))
    trainer = L.Trainer(max_steps=model.planned_optimizer_steps(), max_epochs=1000, accelerator="cpu",
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[probe])
    trainer.fit(model, dm)
    return model, dm, trainer, probe, cache


def test_registered():
    assert get_method("interfacegan") is InterFaceGAN
    caps = InterFaceGAN.capabilities()
    assert caps["supports_strength"] and caps["multi_attribute"] and caps["needs_training"]


def test_training_phases_lower_losses_and_stay_finite(trained):
    model, _, trainer, probe, _ = trained
    assert int(model.iteration) == model.total_iterations
    assert trainer.global_step == model.planned_optimizer_steps()
    before_pred, before_enc, end = probe.seen[0], probe.seen[TINY["gan_steps"]], probe.seen["end"]
    # the predictor trains from iteration 0; the encoder against the frozen EMA generator after the GAN phase
    assert end["predictor"] < 0.9 * before_pred["predictor"]
    # a tiny generator after 6 GAN steps cannot reconstruct real faces; the inversion of its own images can
    assert end["code"] < 0.8 * before_enc["code"]
    assert end["fake_rec"] < before_enc["fake_rec"]
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), name
    assert bool(model.boundaries_ready)
    assert torch.allclose(model.boundary_normals.norm(dim=1), torch.ones(len(ATTRS)), atol=1e-5)
    assert ((model.boundary_val_accuracy >= 0) & (model.boundary_val_accuracy <= 1)).all()


def test_train_boundary_recovers_a_linear_direction():
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((4000, 12))
    truth = np.zeros(12)
    truth[3], truth[7] = 0.6, -0.8
    scores = codes @ truth + 0.05 * rng.standard_normal(4000)
    bd = train_boundary(codes, scores, ratio=0.05, split=0.7, seed=0)
    assert abs(np.linalg.norm(bd.normal) - 1) < 1e-6
    assert bd.normal @ truth > 0.95  # points towards the attribute
    assert bd.val_accuracy == 1.0 and 0 <= bd.remaining_accuracy <= 1
    assert (((codes @ bd.normal + bd.offset) > 0) == (scores > 0)).mean() > 0.95  # the hyperplane, not just n


def test_project_boundary_matches_the_official_closed_forms():
    g = torch.Generator().manual_seed(0)
    n1, n2, n3 = (v / v.norm() for v in torch.randn(3, 10, generator=g, dtype=torch.float64))
    one = project_boundary(n1, [n2])
    expected = n1 - (n1 @ n2) * n2
    assert torch.allclose(one, expected / expected.norm())
    two = project_boundary(n1, [n2, n3])
    c12 = n2 @ n3
    alpha = (n1 @ n2 - (n1 @ n3) * c12) / (1 - c12**2)
    beta = (n1 @ n3 - (n1 @ n2) * c12) / (1 - c12**2)
    expected = n1 - alpha * n2 - beta * n3
    assert torch.allclose(two, expected / expected.norm(), atol=1e-6)
    assert abs(float(two @ n2)) < 1e-6 and abs(float(two @ n3)) < 1e-6
    assert torch.allclose(project_boundary(n1, []), n1)


def test_move_reaches_the_target_distance_and_keeps_conditions(trained):
    model = trained[0]
    k_smile, k_young = model.attribute_index("Smiling"), model.attribute_index("Young")
    codes = torch.randn(6, model.generator.num_ws, model.hparams.w_dim) * 0.1 + model.generator.mapping.w_avg
    src = torch.zeros(6, len(ATTRS))
    tgt = src.clone()
    tgt[:, k_smile] = 1
    moved = model.move(codes, src, tgt, strength=1.0)
    before, after = model.signed_distance(codes), model.signed_distance(moved)
    d = model.hparams.edit_distance
    expect = torch.maximum(before[:, k_smile], torch.full_like(before[:, k_smile], d))
    # along the projected direction the primal distance moves by cos(n, u) of the requested amount
    cos = float(model.directions([k_smile])[k_smile] @ model.boundary_normals[k_smile])
    want = before[:, k_smile] + cos * (expect - before[:, k_smile])
    assert torch.allclose(after[:, k_smile], want, atol=1e-4)
    assert torch.allclose(after[:, k_young], before[:, k_young], atol=1e-4)  # conditioned: kept
    assert torch.equal(model.move(codes, src, src), codes)  # nothing edited: nothing moves
    half = model.signed_distance(model.move(codes, src, tgt, strength=0.5))[:, k_smile]
    assert torch.allclose(half - before[:, k_smile], 0.5 * (after[:, k_smile] - before[:, k_smile]), atol=1e-4)


def test_edit_contract(trained):
    model = trained[0].eval()
    dm = trained[1]
    batch = next(iter(dm.test_dataloader()))
    x, a = batch["image"][:6], batch["attrs"][:6]
    tgt = a.clone()
    tgt[:, 0] = 1 - tgt[:, 0]
    with torch.no_grad():
        out = model.edit(x, a, tgt)
        again = model.edit(x, a, tgt)
        none = model.edit(x, a, tgt, strength=0.0)
        rec = model.render(model.invert(x))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, again)  # deterministic in eval mode
    assert torch.allclose(none, rec.clamp(-1, 1), atol=1e-6)  # strength 0 = the inversion, unedited
    with torch.inference_mode():
        assert torch.equal(model.edit(x, a, tgt), out)


def test_checkpoint_round_trip(trained, tmp_path):
    model, dm, trainer = trained[0], trained[1], trained[2]
    path = tmp_path / "interfacegan.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_method(str(path)).eval()
    assert isinstance(loaded, InterFaceGAN) and bool(loaded.boundaries_ready)
    batch = next(iter(dm.test_dataloader()))
    x, a = batch["image"][:4], batch["attrs"][:4]
    tgt = 1 - a
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.edit(x, a, tgt), model.edit(x, a, tgt))


class _SampleSpy:
    """Wraps ``model._sample``: records each chunk's size and how many earlier chunks' images are still alive."""

    def __init__(self, model: InterFaceGAN) -> None:
        self.sample, self.sizes, self.alive, self.refs = model._sample, [], [], []
        model._sample = self

    def __call__(self, n, generator=None, ema=True):  # noqa: ANN001, ANN204
        self.alive.append(sum(r() is not None for r in self.refs))
        codes, images = self.sample(n, generator, ema)
        self.sizes.append(n)
        self.refs.append(weakref.ref(images))
        return codes, images


def test_boundary_search_streams_chunks_and_keeps_codes_not_images():
    torch.manual_seed(0)
    model = InterFaceGAN(ATTRS, 32, **TINY)
    spy = _SampleSpy(model)
    acc = model.find_boundaries(chunk=64, num_samples=300)
    assert spy.sizes == [64, 64, 64, 64, 44]
    assert spy.alive == [0, 0, 0, 0, 0]  # every chunk's images are freed before the next is generated
    assert set(acc) == set(ATTRS) and bool(model.boundaries_ready)
    spy.sizes.clear()
    model.find_boundaries(num_samples=700)  # default chunk at 32 px: 500 images (about 2M pixels)
    assert spy.sizes == [500, 200]
    big = InterFaceGAN(ATTRS, 256, **TINY)
    spy = _SampleSpy(big)
    big.find_boundaries(num_samples=40)  # default chunk at 256 px: 32 images
    assert spy.sizes == [32, 8]


def test_early_stopped_fit_searches_a_small_boundary_set_with_a_notice(tmp_path, caplog):
    """A smoke run (``--trainer.max_steps 2``) stops long before the schedule's boundary search: on_train_end
    searches EARLY_STOP_BOUNDARY_SAMPLES instead of num_boundary_samples, says so, and rewrites last.ckpt."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from methods.interfacegan.module import EARLY_STOP_BOUNDARY_SAMPLES

    L.seed_everything(0)
    dm = SynthFacesDataModule(attributes=ATTRS, resolution=32, batch_size=8, num_identities=6,
                              images_per_identity=2, cache_dir=str(tmp_path / "cache"))
    model = InterFaceGAN(dm.attribute_names, 32, **{**TINY, "num_boundary_samples": 500_000})
    spy = _SampleSpy(model)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=2, save_top_k=0)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[ckpt])
    with caplog.at_level("WARNING", logger="methods.interfacegan.module"):
        trainer.fit(model, dm)
    assert int(model.iteration) < model.total_iterations
    searched = [n for n in spy.sizes if n != 8]  # the GAN steps sample a batch of 8; the search, chunks of 500
    assert sum(searched) == EARLY_STOP_BOUNDARY_SAMPLES < 500_000 and max(searched) <= 500
    assert f"on {EARLY_STOP_BOUNDARY_SAMPLES} samples instead of num_boundary_samples=500000" in caplog.text
    assert "trainer.max_steps=2 but the schedule takes" in caplog.text
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert bool(saved["boundaries_ready"]) and torch.equal(saved["boundary_normals"], model.boundary_normals)


def test_inversion_memo_reuses_codes_exactly_and_clears_on_new_weights(trained, monkeypatch):
    import methods.interfacegan.module as mod

    model, dm = trained[0].eval(), trained[1]
    model._inversion_memo.clear()
    batch = next(iter(dm.test_dataloader()))
    x = batch["image"][:4]
    calls = []
    real = mod.optimise_codes
    monkeypatch.setattr(mod, "optimise_codes", lambda *a, **k: calls.append(a[0].shape[0]) or real(*a, **k))
    with torch.no_grad():
        first = model.invert(x)
        again = model.invert(x[[3, 1, 0]])       # another batch of the same images: memoised, no optimisation
    assert calls == [4] and torch.equal(again, first[[3, 1, 0]])
    model._inversion_memo.clear()
    with torch.no_grad():
        fresh = model.invert(x[[3, 1, 0]])       # batch composition does not change an image's code
    assert torch.allclose(fresh, first[[3, 1, 0]], atol=1e-6) and calls == [4, 3]
    with torch.no_grad():
        model.invert(x[:2], steps=1)             # other settings: its own entry
    assert calls == [4, 3, 2]
    model.train()
    model.eval()                                 # a mode round trip (Lightning's after every test) keeps it
    with torch.no_grad():
        model.invert(x[[3, 1, 0]])
    assert calls == [4, 3, 2]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        next(model.encoder.parameters()).add_(1e-3)   # new weights: the memo is stale, the codes recomputed
        model.invert(x[[3, 1, 0]])
    assert calls == [4, 3, 2, 3]
    model.load_state_dict(state)
    with torch.no_grad():
        back = model.invert(x[[3, 1, 0]])
    assert calls == [4, 3, 2, 3, 3] and torch.allclose(back, first[[3, 1, 0]], atol=1e-6)
    model.train()
    model.invert(x[:2])                          # training mode never memoises
    assert calls[-1] == 2
    model.eval()


def test_gan_sample_protocol_judges_the_methods_own_samples(trained, tiny_synth, bundle, tmp_path):
    from benchmark.leaderboard import write_gan_sample_table
    from evaluators.gan_samples import GAN_SAMPLE_COLUMNS, score_gan_samples

    model = trained[0].eval()
    row = score_gan_samples(model, tiny_synth, "Smiling", bundle, n=60, strength=1.0, seed=3, batch_size=25)
    assert list(row) == GAN_SAMPLE_COLUMNS and row["n_samples"] == 60 and row["mode"] == "gan-sample"
    # independently: the same seeded codes, the classifier's reading of each sample flipped, read on the edit
    clf = bundle.classifier.model
    g = torch.Generator().manual_seed(3)
    codes = torch.cat([model.sample_codes(m, g) for m in (25, 25, 10)])
    cols = [clf.attribute_names.index(a) for a in model.attribute_names]
    samples = model.render_codes(codes)
    src = clf.predict(samples)[:, cols]
    tgt = src.clone()
    tgt[:, 0] = 1 - tgt[:, 0]
    edits = model.render_codes(model.edit_codes(codes, src, tgt, 1.0))
    read = clf.predict(edits)[:, cols[0]]
    assert row["attr_acc"] == pytest.approx(float((read == tgt[:, 0]).float().mean()), abs=1e-9)
    assert 0.0 <= row["success"] <= row["attr_acc"] and row["success_lo"] <= row["success"] <= row["success_hi"]
    assert np.isfinite(row["sample_realism"]) and row["sample_realism"] > 0
    # strength 0 moves nothing: the edit is the sample, so nothing is flipped and nothing else changes
    still = score_gan_samples(model, tiny_synth, "Smiling", bundle, n=60, strength=0.0, seed=3, batch_size=25)
    assert still["attr_acc"] == 0.0 and still["success"] == 0.0 and still["attr_preservation"] == 1.0
    assert still["id_sim"] == pytest.approx(1.0, abs=1e-5) and still["sample_realism"] == row["sample_realism"]
    md = write_gan_sample_table(pd.DataFrame([row, still]), tmp_path)
    assert "not comparable" in md and (tmp_path / "gan_samples.md").exists()


SG2 = dict(TINY, backbone="stylegan2", mapping_lr_mul=0.01, g_channel_base=256, g_channel_max=16,
           d_channel_base=256, d_channel_max=16, gan_steps=4, predictor_steps=4, encoder_start=2, encoder_steps=3,
           ema_kimg=0.1, ema_rampup=0.05, style_mixing_prob=0.9, pl_weight=2.0, pl_every=2, r1_every=2,
           num_boundary_samples=200)


def test_default_backbone_is_the_dcgan():
    from methods.interfacegan.networks import Discriminator, Generator

    model = InterFaceGAN(ATTRS, 32, **TINY)
    assert model.hparams.backbone == "dcgan" and not hasattr(model, "path_length")
    assert type(model.generator) is Generator and type(model.discriminator) is Discriminator
    with pytest.raises(ValueError, match="backbone: stylegan2"):
        InterFaceGAN(ATTRS, 32, **{**TINY, "pl_weight": 2.0})


def test_stylegan2_backbone_trains_finds_boundaries_and_edits(tmp_path):
    from methods.common import stylegan2

    L.seed_everything(0)
    dm = SynthFacesDataModule(attributes=ATTRS, resolution=32, batch_size=8, num_identities=6,
                              images_per_identity=2, cache_dir=str(tmp_path / "cache"))
    model = InterFaceGAN(dm.attribute_names, 32, **SG2)
    assert isinstance(model.generator, stylegan2.Generator) and isinstance(model.discriminator,
                                                                            stylegan2.Discriminator)
    assert model.generator.num_ws == 8
    w_avg0 = model.generator.mapping.w_avg.clone()
    trainer = L.Trainer(max_steps=model.planned_optimizer_steps(), max_epochs=100, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, dm)
    assert int(model.iteration) == model.total_iterations and trainer.global_step == model.planned_optimizer_steps()
    assert not torch.equal(model.generator.mapping.w_avg, w_avg0)          # the mapping tracked its mean w
    assert torch.equal(model.generator_ema.mapping.w_avg, model.generator.mapping.w_avg)
    assert float(model.path_length.pl_mean) > 0                            # the lazy path-length term ran
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), name
    assert bool(model.boundaries_ready)
    assert torch.allclose(model.boundary_normals.norm(dim=1), torch.ones(len(ATTRS)), atol=1e-5)
    model.eval()
    batch = next(iter(dm.test_dataloader()))
    x, a = batch["image"][:4], batch["attrs"][:4]
    tgt = a.clone()
    tgt[:, 1] = 1 - tgt[:, 1]
    with torch.no_grad():
        codes = model.invert(x)
        out, again = model.edit(x, a, tgt), model.edit(x, a, tgt)
    assert codes.shape == (len(x), 8, model.hparams.w_dim)                  # w+: one w per StyleGAN2 layer
    assert out.shape == x.shape and out.dtype == x.dtype and out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, again)                                          # const noise: deterministic edits
    path = tmp_path / "sg2.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_method(str(path)).eval()
    with torch.no_grad():
        assert torch.equal(loaded.edit(x, a, tgt), out)


# -- the idinvert encoder (w+ output, real images only, the discriminator trained on reconstructions) ---------
IDINV = dict(TINY, encoder_objective="idinvert", encoder_output="wp", gan_steps=6, predictor_steps=6,
             encoder_start=3, encoder_steps=10, idinvert_feature_weight=0.5, idinvert_adv_weight=0.1,
             idinvert_r1_gamma=10.0, idinvert_lr_d=0.001, r1_every=2)


class _Snapshot(L.Callback):
    """Copies chosen submodules' state when the encoder-only phase starts (iteration ``gan_steps``)."""

    def __init__(self, at: int) -> None:
        self.at, self.state = at, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if int(pl_module.iteration) == self.at:
            self.state = {name: {k: v.clone() for k, v in getattr(pl_module, name).state_dict().items()}
                          for name in ("generator", "generator_ema", "discriminator", "encoder")}


@pytest.fixture(scope="module")
def trained_idinvert(tmp_path_factory):
    L.seed_everything(0)
    dm = SynthFacesDataModule(attributes=ATTRS, resolution=32, batch_size=8, num_identities=6,
                              images_per_identity=2, cache_dir=str(tmp_path_factory.mktemp("cache")))
    model = InterFaceGAN(dm.attribute_names, 32, **IDINV)
    snap = _Snapshot(IDINV["gan_steps"])
    trainer = L.Trainer(max_steps=model.planned_optimizer_steps(), max_epochs=1000, accelerator="cpu",
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[snap])
    trainer.fit(model, dm)
    return model, dm, trainer, snap


def _same_state(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, state[k]) for k, v in module.state_dict().items())


@pytest.mark.parametrize("backbone", ["dcgan", "stylegan2"])
def test_wp_encoder_predicts_one_code_per_layer_around_the_mean_w(backbone):
    torch.manual_seed(0)
    base = SG2 if backbone == "stylegan2" else TINY
    model = InterFaceGAN(ATTRS, 32, **{**base, "encoder_output": "wp"})
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    codes = model.encode(x)
    assert codes.shape == (3, model.generator.num_ws, model.hparams.w_dim)
    assert model.render(codes).shape == x.shape
    w_avg = torch.randn(model.hparams.w_dim)
    model.generator.mapping.w_avg.copy_(w_avg)
    model._sync_encoder_origin()
    torch.nn.init.zeros_(model.encoder.head[-1].weight)
    torch.nn.init.zeros_(model.encoder.head[-1].bias)
    assert torch.allclose(model.encode(x), w_avg.expand(3, model.generator.num_ws, -1))  # an offset from w_avg
    assert InterFaceGAN(ATTRS, 32, **base).encode(x).shape == (3, model.hparams.w_dim)   # default: one w


def test_encoder_settings_are_checked():
    assert InterFaceGAN(ATTRS, 32, **TINY).hparams.encoder_objective == "regression"  # the old behaviour
    with pytest.raises(ValueError, match="encoder_objective"):
        InterFaceGAN(ATTRS, 32, **{**TINY, "encoder_objective": "vgg"})
    with pytest.raises(ValueError, match="latent_space: w and inversion_space: wp"):
        InterFaceGAN(ATTRS, 32, **{**TINY, "encoder_output": "wp", "latent_space": "z"})
    with pytest.raises(ValueError, match="co_train_generator: false"):
        InterFaceGAN(ATTRS, 32, **{**TINY, "encoder_objective": "idinvert", "co_train_generator": True})


def test_idinvert_encoder_loss_decreases_on_a_fixed_batch_with_a_fixed_generator():
    from methods.interfacegan.networks import ModulatedNorm

    torch.manual_seed(0)
    model = InterFaceGAN(ATTRS, 32, **IDINV)
    with torch.no_grad():  # untrained styles start at zero (the image ignores w+ but its first w): make them act
        for layer in model.generator_ema.modules():
            if isinstance(layer, ModulatedNorm):
                layer.fc.weight.normal_(0, 0.3)
        # a fixed batch the fixed generator can reconstruct (an untrained one cannot render real faces)
        real = model.render(torch.randn(8, model.generator.num_ws, model.hparams.w_dim))
    frozen = {name: {k: v.clone() for k, v in getattr(model, name).state_dict().items()}
              for name in ("generator", "generator_ema", "discriminator")}
    opt = torch.optim.Adam(model.encoder.parameters(), lr=3e-3)
    seen = []
    for it in range(30):
        loss, logs = model._encoder_loss(it, real, train_gan=False)
        seen.append((float(loss.detach()), float(logs["train/enc_pixel"])))
        assert set(logs) == {"train/enc_pixel", "train/enc_feature", "train/enc_adv"}
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert seen[-1][0] < 0.85 * seen[0][0] and seen[-1][1] < 0.7 * seen[0][1]
    for name, state in frozen.items():  # only the encoder learns; the EMA generator renders, untouched
        assert _same_state(getattr(model, name), state), name
    assert all(p.grad is None for p in model.generator.parameters())  # no gradient reaches the trained G


def test_idinvert_fit_keeps_the_generator_fixed_and_counts_its_optimizer_steps(trained_idinvert):
    model, _, trainer, snap = trained_idinvert
    h = model.hparams
    assert int(model.iteration) == model.total_iterations and bool(model.boundaries_ready)
    # the encoder-only iterations step the discriminator (on reconstructions) and the encoder: 2 each
    assert model.planned_optimizer_steps() == 2 * (h.gan_steps + h.encoder_steps) == trainer.global_step
    assert snap.state, "the encoder-only phase never started"
    assert _same_state(model.generator, snap.state["generator"])
    assert _same_state(model.generator_ema, snap.state["generator_ema"])
    assert not _same_state(model.discriminator, snap.state["discriminator"])  # kept training
    assert not _same_state(model.encoder, snap.state["encoder"])
    assert torch.equal(model.encoder.origin, model.generator.mapping.w_avg)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), name


def test_idinvert_edit_contract_and_checkpoint(trained_idinvert, tmp_path):
    model, dm, trainer, _ = trained_idinvert
    model.eval()
    batch = next(iter(dm.test_dataloader()))
    x, a = batch["image"][:4], batch["attrs"][:4]
    tgt = a.clone()
    tgt[:, 0] = 1 - tgt[:, 0]
    with torch.no_grad():
        enc = model.encode(x)
        codes = model.invert(x)
        out, again = model.edit(x, a, tgt), model.edit(x, a, tgt)
        none = model.edit(x, a, tgt, strength=0.0)
    assert enc.shape == codes.shape == (len(x), model.generator.num_ws, model.hparams.w_dim)
    assert not torch.equal(codes, enc)  # the domain-regularised refinement moved the encoder's w+
    assert out.shape == x.shape and out.dtype == x.dtype and out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, again)
    with torch.no_grad():
        assert torch.allclose(none, model.render(codes).clamp(-1, 1), atol=1e-6)
    path = tmp_path / "idinvert.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_method(str(path)).eval()
    with torch.no_grad():
        assert torch.equal(loaded.edit(x, a, tgt), out)


def test_checkpoint_without_the_encoder_options_loads_as_regression(trained, tmp_path):
    """Checkpoints written before ``encoder_objective`` / ``encoder_output`` existed load with the old encoder."""
    model, dm, trainer = trained[0], trained[1], trained[2]
    path = tmp_path / "old.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    for key in [k for k in ckpt["hyper_parameters"] if k.startswith(("encoder_o", "idinvert_"))]:
        del ckpt["hyper_parameters"][key]
    torch.save(ckpt, path)
    loaded = load_method(str(path)).eval()
    assert not loaded.idinvert and loaded.encoder.num_ws is None
    assert loaded.planned_optimizer_steps() == 2 * TINY["gan_steps"] + TINY["encoder_steps"]
    x = next(iter(dm.test_dataloader()))["image"][:2]
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), model.encode(x))


def test_check_command_reports_reconstruction_on_a_tiny_checkpoint(trained_idinvert, tmp_path, capsys):
    import json

    from methods.interfacegan.check import main

    trainer = trained_idinvert[2]
    path = tmp_path / "tiny.ckpt"
    trainer.save_checkpoint(path)
    out = tmp_path / "check.json"
    # the checkpoint's own synthetic set (its datamodule's cache), with more identities so its test split has 5
    assert main(["--ckpt", str(path), "--max-images", "5", "--batch-size", "4", "--num-identities", "30",
                 "--json", str(out), "--out", str(tmp_path / "check.png")]) == 0
    text = capsys.readouterr().out
    assert "reconstruction L1: encoder" in text and "encoder_objective=idinvert" in text
    report = json.loads(out.read_text())
    assert report["n_images"] == 5 and report["inversion_steps"] == IDINV["inversion_steps"]
    for key in ("l1_encoder", "l1_refined"):
        assert 0 < report[key] < 2
    for key in ("own_predictor_agreement_encoder", "own_predictor_agreement_refined",
                "own_predictor_accuracy_on_inputs"):
        assert 0 <= report[key] <= 1
    assert report["code_distance_refined"] > 0 and report["code_distance_sampled"] > 0
    assert (tmp_path / "check.png").exists()


def test_paper_config_two_steps_at_256px_on_a_celebahq_folder(tmp_path):
    """The paper config (StyleGAN2 paper256 widths, idinvert's w+ encoder) on a CelebAMask-HQ-layout folder at 256 px,
    on CPU: 2 optimizer steps (one discriminator and one generator update) at batch 2; the early-stop boundary search
    capped at 64 samples (its cost is not the training's). benchmarks/paper_config_smoke.py measures the paper's own
    batch."""
    from fixtures_real import paper_config_on_cpu, write_celebahq

    from benchmark.train import make_cli
    from methods.common import stylegan2

    hq = tmp_path / "hq"
    write_celebahq(hq, n=12, size=256)
    cfg, path = paper_config_on_cpu("interfacegan", hq, tmp_path, model={"num_boundary_samples": 64,
                                                                        "boundary_ratio": 0.25})
    init = cfg["model"]["init_args"]
    assert cfg["data"]["init_args"]["resolution"] == 256 and init["backbone"] == "stylegan2"
    assert init["encoder_objective"] == "idinvert" and init["encoder_output"] == "wp"
    assert cfg["trainer"]["max_steps"] == 2 * (init["gan_steps"] + init["encoder_steps"])
    cli = make_cli(["fit", "--config", str(path)])
    model = cli.model
    assert isinstance(model.generator, stylegan2.Generator) and model.generator.num_ws == 14
    assert model.image_size == 256 and cli.trainer.global_step == 2 and int(model.iteration) == 1
    assert all(o.state for o in cli.trainer.optimizers)   # G and D were each updated
    for key in ("loss_d", "loss_g", "r1", "path_length"):
        assert torch.isfinite(cli.trainer.callback_metrics[f"train/{key}"]), key
    assert bool(model.boundaries_ready)
