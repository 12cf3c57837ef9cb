"""Self-check of a trained ``aif`` checkpoint on the synthetic test split (no evaluator networks involved).

``python -m methods.aif.check --ckpt runs/aif-demo/checkpoints/last.ckpt --attribute Smiling``

Prints the encoder classifier's test accuracy per attribute (the paper reports it), the reconstruction L1,
and for flipping ``--attribute`` the counterfactual L1 inside / outside the region the exact edit changes
(compared with the no-op edit) and how often the method's own classifier reads the edit as the target, and
writes a PNG grid: input | reconstruction | edit | exact counterfactual.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import save_image

from datamodules.synthfaces import SynthFacesDataModule
from methods.base import load_method


def change_region(x: torch.Tensor, cf: torch.Tensor, tol: float = 2.0 / 127.5, dilate: int = 1) -> torch.Tensor:
    """(B, H, W) bool: pixels where the exact counterfactual differs from the input, dilated."""
    changed = ((cf - x).abs() > tol).any(dim=1, keepdim=True).float()
    return F.max_pool2d(changed, 2 * dilate + 1, stride=1, padding=dilate)[:, 0] > 0


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image mean |a - b| (channel mean) over ``mask`` (B, H, W); NaN where the mask is empty."""
    err = (a - b).abs().mean(1)
    count = mask.flatten(1).sum(1).float()
    return torch.where(count > 0, (err * mask).flatten(1).sum(1) / count.clamp(min=1), torch.nan)


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m methods.aif.check", description=__doc__)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--attribute", default="Smiling")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="data seed of the synthetic set")
    p.add_argument("--out", default="results/aif/check.png")
    args = p.parse_args(argv)

    method = load_method(args.ckpt).eval()
    dm = SynthFacesDataModule(attributes=method.attribute_names, resolution=method.image_size, batch_size=256,
                              seed=args.seed)
    ds = dm.dataset("test")
    k = method.attribute_index(args.attribute)
    correct, rec_l1, l1_in, l1_out, id_in, id_out, self_read = [], [], [], [], [], [], []
    grid = None
    for batch in dm.test_dataloader():
        x, a = batch["image"], batch["attrs"]
        mu, _, y_hat = method.encode(x)
        correct.append(((y_hat > 0.5).float() == a).float())
        rec_l1.append((method.decode(mu, y_hat) - x).abs().mean(dim=(1, 2, 3)))
        tgt = a.clone()
        tgt[:, k] = 1 - tgt[:, k]
        edit = method.edit(x, a, tgt, strength=args.strength)
        self_read.append(((method.predict_attributes(edit)[:, k] > 0.5).float() == tgt[:, k]).float())
        cf = ds.counterfactuals(batch["index"], tgt)
        region = change_region(x, cf)
        l1_in.append(masked_l1(edit, cf, region))
        l1_out.append(masked_l1(edit, cf, ~region))
        id_in.append(masked_l1(x, cf, region))
        id_out.append(masked_l1(x, cf, ~region))
        if grid is None:
            n = min(8, x.shape[0])
            grid = torch.stack([x[:n], method.decode(mu[:n], y_hat[:n]), edit[:n], cf[:n]], dim=1).flatten(0, 1)

    acc = torch.cat(correct).mean(0)
    print("encoder classifier test accuracy: " +
          ", ".join(f"{n}={v:.3f}" for n, v in zip(method.attribute_names, acc.tolist())) +
          f" (mean {acc.mean():.3f})")
    print(f"reconstruction L1 (test): {torch.cat(rec_l1).mean():.4f}")

    def nanmean(t: list[torch.Tensor]) -> float:
        return torch.cat(t).nanmean().item()

    print(f"flip {args.attribute} (strength {args.strength}): cf_l1_in aif={nanmean(l1_in):.4f} "
          f"identity={nanmean(id_in):.4f}; cf_l1_out aif={nanmean(l1_out):.4f} identity={nanmean(id_out):.4f}")
    print(f"the encoder's own classifier reads the edited {args.attribute} as the target on "
          f"{torch.cat(self_read).mean():.3f} of the edits (not the evaluator's classifier)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image((grid + 1) / 2, out, nrow=4, padding=2, pad_value=1.0)
    print(f"wrote {out}: columns = input, reconstruction, edit, exact counterfactual")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
