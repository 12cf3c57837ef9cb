"""Build a CelebAMask-HQ-layout folder from a few real photographs, check it loads, print the smoke-run command.

The source folder holds ``<female|male>_<CelebA image number>.jpg`` files (``/work/shared/realfaces``: ten
1024 px CelebA-HQ faces from the StarGAN v2 repository; see its README). The output folder gets what
``datamodules/celebahq.py`` reads (its ``LAYOUT``):

    CelebA-HQ-img/0.jpg ...               the photographs, copied byte for byte, ordered by CelebA number
    CelebAMask-HQ-attribute-anno.txt      count line, the 40 CelebA attribute names, '<i>.jpg' + 40 values in {-1, 1}
    CelebA-HQ-to-CelebA-mapping.txt       'idx orig_idx orig_file', orig_file = '<CelebA number>.jpg'
    list_eval_partition.txt               '<orig_file> <0|1|2>' (train / val / test)

What is real and what is not:
    * Male is real: from the file name (female_ -> -1, male_ -> 1).
    * Every other attribute is SEEDED RANDOM, not the photographs' CelebA labels (those are not available
      offline). The values are drawn so that val and test each hold both values of every attribute (the
      reference-guided methods need an exemplar of the opposite value in the test split) and train holds both.
    * The split is NOT CelebA's partition (that would put the two highest-numbered men in test and one woman in
      val): per gender, the highest CelebA number goes to test, the next to val, the rest to train, so every
      split holds both genders (5 + 5 photographs: 6 train / 2 val / 2 test).
    * No identity_CelebA.txt: the ten people are all different, so no same-identity pair exists to calibrate a
      match threshold. id_sim is measured (dlib backend, the [dlib] extra); id_match and success are NaN.

    python benchmarks/realfaces_smoke.py --output /tmp/realfaces-hq [--source /work/shared/realfaces] [--no-check]

Then run the printed ``python -m benchmark run --preset smoke ...`` command (a few CPU minutes; the scores of a
4-step smoke run on 10 faces mean nothing, it checks plumbing on real photographs).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import numpy as np

from datamodules.base import CELEBA_ATTRIBUTES
from datamodules.celebahq import ATTRIBUTE_FILE, IMAGE_DIR, MAPPING_FILE, PARTITION_FILE

SOURCE = Path("/work/shared/realfaces")
NAME = re.compile(r"^(female|male)_(\d+)\.jpg$")
TRAIN, VAL, TEST = 0, 1, 2


def read_source(source: Path) -> list[tuple[int, bool, Path]]:
    """(CelebA number, is male, path) of every ``<female|male>_<number>.jpg`` in ``source``, by number."""
    found = []
    for path in sorted(source.glob("*.jpg")):
        match = NAME.match(path.name)
        if match:
            found.append((int(match.group(2)), match.group(1) == "male", path))
    if not found:
        raise SystemExit(f"error: {source} holds no <female|male>_<CelebA number>.jpg files")
    for gender in (False, True):
        if sum(male == gender for _, male, _ in found) < 3:
            raise SystemExit(f"error: {source} needs at least 3 {'male' if gender else 'female'} photographs "
                             "(one each for test, val and train)")
    return sorted(found)


def split_of(faces: list[tuple[int, bool, Path]]) -> np.ndarray:
    """Per gender: the highest CelebA number -> test, the next -> val, the rest -> train."""
    split = np.full(len(faces), TRAIN, dtype=np.int64)
    for gender in (False, True):
        rows = [i for i, (_, male, _) in enumerate(faces) if male == gender]
        split[rows[-1]], split[rows[-2]] = TEST, VAL
    return split


def attributes(faces: list[tuple[int, bool, Path]], split: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, 40) int in {-1, 1}: Male from the file names, the rest seeded random with both values in every split."""
    rng = np.random.default_rng(seed)
    values = np.empty((len(faces), len(CELEBA_ATTRIBUTES)), dtype=np.int64)
    for code in (TRAIN, VAL, TEST):
        rows = np.nonzero(split == code)[0]
        for col in range(values.shape[1]):
            draw = rng.choice(np.array([-1, 1]), size=len(rows))
            draw[:2] = rng.permutation(np.array([-1, 1]))  # both values present in this split
            values[rows, col] = rng.permutation(draw)
    values[:, CELEBA_ATTRIBUTES.index("Male")] = [1 if male else -1 for _, male, _ in faces]
    return values


def build(source: Path, out: Path, seed: int = 0) -> list[tuple[int, bool, Path]]:
    """Write the CelebAMask-HQ layout of ``source``'s photographs into ``out`` (which must not exist yet)."""
    faces = read_source(source)
    if out.exists():
        raise SystemExit(f"error: {out} exists; pass a new folder")
    (out / IMAGE_DIR).mkdir(parents=True)
    split = split_of(faces)
    values = attributes(faces, split, seed)
    rows, mapping, partition = [], ["idx         orig_idx    orig_file"], []
    for i, (number, _, path) in enumerate(faces):
        shutil.copyfile(path, out / IMAGE_DIR / f"{i}.jpg")
        orig = f"{number:06d}.jpg"
        rows.append(f"{i}.jpg " + " ".join(f"{v:2d}" for v in values[i]))
        mapping.append(f"{i:<12d}{number - 1:<12d}{orig}")
        partition.append(f"{orig} {split[i]}")
    (out / ATTRIBUTE_FILE).write_text("\n".join([str(len(faces)), " ".join(CELEBA_ATTRIBUTES), *rows]) + "\n")
    (out / MAPPING_FILE).write_text("\n".join(mapping) + "\n")
    (out / PARTITION_FILE).write_text("\n".join(partition) + "\n")
    return faces


def check(out: Path) -> str:
    """Set the data module up on ``out`` (the smoke preset's 32 px) and write ``out/preview.png``; a summary."""
    from benchmark.preview import write_preview
    from datamodules.celebahq import CelebAHQDataModule

    dm = CelebAHQDataModule(str(out), attributes=["Smiling", "Young"], resolution=32, batch_size=8, num_workers=0)
    dm.setup()
    sizes = {s: len(dm.dataset(s)) for s in ("train", "val", "test")}
    batch = next(iter(dm.test_dataloader()))
    write_preview(dm, out / "preview.png", rows=sizes["test"])
    return (f"split_protocol={dm.split_protocol}, images {sizes}, test batch {tuple(batch['image'].shape)} in "
            f"[{float(batch['image'].min()):.2f}, {float(batch['image'].max()):.2f}]; wrote {out / 'preview.png'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=SOURCE, help="folder of <female|male>_<number>.jpg photographs")
    p.add_argument("--output", type=Path, required=True, help="the CelebAMask-HQ folder to write (must not exist)")
    p.add_argument("--results", type=Path, default=None,
                   help="--output of the printed run command (default <output>-results, never results/)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random (not real) attributes")
    p.add_argument("--no-check", action="store_true", help="do not set the data module up on the folder")
    args = p.parse_args(argv)
    out = args.output.expanduser().resolve()
    faces = build(args.source.expanduser(), out, args.seed)
    print(f"wrote {out}: {len(faces)} photographs; Male from the file names, the other 39 attributes seeded "
          "random (not real labels); split by gender (highest CelebA number test, next val); no identity labels "
          "(id_match will be NaN)")
    if not args.no_check:
        print(check(out))
    results = (args.results or out.with_name(out.name + "-results")).expanduser().resolve()
    print("smoke run (a few CPU minutes):\n"
          f"  python -m benchmark run --preset smoke --data celebahq --data-root {out} --output {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
