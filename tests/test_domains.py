"""Sampling by attribute domain (balanced sampler, per-domain batches), the crop/flip augmentation, and the data
module's ``train_sampler`` / ``train_augment`` options (defaults leave the training loader as it was)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from datamodules.augment import CropFlip
from datamodules.base import FaceDataModule
from datamodules.domains import BalancedDomainSampler, DomainBatches, DomainTagged, EmptyDomainError
from datamodules.synthfaces import SynthFacesDataModule

NAMES = ["Eyeglasses", "Smiling", "Young"]


def skewed_attrs(n: int = 2000) -> torch.Tensor:
    """(n, 3): Eyeglasses on 5 % of the rows, Smiling on 50 %, Young on 30 % (fixed, not random)."""
    i = torch.arange(n)
    return torch.stack([(i % 20 == 0), (i % 2 == 0), (i % 10 < 3)], dim=1).float()


class TableDataset(Dataset):
    """A batch-schema dataset whose image i is filled with the value i / n (so items are identifiable)."""

    def __init__(self, attrs: torch.Tensor, size: int = 4) -> None:
        self.attrs, self.size = attrs, size

    def __len__(self) -> int:
        return self.attrs.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": torch.full((3, self.size, self.size), i / len(self)), "attrs": self.attrs[i],
                "identity": torch.tensor(-1), "index": torch.tensor(i)}


# -- balanced sampler ------------------------------------------------------------------------------------
def test_balanced_sampler_draws_every_domain_equally_often() -> None:
    """The drawn domain of a draw is the domain id the sampler yields with it (2k + v): each of the 6 is drawn
    1/6 of the time within 3 binomial standard deviations, and the drawn image belongs to it."""
    attrs = skewed_attrs()
    draws = 6000
    pairs = list(BalancedDomainSampler(attrs, num_samples=draws, seed=0))
    index = torch.tensor([i for i, _ in pairs])
    domain = torch.tensor([d for _, d in pairs])
    assert len(pairs) == draws
    column, value = domain // 2, domain % 2
    assert torch.equal(attrs[index, column].long(), value)  # every draw belongs to the domain it was drawn for
    counts = torch.bincount(domain, minlength=6)
    p = 1 / 6
    tol = 3 * math.sqrt(draws * p * (1 - p))
    assert (counts - draws * p).abs().max() <= tol, counts.tolist()
    # the rare domain Eyeglasses=1 (100 images) is drawn ~1000 times, uniformly among its members
    rare = index[domain == 1]
    assert set(rare.tolist()) == set(torch.nonzero(attrs[:, 0] == 1).squeeze(1).tolist())
    # and images with Eyeglasses are far more frequent than the data set's 5 % (>= 1/6 of the draws)
    assert attrs[index, 0].mean() > 1 / 6


def test_balanced_sampler_is_seeded_and_redraws_each_pass() -> None:
    attrs = skewed_attrs(200)
    a, b, c = (BalancedDomainSampler(attrs, seed=s) for s in (3, 3, 4))
    first = list(a)
    assert first == list(b) and first != list(c)
    assert len(first) == len(a) == 200
    assert list(a) != first  # the next pass draws anew


def test_balanced_sampler_names_an_empty_domain() -> None:
    attrs = skewed_attrs(100)
    attrs[:, 1] = 1  # nobody is not smiling
    with pytest.raises(EmptyDomainError, match="Smiling=0"):
        BalancedDomainSampler(attrs, attribute_names=NAMES)
    assert issubclass(EmptyDomainError, ValueError)


def test_domain_tagged_loader_carries_the_drawn_domain() -> None:
    attrs = skewed_attrs(64)
    ds = TableDataset(attrs)
    loader = DataLoader(DomainTagged(ds), batch_size=16, sampler=BalancedDomainSampler(attrs, seed=0),
                        drop_last=True)
    batches = list(loader)
    assert len(batches) == 4
    for batch in batches:
        assert set(batch) == {"image", "attrs", "identity", "index", "domain"}
        k, v = batch["domain"] // 2, batch["domain"] % 2
        assert torch.equal(batch["attrs"][torch.arange(16), k].long(), v)
        assert torch.equal(batch["image"][:, 0, 0, 0], batch["index"] / len(ds))
    assert DomainTagged(ds)[5]["index"] == 5 and "domain" not in DomainTagged(ds)[5]


# -- per-domain batches -----------------------------------------------------------------------------------
def test_domain_batches_are_full_and_of_one_domain() -> None:
    attrs = skewed_attrs(400)            # Young=1: 120 images
    ds = TableDataset(attrs)
    members = set(torch.nonzero(attrs[:, 2] == 1).squeeze(1).tolist())
    source = DomainBatches(ds, column=2, value=1, batch_size=12, seed=0)
    seen = []
    for _ in range(20):                  # 240 images = two passes over the domain
        batch = next(source)
        assert batch["image"].shape == (12, 3, 4, 4) and batch["attrs"].shape == (12, 3)
        assert (batch["attrs"][:, 2] == 1).all()
        assert torch.equal(batch["image"][:, 0, 0, 0], batch["index"] / len(ds))
        seen += batch["index"].tolist()
    first, second = seen[:120], seen[120:]
    assert set(first) == members and set(second) == members  # each pass: every member once
    assert first != second                                   # reshuffled between passes
    again = DomainBatches(ds, column=2, value=1, batch_size=12, seed=0)
    assert torch.equal(next(again)["index"], torch.tensor(seen[:12]))
    other = DomainBatches(ds, column=2, value=1, batch_size=12, seed=1)
    assert not torch.equal(next(other)["index"], torch.tensor(seen[:12]))


def test_domain_batches_smaller_domain_than_batch_and_state_round_trip() -> None:
    attrs = skewed_attrs(60)             # Eyeglasses=1: 3 images
    ds = TableDataset(attrs)
    source = DomainBatches(ds, column=0, value=1, batch_size=8, seed=0)
    batch = next(source)
    assert batch["index"].numel() == 8 and (batch["attrs"][:, 0] == 1).all()
    state = source.state_dict()
    expected = [next(source)["index"] for _ in range(3)]
    restored = DomainBatches(ds, column=0, value=1, batch_size=8, seed=99)
    restored.load_state_dict(state)
    assert all(torch.equal(next(restored)["index"], e) for e in expected)
    attrs[:, 0] = 0
    with pytest.raises(EmptyDomainError, match="Eyeglasses=1"):
        DomainBatches(TableDataset(attrs), column=0, value=1, batch_size=8, attribute_names=NAMES)


# -- augmentation ------------------------------------------------------------------------------------------
def _structured(n: int = 64, size: int = 32) -> torch.Tensor:
    """Images in [-1, 1] with left/right and top/bottom structure (so crops and flips change pixels)."""
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(-1, 1, size)
    base = (ramp[None, :] * 0.6 + ramp[:, None] * 0.3).expand(n, 3, size, size)
    return (base + 0.1 * torch.rand(n, 3, size, size, generator=g) - 0.05).clamp(-1, 1)


def test_crop_flip_keeps_shape_and_range_is_seeded_and_changes_images() -> None:
    x = _structured()
    out = CropFlip(seed=3)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, CropFlip(seed=3)(x))          # seeded
    assert not torch.equal(out, CropFlip(seed=4)(x))
    aug = CropFlip(seed=3)
    assert not torch.equal(aug(x), aug(x))                 # each call draws anew
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    cropped = ~(same | flipped)
    # crop with p 0.5 (rarely a whole-image box), flip with p 0.5: 64 images are all three kinds
    assert same.any() and flipped.any() and 16 <= int(cropped.sum()) <= 48
    assert torch.equal(CropFlip(seed=3, crop_prob=0.0, flip_prob=0.0)(x), x)
    assert torch.equal(CropFlip(seed=3, crop_prob=0.0, flip_prob=1.0)(x), x.flip(-1))


def test_crop_box_stays_inside_the_release_ranges() -> None:
    aug = CropFlip(seed=0)
    for _ in range(300):
        top, left, h, w = aug.crop_box(64, 64)
        assert 0 <= top <= 64 - h and 0 <= left <= 64 - w
        assert 0.8 * 64 * 64 - 64 <= h * w <= 64 * 64  # area scale in [0.8, 1] (up to rounding)
        assert 0.88 <= w / h <= 1.12                   # aspect ratio in [0.9, 1.1] (up to rounding)


# -- the data module's options -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth_kwargs(tmp_path_factory) -> dict:
    return dict(attributes=["Smiling", "Eyeglasses"], resolution=32, batch_size=8, num_identities=12,
                images_per_identity=4, cache_dir=str(tmp_path_factory.mktemp("cache")))


def _epoch(loader: DataLoader) -> list[dict[str, torch.Tensor]]:
    return list(loader)


def test_default_train_loader_is_unchanged(synth_kwargs) -> None:
    """Defaults give the loader of before: a seeded RandomSampler, default collate, the same batches."""
    dm = SynthFacesDataModule(**synth_kwargs)
    loader = dm.train_dataloader()
    ds = dm.dataset("train")
    before = DataLoader(ds, batch_size=8, shuffle=True, drop_last=True, num_workers=0,
                        generator=torch.Generator().manual_seed(dm.seed))  # the loader as the code built it
    assert isinstance(loader.sampler, RandomSampler) and loader.dataset is ds
    assert loader.collate_fn is before.collate_fn
    for _ in range(2):  # two epochs: the shuffle generator carries on as before
        got, want = _epoch(loader), _epoch(before)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_options_change_only_the_train_loader(synth_kwargs) -> None:
    plain = SynthFacesDataModule(**synth_kwargs)
    dm = SynthFacesDataModule(**synth_kwargs, train_sampler="balanced", train_augment="crop_flip")
    assert dm.config_key() == plain.config_key()  # evaluator caches key on the data, not on training options
    assert dm.hparams.train_sampler == "balanced"  # recorded for checkpoints
    for a, b in zip(dm.val_dataloader(), plain.val_dataloader()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    batches = _epoch(dm.train_dataloader())
    assert len(batches) == len(dm.dataset("train")) // 8
    ds = dm.dataset("train")
    changed = 0
    for batch in batches:
        k, v = batch["domain"] // 2, batch["domain"] % 2
        assert torch.equal(batch["attrs"][torch.arange(8), k].long(), v)
        assert batch["image"].min() >= -1 and batch["image"].max() <= 1
        raw = torch.stack([ds[int(i)]["image"] for i in batch["index"]])
        changed += int((batch["image"] != raw).flatten(1).any(1).sum())
    assert changed > 0


def test_augment_alone_keeps_the_shuffle_order(synth_kwargs) -> None:
    plain = SynthFacesDataModule(**synth_kwargs)
    aug = SynthFacesDataModule(**synth_kwargs, train_augment="crop_flip")
    a, b = _epoch(plain.train_dataloader()), _epoch(aug.train_dataloader())
    assert all(torch.equal(x["index"], y["index"]) and torch.equal(x["attrs"], y["attrs"]) for x, y in zip(a, b))
    assert "domain" not in b[0]
    assert any(not torch.equal(x["image"], y["image"]) for x, y in zip(a, b))


def test_unknown_options_are_rejected(synth_kwargs) -> None:
    with pytest.raises(ValueError, match="train_sampler.*shuffle.*balanced"):
        SynthFacesDataModule(**synth_kwargs, train_sampler="weighted")
    with pytest.raises(ValueError, match="train_augment.*none.*crop_flip"):
        SynthFacesDataModule(**synth_kwargs, train_augment="flip")


def test_every_data_module_takes_the_options() -> None:
    from datamodules.registry import _DATAMODULES, _discover

    _discover()
    assert {"synthfaces", "celebahq", "celeba"} <= set(_DATAMODULES)
    for cls in _DATAMODULES.values():
        params = inspect.signature(cls.__init__).parameters
        assert params["train_sampler"].default == "shuffle" and params["train_augment"].default == "none", cls
    assert issubclass(SynthFacesDataModule, FaceDataModule)


def test_real_data_module_passes_the_options_through(tmp_path) -> None:
    from fixtures_real import write_celebahq

    from datamodules.celebahq import CelebAHQDataModule

    write_celebahq(tmp_path / "hq", n=36)
    dm = CelebAHQDataModule(str(tmp_path / "hq"), attributes=["Young", "Smiling"], resolution=16, batch_size=4,
                            num_workers=0, cache_dir=str(tmp_path / "cache"), preprocess_workers=1,
                            train_sampler="balanced", train_augment="crop_flip")
    assert (dm.train_sampler, dm.train_augment) == ("balanced", "crop_flip")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 16, 16) and batch["domain"].shape == (4,)
    k, v = batch["domain"] // 2, batch["domain"] % 2
    assert torch.equal(batch["attrs"][torch.arange(4), k].long(), v)
