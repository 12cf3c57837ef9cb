"""``python -m benchmark edit``: edit your own images with a trained method.

Images are centre-cropped to a square and resized to the method's resolution (as the data sets are), edited
to set ``--attribute`` to ``--value`` and written as PNGs to ``--output`` (existing files are not overwritten
unless ``--overwrite``). The images' own attributes are unknown: give the ones you know with ``--source
Young=1 Eyeglasses=0``; the edited attribute is assumed to have the opposite of ``--value`` and the others 0.
Reference-guided methods need ``--reference IMAGE`` (an exemplar that has the target value).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from datamodules.base import float_to_uint8, uint8_to_float
from methods.base import get_method, load_method

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class UnreadableImageError(ValueError):
    """An input image could not be decoded."""


def load_image(path: Path, size: int) -> torch.Tensor:
    """(3, size, size) float in [-1, 1]: centre square crop, antialiased resize."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = min(w, h)
            im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            im = im.resize((size, size), Image.BICUBIC)
            data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).reshape(size, size, 3)
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise UnreadableImageError(f"cannot read image {path}: {err}") from err
    return uint8_to_float(data.permute(2, 0, 1))


def parse_source(items: list[str], names: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in names or value not in {"0", "1"}:
            raise ValueError(f"--source takes NAME=0|1 with NAME among {names}; got {item!r}")
        out[name] = float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark edit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", required=True)
    p.add_argument("--ckpt", default=None, help="checkpoint of a trained method")
    p.add_argument("--attribute", required=True)
    p.add_argument("--value", type=int, choices=[0, 1], default=1, help="1 adds the attribute, 0 removes it")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--source", nargs="*", default=[], help="known attributes of the inputs, NAME=0|1")
    p.add_argument("--reference", default=None, help="exemplar image, for reference-guided methods")
    p.add_argument("--input", required=True, help="a folder of images (or one image)")
    p.add_argument("--output", required=True)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--skip-unreadable", action="store_true", help="skip (and count) unreadable files")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)

    from benchmark import preflight

    preflight.check_methods([args.method])
    cls = get_method(args.method)
    inp = Path(args.input)
    if not inp.exists():
        raise preflight.UserError(f"input {inp} does not exist; pass --input with a folder of images or one image")
    if cls.needs_training:
        if not args.ckpt:
            raise SystemExit(f"error: {args.method} needs --ckpt (a trained checkpoint)")
        preflight.check_checkpoint(args.ckpt, args.method)  # another method's checkpoint is refused, not used
        method = load_method(args.ckpt)
    else:
        raise SystemExit(f"error: {args.method} is a reference point; it edits only its own data set")
    method.eval()
    names = method.attribute_names
    if args.attribute not in names:
        raise SystemExit(f"error: {args.method} was trained on {names}; {args.attribute!r} is not among them")
    src_row = torch.zeros(len(names))
    for k, v in parse_source(args.source, names).items():
        src_row[names.index(k)] = v
    col = names.index(args.attribute)
    src_row[col] = 1.0 - args.value
    tgt_row = src_row.clone()
    tgt_row[col] = float(args.value)

    files = [inp] if inp.is_file() else sorted(f for f in inp.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"error: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {inp}")
    reference = load_image(Path(args.reference), method.image_size) if args.reference else None
    if method.needs_reference and reference is None:
        raise SystemExit(f"error: {args.method} is reference-guided: pass --reference IMAGE with the target value")
    out = Path(args.output)
    existing = [out / f"{f.stem}_{args.attribute}{args.value}.png" for f in files]
    existing = [t for t in existing if t.exists()]
    if existing and not args.overwrite:  # refused before any edit, so a call writes all its outputs or none
        raise SystemExit(f"error: {existing[0]} exists ({len(existing)} output(s) in all); pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".edit-"))
    try:
        written, skipped = edit_all(args, method, files, src_row, tgt_row, reference, staging)
        for tmp in sorted(staging.iterdir()):
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, out / tmp.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {written} edited image(s) to {out}" + (f"; skipped {len(skipped)} unreadable: "
                                                         f"{', '.join(map(str, skipped))}" if skipped else ""))
    return 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def edit_all(args: argparse.Namespace, method, files: list[Path], src_row: torch.Tensor,  # noqa: ANN001
             tgt_row: torch.Tensor, reference: torch.Tensor | None, staging: Path) -> tuple[int, list[Path]]:
    """Edit every file into ``staging`` (moved into the output only when all succeeded)."""
    skipped, written = [], 0
    for s in range(0, len(files), args.batch_size):
        batch_files, images = [], []
        for f in files[s:s + args.batch_size]:
            target = staging / f"{f.stem}_{args.attribute}{args.value}.png"
            try:
                images.append(load_image(f, method.image_size))
                batch_files.append(target)
            except UnreadableImageError as err:
                if not args.skip_unreadable:
                    raise SystemExit(f"error: {err} (pass --skip-unreadable to skip such files)") from err
                skipped.append(f)
        if not images:
            continue
        x = torch.stack(images)
        ref = reference[None].expand_as(x) if reference is not None else None
        with torch.no_grad():
            edited = method.edit(x, src_row.expand(len(x), -1).clone(), tgt_row.expand(len(x), -1).clone(),
                                 args.strength, ref)
        for target, img in zip(batch_files, float_to_uint8(edited)):
            buf = io.BytesIO()
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="PNG")
            target.write_bytes(buf.getvalue())
            written += 1
    return written, skipped


if __name__ == "__main__":
    sys.exit(main())
