"""CelebAHQDataModule on tiny CelebAMask-HQ folders written in the real formats (tests/fixtures_real.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_real import corrupt_file, write_celebahq
from PIL import Image

from datamodules.base import SPLITS, DataLayoutError, UnknownAttributeError
from datamodules.celebahq import CelebAHQDataModule
from datamodules.realfaces import AnnotationError, CorruptImageError, decode
from datamodules.registry import build_datamodule


def make(root, tmp_path, **kw) -> CelebAHQDataModule:
    kw = {"resolution": 16, "batch_size": 4, "num_workers": 0, "cache_dir": str(tmp_path / "cache"), **kw}
    return CelebAHQDataModule(str(root), **kw)


def cache_files(tmp_path) -> list:
    return sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())


def test_schema_attributes_and_identities(tmp_path):
    info = write_celebahq(tmp_path / "hq")
    dm = make(tmp_path / "hq", tmp_path, attributes=["Young", "Smiling"])
    dm.setup()
    assert dm.attribute_names == ["Young", "Smiling"]
    cols = [list(dm.all_attribute_names).index(a) for a in ("Young", "Smiling")]
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (4, 3, 16, 16)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1 and batch["image"].std() > 0.05
    assert batch["attrs"].dtype == torch.float32 and batch["attrs"].shape == (4, 2)
    assert batch["identity"].dtype == torch.int64 and batch["index"].dtype == torch.int64
    assert batch["index"].tolist() == [0, 1, 2, 3]
    ds = dm.dataset("val")
    for i in range(len(ds)):
        hq = int(ds.files[i].split(".")[0])
        expected = (info.attrs[hq, cols] > 0).astype(np.float32)
        assert ds[i]["attrs"].tolist() == expected.tolist()
        assert int(ds[i]["identity"]) == info.identity[hq]
    assert build_datamodule("celebahq", root=str(tmp_path / "hq"), cache_dir=str(tmp_path / "cache")).name == "celebahq"
    rebuilt = CelebAHQDataModule(**dict(dm.hparams))  # what scoring does with a checkpoint's data record
    assert rebuilt.attribute_names == ["Young", "Smiling"] and rebuilt.resolution == 16


def test_pixels_match_a_plain_decode(tmp_path):
    write_celebahq(tmp_path / "hq", n=6, size=64)
    img = make(tmp_path / "hq", tmp_path, split_protocol="last3000", test_size=2, val_size=1).dataset("train")[0]
    ref = Image.open(tmp_path / "hq" / "CelebA-HQ-img" / "0.jpg").convert("RGB")
    ref = ref.resize((16, 16), Image.Resampling.BICUBIC)
    ref = torch.from_numpy(np.array(ref)).permute(2, 0, 1).float() / 127.5 - 1
    assert (img["image"] - ref).abs().mean() < 0.03  # draft decoding (64 -> 32 px in the DCT) changes little


def test_split_protocols(tmp_path):
    info = write_celebahq(tmp_path / "hq", n=24)
    dm = make(tmp_path / "hq", tmp_path)
    dm.setup()
    assert dm.split_protocol == "celeba"
    for code, split in enumerate(SPLITS):  # the fixture's CelebA partition of HQ image i is i % 3
        hq = [int(f.split(".")[0]) for f in dm.dataset(split).files]
        assert hq == [i for i in range(24) if info.partition[i] == code]

    (tmp_path / "hq" / "list_eval_partition.txt").unlink()
    (tmp_path / "hq" / "identity_CelebA.txt").unlink()
    dm = make(tmp_path / "hq", tmp_path, test_size=5, val_size=3)
    dm.setup()
    assert dm.split_protocol == "last3000"
    assert [len(dm.dataset(s)) for s in SPLITS] == [16, 3, 5]
    assert dm.dataset("test").files == [f"{i}.jpg" for i in range(19, 24)]
    assert (dm.dataset("train").identity == -1).all()
    with pytest.raises(DataLayoutError, match="list_eval_partition.txt"):
        make(tmp_path / "hq", tmp_path, split_protocol="celeba").setup()


def test_cache_is_reused_and_keyed_by_resolution(tmp_path, monkeypatch):
    write_celebahq(tmp_path / "hq", n=9)
    first = make(tmp_path / "hq", tmp_path, attributes=["Smiling"])
    first.setup()
    built = cache_files(tmp_path)
    assert [p.name for p in built] == ["images.npy", "meta.json"]

    def fail(*args, **kwargs):
        raise OSError("decoded a JPEG although the cache exists")

    monkeypatch.setattr(decode, "load_resized", fail)
    again = make(tmp_path / "hq", tmp_path, attributes=["Eyeglasses"])  # attributes do not change the images
    again.setup()
    assert torch.equal(again.dataset("train")[0]["image"], first.dataset("train")[0]["image"])
    assert cache_files(tmp_path) == built
    with pytest.raises(CorruptImageError):  # another resolution is another cache: it decodes (and here fails)
        make(tmp_path / "hq", tmp_path, resolution=8).setup()
    assert cache_files(tmp_path) == built  # and leaves nothing half-written


def test_missing_root_and_files(tmp_path):
    with pytest.raises(DataLayoutError, match="nowhere"):
        make(tmp_path / "nowhere", tmp_path).setup()
    for name in ("CelebAMask-HQ-attribute-anno.txt", "CelebA-HQ-to-CelebA-mapping.txt"):
        root = tmp_path / name
        write_celebahq(root, n=4)
        (root / name).unlink()
        with pytest.raises(DataLayoutError, match=name) as err:
            make(root, tmp_path).setup()
        assert "CelebA-HQ-img/0.jpg" in str(err.value)  # the message shows the expected layout


def test_unknown_attribute(tmp_path):
    with pytest.raises(UnknownAttributeError, match="Wearing_Hat"):  # lists the valid names
        make(tmp_path, tmp_path, attributes=["Smiling", "Smiles"])


@pytest.mark.parametrize("mode", ["truncate", "garbage"])
def test_corrupt_image(tmp_path, mode):
    write_celebahq(tmp_path / "hq", n=9)
    corrupt_file(tmp_path / "hq" / "CelebA-HQ-img" / "4.jpg", mode)
    with pytest.raises(CorruptImageError, match="4.jpg"):
        make(tmp_path / "hq", tmp_path).setup()
    assert cache_files(tmp_path) == []

    dm = make(tmp_path / "hq", tmp_path, skip_corrupt=True)
    dm.setup()
    assert dm.num_skipped == 1 and dm.skipped_files == ["4.jpg"]
    assert sum(len(dm.dataset(s)) for s in SPLITS) == 8
    assert all("4.jpg" not in dm.dataset(s).files for s in SPLITS)
    with pytest.raises(CorruptImageError, match="4.jpg"):  # the cache remembers; the flag still decides
        make(tmp_path / "hq", tmp_path).setup()


def test_count_mismatches(tmp_path):
    write_celebahq(tmp_path / "a", n=6, count=7)
    with pytest.raises(AnnotationError, match="7 images but the file has 6 rows"):
        make(tmp_path / "a", tmp_path).setup()

    write_celebahq(tmp_path / "b", n=6)
    (tmp_path / "b" / "CelebA-HQ-img" / "5.jpg").unlink()
    with pytest.raises(AnnotationError, match=r"missing .*5\.jpg"):
        make(tmp_path / "b", tmp_path).setup()

    write_celebahq(tmp_path / "c", n=6)
    lines = (tmp_path / "c" / "CelebA-HQ-to-CelebA-mapping.txt").read_text().splitlines()
    (tmp_path / "c" / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(AnnotationError, match="5 rows"):
        make(tmp_path / "c", tmp_path).setup()
    assert cache_files(tmp_path) == []


def test_process_pool_matches_serial_and_fails_cleanly(tmp_path):
    write_celebahq(tmp_path / "hq", n=70, size=24)  # >= SERIAL_BELOW images: decoded by a process pool
    pooled = make(tmp_path / "hq", tmp_path, preprocess_workers=2)
    pooled.prepare_data()
    serial = make(tmp_path / "hq", tmp_path / "serial", preprocess_workers=1)
    serial.prepare_data()
    assert np.array_equal(pooled.cache.open(), serial.cache.open())
    corrupt_file(tmp_path / "hq" / "CelebA-HQ-img" / "65.jpg", "truncate")
    with pytest.raises(CorruptImageError, match="65.jpg"):
        make(tmp_path / "hq", tmp_path / "broken", preprocess_workers=2).prepare_data()
    assert not any((tmp_path / "broken" / "cache").iterdir())
