"""Self-check of a trained ``interfacegan`` checkpoint: how well it inverts the synthetic test split at strength 0.

``python -m methods.interfacegan.check --ckpt runs/interfacegan-demo/checkpoints/last.ckpt [--max-images 256]``

A diagnostic outside the method, and it uses no evaluator network: it prints the pixel L1 between each test image
and its reconstruction from the encoder alone and from the encoder plus the edit-time refinement
(``inversion_steps`` of domain-regularised optimisation, what ``edit`` at strength 0 renders), how often the
method's own attribute predictor reads the same attributes on the reconstruction as on the input, and the distance
of the inverted codes from the mean w next to that of sampled codes (inverted codes far beyond the samples' spread
are off the generator's manifold, where edits collapse). The synthetic set is the one the checkpoint was trained on
(its datamodule's settings), unless ``--num-identities`` / ``--images-per-identity`` / ``--seed`` say otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from datamodules.synthfaces import SynthFacesDataModule
from methods.base import load_method
from methods.common.selfcheck import write_grid
from methods.interfacegan.module import InterFaceGAN


def image_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean |a - b| over every pixel (B,), images (B, 3, H, W) in [-1, 1]."""
    return (a - b).abs().flatten(1).mean(1)


def code_distance(method: InterFaceGAN, codes: torch.Tensor) -> torch.Tensor:
    """(B,) L2 distance of codes (B, D) or w+ (B, num_ws, D) from the generator's mean w (0 for z codes), w+
    codes by the mean over their layers of each layer's distance."""
    w_space = method.hparams.latent_space == "w"
    origin = method.generator_ema.mapping.w_avg if w_space else codes.new_zeros(codes.shape[-1])
    dist = (codes - origin).norm(dim=-1)
    return dist.mean(1) if dist.ndim == 2 else dist


@torch.no_grad()
def reconstruction_report(method: InterFaceGAN, loader, max_images: int | None = None,  # noqa: ANN001
                          ) -> tuple[dict[str, float], list[torch.Tensor] | None]:
    """Reconstruction figures of ``method`` (eval mode) over the first ``max_images`` images of ``loader``.

    Returns ({name: value}, the first batch's grid columns (each (B, 3, H, W)): input | encoder | encoder +
    refinement, or None)."""
    method.eval()
    l1_enc, l1_opt, agree_enc, agree_opt, pred_acc, dist_opt = [], [], [], [], [], []
    grid, seen = None, 0
    for batch in loader:
        x, a = batch["image"], batch["attrs"]
        if max_images is not None:
            x, a = x[:max_images - seen], a[:max_images - seen]
        if len(x) == 0:
            break
        with torch.inference_mode(False):
            rec_enc = method.render(method.encode(x)).clamp(-1, 1)
        codes = method.invert(x)
        with torch.inference_mode(False):
            rec_opt = method.render(codes).clamp(-1, 1)
        l1_enc.append(image_l1(rec_enc, x))
        l1_opt.append(image_l1(rec_opt, x))
        read_in = method.predictor(x) > 0
        agree_enc.append(((method.predictor(rec_enc) > 0) == read_in).float())
        agree_opt.append(((method.predictor(rec_opt) > 0) == read_in).float())
        pred_acc.append((read_in.float() == a.round()).float())
        dist_opt.append(code_distance(method, codes))
        if grid is None:
            grid = [x, rec_enc, rec_opt]
        seen += len(x)
        if max_images is not None and seen >= max_images:
            break
    g = torch.Generator().manual_seed(0)
    sampled = code_distance(method, method.sample_codes(min(seen, 1000) or 1, g))
    report = {
        "n_images": seen,
        "inversion_steps": int(method.hparams.inversion_steps),
        "l1_encoder": torch.cat(l1_enc).mean().item(),
        "l1_refined": torch.cat(l1_opt).mean().item(),
        "own_predictor_agreement_encoder": torch.cat(agree_enc).mean().item(),
        "own_predictor_agreement_refined": torch.cat(agree_opt).mean().item(),
        "own_predictor_accuracy_on_inputs": torch.cat(pred_acc).mean().item(),
        "code_distance_refined": torch.cat(dist_opt).mean().item(),
        "code_distance_sampled": sampled.mean().item(),
    }
    per_attr = torch.cat(agree_opt).mean(0)
    report.update({f"own_predictor_agreement_refined/{name}": v
                   for name, v in zip(method.attribute_names, per_attr.tolist())})
    return report, grid


def check_datamodule(ckpt_path: str, method: InterFaceGAN, batch_size: int, **overrides) -> SynthFacesDataModule:
    """The synthetic set of the checkpoint's own datamodule (when it was synthfaces), ``overrides`` applied."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    saved = dict(ckpt.get("datamodule_hyper_parameters") or {})
    keep = ("seed", "num_identities", "images_per_identity", "correlation", "nuisance", "split_fractions",
            "cache_dir")
    args = {k: saved[k] for k in keep if k in saved} if "num_identities" in saved else {}
    args.update({k: v for k, v in overrides.items() if v is not None})
    return SynthFacesDataModule(attributes=method.attribute_names, resolution=method.image_size,
                                batch_size=batch_size, **args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m methods.interfacegan.check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--max-images", type=int, default=None, help="first N test images (default: the whole split)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=None, help="data seed of the synthetic set (default: the ckpt's)")
    p.add_argument("--num-identities", type=int, default=None)
    p.add_argument("--images-per-identity", type=int, default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", default=None, help="write a PNG grid here: input | encoder | encoder + refinement")
    p.add_argument("--json", default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)

    method = load_method(args.ckpt).eval()
    if not isinstance(method, InterFaceGAN):
        p.error(f"{args.ckpt} is a {type(method).__name__} checkpoint, not interfacegan")
    dm = check_datamodule(args.ckpt, method, args.batch_size, seed=args.seed, num_identities=args.num_identities,
                          images_per_identity=args.images_per_identity, cache_dir=args.cache_dir)
    dm.setup()
    report, grid = reconstruction_report(method, dm.test_dataloader(), args.max_images)
    h = method.hparams
    print(f"interfacegan {args.ckpt}: encoder_objective={h.get('encoder_objective', 'regression')} "
          f"encoder_output={h.get('encoder_output', 'w')}, {report['n_images']} test images, strength 0")
    print(f"reconstruction L1: encoder {report['l1_encoder']:.4f}, encoder + {report['inversion_steps']} "
          f"refinement steps {report['l1_refined']:.4f}")
    print(f"own predictor reads the input's attributes on the reconstruction: encoder "
          f"{report['own_predictor_agreement_encoder']:.3f}, refined {report['own_predictor_agreement_refined']:.3f} "
          f"(its accuracy on the inputs: {report['own_predictor_accuracy_on_inputs']:.3f}; not the evaluator's "
          f"classifier)")
    print(f"code distance from the mean w: inverted {report['code_distance_refined']:.3f}, sampled "
          f"{report['code_distance_sampled']:.3f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.out and grid is not None:
        out = write_grid(grid, args.out)
        print(f"wrote {out}: columns = input, encoder reconstruction, refined reconstruction")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
