"""The one-time preprocessing cache of a real data set: every image decoded, cropped and resized once.

Layout: ``cache_root(cache_dir)/<data set>/<config_hash(key)>/``
    images.npy  uint8 (N, 3, R, R), row i = the i-th file given, read back as a memory map
    meta.json   the key, the shape and the files that could not be decoded (zero rows)
Both are written through temporary files and ``os.replace``; ``meta.json`` last, so a folder without it is
incomplete and rebuilt. On any error the temporary file and the folder it was written into are removed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from datamodules.cache import atomic_write_bytes, cache_root, config_hash
from datamodules.realfaces import decode
from datamodules.realfaces.decode import ResizeSpec

log = logging.getLogger(__name__)
CACHE_VERSION = 1  # bump when the preprocessing's output changes
SERIAL_BELOW = 64  # fewer images than this are decoded in-process (a pool costs more than it saves)


class CorruptImageError(OSError):
    """An image file that cannot be decoded (corrupt, truncated, not an image)."""


@dataclass
class ImageCache:
    """A built cache: ``images_path`` (N, 3, R, R) uint8 ``.npy``; ``corrupt`` = indices skipped (zero rows)."""

    folder: Path
    images_path: Path
    num_images: int
    corrupt: dict[int, str]

    def open(self) -> np.ndarray:
        return np.load(self.images_path, mmap_mode="r")


def _decode_all(paths: Sequence[str], spec: ResizeSpec, workers: int) -> Iterator[tuple[bool, np.ndarray | str]]:
    jobs = [(p, spec) for p in paths]
    if workers <= 1 or len(jobs) < SERIAL_BELOW:
        yield from map(decode.try_load_resized, jobs)
        return
    chunk = max(1, min(64, len(jobs) // (workers * 8)))
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        yield from pool.map(decode.try_load_resized, jobs, chunksize=chunk)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _load_existing(folder: Path, num_images: int, spec: ResizeSpec) -> ImageCache | None:
    meta_path, images_path = folder / "meta.json", folder / "images.npy"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(images_path, mmap_mode="r")
        expected = (num_images, 3, spec.resolution, spec.resolution)
        if tuple(images.shape) != expected or images.dtype != np.uint8:
            raise ValueError(f"shape {tuple(images.shape)} {images.dtype}, expected {expected} uint8")
        corrupt = {int(k): v for k, v in meta["corrupt"].items()}
    except Exception as err:  # an unreadable cache is rebuilt, never trusted
        log.warning("preprocessing cache %s is unusable (%s); rebuilding", folder, err)
        return None
    return ImageCache(folder, images_path, num_images, corrupt)


def build_image_cache(dataset: str, paths: Sequence[str], names: Sequence[str], spec: ResizeSpec, key: dict,
                      cache_dir: str | None = None, skip_corrupt: bool = False, workers: int | None = None,
                      ) -> ImageCache:
    """Load or build the cache of ``paths`` (decoded in order). ``names`` label the files in errors and logs.

    ``key`` must hold everything besides ``spec`` that changes the result (root, file list, ...).
    A file that cannot be decoded raises ``CorruptImageError`` naming it; with ``skip_corrupt`` it is left as a
    zero row, recorded in ``corrupt`` and logged. A cache built with skipped files raises the same error
    when later loaded without ``skip_corrupt``.
    """
    full_key = {"version": CACHE_VERSION, "dataset": dataset, "num_images": len(paths), **key, "resize": spec.key()}
    folder = cache_root(cache_dir) / dataset / config_hash(full_key)
    cache = _load_existing(folder, len(paths), spec)
    if cache is None:
        cache = _build(folder, paths, names, spec, full_key, skip_corrupt, workers or default_workers())
    else:
        log.info("%s: using the preprocessing cache %s", dataset, folder)
    if cache.corrupt:
        listing = "; ".join(f"{names[i]} ({why})" for i, why in list(cache.corrupt.items())[:5])
        if not skip_corrupt:
            raise CorruptImageError(f"{len(cache.corrupt)} image(s) cannot be decoded: {listing}. "
                                    "Replace them, or pass skip_corrupt=True to leave them out.")
        log.warning("%s: skipped %d image(s) that cannot be decoded: %s", dataset, len(cache.corrupt), listing)
    return cache


def _build(folder: Path, paths: Sequence[str], names: Sequence[str], spec: ResizeSpec, key: dict,
           skip_corrupt: bool, workers: int) -> ImageCache:
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    images_path, meta_path = folder / "images.npy", folder / "meta.json"
    tmp = folder / f".images.npy.{uuid.uuid4().hex}.tmp"
    shape = (len(paths), 3, spec.resolution, spec.resolution)
    corrupt: dict[int, str] = {}
    try:
        meta_path.unlink(missing_ok=True)  # a stale folder counts as incomplete until the new meta lands
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        desc = f"preprocessing {key['dataset']} to {spec.resolution}px"
        with tqdm(total=len(paths), desc=desc, unit="img", mininterval=1.0) as bar, \
                closing(_decode_all(paths, spec, workers)) as results:
            for i, (ok, result) in enumerate(results):
                if ok:
                    out[i] = result
                elif skip_corrupt:
                    corrupt[i] = str(result)
                    out[i] = 0
                else:
                    raise CorruptImageError(f"cannot decode image {names[i]} ({paths[i]}): {result}. "
                                            "Replace it, or pass skip_corrupt=True to leave it out.")
                bar.update(1)
        out.flush()
        del out
        os.replace(tmp, images_path)
        meta = {"key": key, "shape": list(shape), "corrupt": {str(i): why for i, why in corrupt.items()},
                "files": {str(i): names[i] for i in corrupt}}
        atomic_write_bytes(meta_path, json.dumps(meta, indent=1).encode())
    except BaseException:
        tmp.unlink(missing_ok=True)
        if created:
            shutil.rmtree(folder, ignore_errors=True)
            with suppress(OSError):
                folder.parent.rmdir()  # the data set's folder too, when this left it empty
        else:
            images_path.unlink(missing_ok=True)
        raise
    log.info("wrote the preprocessing cache %s (%d images, %d skipped)", folder, len(paths), len(corrupt))
    return ImageCache(folder, images_path, len(paths), corrupt)
