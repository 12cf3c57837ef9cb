"""Self-check of a trained ``fadernet`` checkpoint on the synthetic test split (no evaluator networks involved).

``python -m methods.fadernet.check --ckpt runs/fadernet-demo/checkpoints/last.ckpt --attribute Smiling``

Prints what the official evaluator logs each epoch — the reconstruction MSE and the latent discriminator's
accuracy per attribute (chance = the majority rate when the code holds no attribute information) — and, for
flipping ``--attribute``, the counterfactual L1 inside / outside the region the exact edit changes (beside the
no-op edit's) and how far the edit moves from the reconstruction, and writes a PNG grid:
input | reconstruction | edit | exact counterfactual.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.utils import save_image

from datamodules.synthfaces import SynthFacesDataModule
from methods.aif.check import change_region, masked_l1
from methods.base import load_method
from methods.fadernet.networks import one_hot_pairs


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m methods.fadernet.check", description=__doc__)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--attribute", default="Smiling")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="data seed of the synthetic set")
    p.add_argument("--out", default="results/fadernet/check.png")
    args = p.parse_args(argv)

    method = load_method(args.ckpt).eval()
    dm = SynthFacesDataModule(attributes=method.attribute_names, resolution=method.image_size, batch_size=256,
                              seed=args.seed)
    ds = dm.dataset("test")
    k = method.attribute_index(args.attribute)
    dis_correct, labels, mse, l1_in, l1_out, id_in, id_out = [], [], [], [], [], [], []
    moved_in, moved_out = [], []
    grid = None
    for batch in dm.test_dataloader():
        x, a = batch["image"], batch["attrs"]
        z = method.encode(x)
        logits = method.lat_dis(z).reshape(x.shape[0], -1, 2)
        dis_correct.append((logits.argmax(-1) == a.long()).float())
        labels.append(a)
        rec = method.decode(z, one_hot_pairs(a))
        mse.append(((rec - x) ** 2).mean(dim=(1, 2, 3)))
        tgt = a.clone()
        tgt[:, k] = 1 - tgt[:, k]
        edit = method.edit(x, a, tgt, strength=args.strength)
        cf = ds.counterfactuals(batch["index"], tgt)
        region = change_region(x, cf)
        l1_in.append(masked_l1(edit, cf, region))
        l1_out.append(masked_l1(edit, cf, ~region))
        id_in.append(masked_l1(x, cf, region))
        id_out.append(masked_l1(x, cf, ~region))
        moved_in.append(masked_l1(edit, rec, region))  # how far the edit moves from the reconstruction
        moved_out.append(masked_l1(edit, rec, ~region))
        if grid is None:
            n = min(8, x.shape[0])
            grid = torch.stack([x[:n], rec[:n], edit[:n], cf[:n]], dim=1).flatten(0, 1)

    acc = torch.cat(dis_correct).mean(0)
    rate = torch.cat(labels).mean(0)
    majority = torch.maximum(rate, 1 - rate)
    print("latent discriminator test accuracy (majority rate): " + ", ".join(
        f"{n}={v:.3f} ({m:.3f})" for n, v, m in zip(method.attribute_names, acc.tolist(), majority.tolist())))
    print(f"reconstruction MSE (test): {torch.cat(mse).mean():.5f}")

    def nanmean(t: list[torch.Tensor]) -> float:
        return torch.cat(t).nanmean().item()

    print(f"flip {args.attribute} (strength {args.strength}): counterfactual L1 inside the changed region "
          f"{nanmean(l1_in):.4f} (no-op edit {nanmean(id_in):.4f}), outside {nanmean(l1_out):.4f} "
          f"(no-op {nanmean(id_out):.4f})")
    print(f"edit vs reconstruction L1: inside the changed region {nanmean(moved_in):.4f}, outside "
          f"{nanmean(moved_out):.4f} (0 = the attribute code is ignored)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image((grid + 1) / 2, out, nrow=4)
    print(f"grid (input | reconstruction | edit | exact counterfactual): {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
