"""CelebADataModule on tiny torchvision-layout CelebA folders written in the real formats (tests/fixtures_real.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_real import corrupt_file, write_celeba
from PIL import Image

from datamodules.base import SPLITS, DataLayoutError, UnknownAttributeError
from datamodules.celeba import CelebADataModule
from datamodules.realfaces import AnnotationError, CorruptImageError, decode
from datamodules.realfaces.decode import CropError
from datamodules.registry import build_datamodule


def make(root, tmp_path, **kw) -> CelebADataModule:
    kw = {"resolution": 16, "crop_size": 40, "batch_size": 4, "num_workers": 0,
          "cache_dir": str(tmp_path / "cache"), **kw}
    return CelebADataModule(str(root), **kw)


def cache_files(tmp_path) -> list:
    return sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())


@pytest.mark.parametrize("nested", [True, False])
def test_schema_splits_attributes_identities(tmp_path, nested):
    info = write_celeba(tmp_path / "data", n=18, nested=nested)
    dm = make(tmp_path / "data", tmp_path, attributes=["Smiling", "Male"])
    dm.setup()
    assert dm.split_protocol == "celeba" and dm.attribute_names == ["Smiling", "Male"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (4, 3, 16, 16)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    assert batch["attrs"].dtype == torch.float32 and batch["attrs"].shape == (4, 2)
    assert set(batch["attrs"].unique().tolist()) <= {0.0, 1.0}
    assert batch["identity"].dtype == torch.int64 and batch["index"].dtype == torch.int64
    cols = [dm.all_attribute_names.index(a) for a in ("Smiling", "Male")]
    for code, split in enumerate(SPLITS):
        ds = dm.dataset(split)
        rows = [info.files.index(f) for f in ds.files]
        assert rows == [i for i in range(18) if info.partition[i] == code]
        assert ds.attrs.tolist() == (info.attrs[rows][:, cols] > 0).astype(np.float32).tolist()
        assert ds.identity.tolist() == info.identity[rows].tolist()
        assert ds[len(ds) - 1]["index"] == len(ds) - 1


def test_crop_and_resize(tmp_path):
    write_celeba(tmp_path / "data", n=3, width=40, height=48)
    dm = make(tmp_path / "data", tmp_path, crop_size=32, resolution=32)
    image = dm.dataset("train")[0]["image"]
    src = np.asarray(Image.open(tmp_path / "data" / "celeba" / "img_align_celeba" / "000001.jpg").convert("RGB"))
    ref = torch.from_numpy(src[8:40, 4:36].transpose(2, 0, 1).copy()).float() / 127.5 - 1  # centre 32x32 crop
    assert torch.allclose(image, ref, atol=1 / 127.5)
    offset = make(tmp_path / "data", tmp_path, crop_size=32, crop_offset=(0, 0), resolution=32)
    ref = torch.from_numpy(src[:32, :32].transpose(2, 0, 1).copy()).float() / 127.5 - 1
    assert torch.allclose(offset.dataset("train")[0]["image"], ref, atol=1 / 127.5)
    with pytest.raises(CropError, match="000001.jpg: crop of side 41"):
        make(tmp_path / "data", tmp_path, crop_size=41).setup()


def test_identity_absent_and_cache_reused(tmp_path, monkeypatch):
    write_celeba(tmp_path / "data", n=6, identity=False)
    first = make(tmp_path / "data", tmp_path)
    first.setup()
    assert all((first.dataset(s).identity == -1).all() for s in SPLITS)
    built = cache_files(tmp_path)

    def fail(*args, **kwargs):
        raise OSError("decoded a JPEG although the cache exists")

    monkeypatch.setattr(decode, "load_resized", fail)
    again = build_datamodule("celeba", root=str(tmp_path / "data"), resolution=16, crop_size=40, num_workers=0,
                             cache_dir=str(tmp_path / "cache"))
    again.setup()
    assert torch.equal(again.dataset("val")[0]["image"], first.dataset("val")[0]["image"])
    assert cache_files(tmp_path) == built


def test_missing_root_and_files(tmp_path):
    with pytest.raises(DataLayoutError, match="nowhere"):
        make(tmp_path / "nowhere", tmp_path).setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataLayoutError, match="img_align_celeba"):
        make(tmp_path / "empty", tmp_path).setup()
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        write_celeba(tmp_path / name, n=3)
        (tmp_path / name / "celeba" / name).unlink()
        with pytest.raises(DataLayoutError, match=name):
            make(tmp_path / name, tmp_path).setup()


def test_unknown_attribute(tmp_path):
    with pytest.raises(UnknownAttributeError, match="Eyeglasses"):
        make(tmp_path, tmp_path, attributes=["Glasses"])


@pytest.mark.parametrize("mode", ["truncate", "garbage"])
def test_corrupt_image(tmp_path, mode):
    write_celeba(tmp_path / "data", n=6)
    corrupt_file(tmp_path / "data" / "celeba" / "img_align_celeba" / "000002.jpg", mode)
    with pytest.raises(CorruptImageError, match="000002.jpg"):
        make(tmp_path / "data", tmp_path).setup()
    assert cache_files(tmp_path) == []
    dm = make(tmp_path / "data", tmp_path, skip_corrupt=True)
    dm.setup()
    assert dm.num_skipped == 1 and dm.skipped_files == ["000002.jpg"]
    assert "000002.jpg" not in dm.dataset("train").files and len(dm.dataset("train")) == 3


def test_count_and_partition_mismatches(tmp_path):
    write_celeba(tmp_path / "a", n=6, count=5)
    with pytest.raises(AnnotationError, match="5 images but the file has 6 rows"):
        make(tmp_path / "a", tmp_path).setup()

    write_celeba(tmp_path / "b", n=6)
    extra = tmp_path / "b" / "celeba" / "img_align_celeba" / "000007.jpg"
    extra.write_bytes((tmp_path / "b" / "celeba" / "img_align_celeba" / "000001.jpg").read_bytes())
    with pytest.raises(AnnotationError, match=r"000007\.jpg"):
        make(tmp_path / "b", tmp_path).setup()

    write_celeba(tmp_path / "c", n=6)
    part = tmp_path / "c" / "celeba" / "list_eval_partition.txt"
    part.write_text("\n".join(part.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(AnnotationError, match="000001.jpg"):
        make(tmp_path / "c", tmp_path).setup()

    write_celeba(tmp_path / "d", n=6)
    attr = tmp_path / "d" / "celeba" / "list_attr_celeba.txt"
    attr.write_text(attr.read_text().replace("000003.jpg -1", "000003.jpg  0", 1).replace("000003.jpg  1",
                                                                                          "000003.jpg  0", 1))
    with pytest.raises(AnnotationError, match=r"values must be -1 or 1; row 3 \(000003\.jpg\)"):
        make(tmp_path / "d", tmp_path).setup()
    attr.write_text(attr.read_text().replace("000004.jpg", "000004.jpg 1", 1))
    with pytest.raises(AnnotationError, match="unequal width"):
        make(tmp_path / "d", tmp_path).setup()

    write_celeba(tmp_path / "e", n=6)
    attr = tmp_path / "e" / "celeba" / "list_attr_celeba.txt"
    attr.write_text(attr.read_text().replace(" Smiling ", " Smile ", 1))
    with pytest.raises(AnnotationError, match=r"no column\(s\) \['Smiling'\]"):
        make(tmp_path / "e", tmp_path, attributes=["Smiling"]).setup()
    assert cache_files(tmp_path) == []
