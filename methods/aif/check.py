"""Self-check of a trained ``aif`` checkpoint on the synthetic test split (no evaluator networks involved).

``python -m methods.aif.check --ckpt runs/aif-demo/checkpoints/last.ckpt --attribute Smiling``

Prints the encoder classifier's test accuracy per attribute (the paper reports it), the reconstruction L1,
and for flipping ``--attribute`` the counterfactual L1 inside / outside the region the exact edit changes
(compared with the no-op edit) and how often the method's own classifier reads the edit as the target, and
writes a PNG grid: input | reconstruction | edit | exact counterfactual.
"""

from __future__ import annotations

import torch

from methods.common.selfcheck import (  # noqa: F401 (change_region, masked_l1: re-exported)
    CounterfactualErrors,
    change_region,
    check_parser,
    load_for_check,
    masked_l1,
    write_grid,
)


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    args = check_parser("aif", __doc__).parse_args(argv)
    method, dm, ds, k = load_for_check(args)
    correct, rec_l1, self_read = [], [], []
    errors = CounterfactualErrors()
    grid = None
    for batch in dm.test_dataloader():
        x, a = batch["image"], batch["attrs"]
        mu, _, y_hat = method.encode(x)
        correct.append(((y_hat > 0.5).float() == a).float())
        rec = method.decode(mu, y_hat)
        rec_l1.append((rec - x).abs().mean(dim=(1, 2, 3)))
        tgt = a.clone()
        tgt[:, k] = 1 - tgt[:, k]
        edit = method.edit(x, a, tgt, strength=args.strength)
        self_read.append(((method.predict_attributes(edit)[:, k] > 0.5).float() == tgt[:, k]).float())
        cf = ds.counterfactuals(batch["index"], tgt)
        errors.update(x, edit, cf)
        if grid is None:
            grid = [x, rec, edit, cf]

    acc = torch.cat(correct).mean(0)
    print("encoder classifier test accuracy: " +
          ", ".join(f"{n}={v:.3f}" for n, v in zip(method.attribute_names, acc.tolist())) +
          f" (mean {acc.mean():.3f})")
    print(f"reconstruction L1 (test): {torch.cat(rec_l1).mean():.4f}")
    e = errors.summary()
    print(f"flip {args.attribute} (strength {args.strength}): cf_l1_in aif={e['edit_in']:.4f} "
          f"identity={e['noop_in']:.4f}; cf_l1_out aif={e['edit_out']:.4f} identity={e['noop_out']:.4f}")
    print(f"the encoder's own classifier reads the edited {args.attribute} as the target on "
          f"{torch.cat(self_read).mean():.3f} of the edits (not the evaluator's classifier)")
    out = write_grid(grid, args.out)
    print(f"wrote {out}: columns = input, reconstruction, edit, exact counterfactual")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
