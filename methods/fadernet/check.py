"""Self-check of a trained ``fadernet`` checkpoint on the synthetic test split (no evaluator networks involved).

``python -m methods.fadernet.check --ckpt runs/fadernet-demo/checkpoints/last.ckpt --attribute Smiling``

Prints what the official evaluator logs each epoch — the reconstruction MSE and the latent discriminator's
accuracy per attribute (chance = the majority rate when the code holds no attribute information) — and, for
flipping ``--attribute``, the counterfactual L1 inside / outside the region the exact edit changes (beside the
no-op edit's) and how far the edit moves from the reconstruction, and writes a PNG grid:
input | reconstruction | edit | exact counterfactual.
"""

from __future__ import annotations

import torch

from methods.common.selfcheck import CounterfactualErrors, check_parser, load_for_check, masked_l1, nanmean, write_grid
from methods.fadernet.networks import one_hot_pairs


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    args = check_parser("fadernet", __doc__).parse_args(argv)
    method, dm, ds, k = load_for_check(args)
    dis_correct, labels, mse, moved_in, moved_out = [], [], [], [], []
    errors = CounterfactualErrors()
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
        region = errors.update(x, edit, cf)
        moved_in.append(masked_l1(edit, rec, region))  # how far the edit moves from the reconstruction
        moved_out.append(masked_l1(edit, rec, ~region))
        if grid is None:
            grid = [x, rec, edit, cf]

    acc = torch.cat(dis_correct).mean(0)
    rate = torch.cat(labels).mean(0)
    majority = torch.maximum(rate, 1 - rate)
    print("latent discriminator test accuracy (majority rate): " + ", ".join(
        f"{n}={v:.3f} ({m:.3f})" for n, v, m in zip(method.attribute_names, acc.tolist(), majority.tolist())))
    print(f"reconstruction MSE (test): {torch.cat(mse).mean():.5f}")
    e = errors.summary()
    print(f"flip {args.attribute} (strength {args.strength}): counterfactual L1 inside the changed region "
          f"{e['edit_in']:.4f} (no-op edit {e['noop_in']:.4f}), outside {e['edit_out']:.4f} "
          f"(no-op {e['noop_out']:.4f})")
    print(f"edit vs reconstruction L1: inside the changed region {nanmean(moved_in):.4f}, outside "
          f"{nanmean(moved_out):.4f} (0 = the attribute code is ignored)")
    out = write_grid(grid, args.out)
    print(f"grid (input | reconstruction | edit | exact counterfactual): {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
