"""The shared pieces of the methods' self-check commands (methods/common/selfcheck.py)."""

import math

import torch
from PIL import Image

from methods.common.selfcheck import CounterfactualErrors, change_region, check_parser, masked_l1, write_grid


def test_change_region_marks_changed_pixels_dilated_and_ignores_quantisation_noise():
    x = torch.zeros(1, 3, 8, 8)
    cf = x.clone()
    cf[0, :, 4, 4] = 0.5                      # one changed pixel
    cf[0, 0, 0, 0] = 1.0 / 127.5              # below the tolerance of one 8-bit step
    region = change_region(x, cf)
    assert region.shape == (1, 8, 8)
    assert region[0, 3:6, 3:6].all() and int(region.sum()) == 9


def test_masked_l1_averages_inside_the_mask_and_is_nan_when_empty():
    a, b = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    a[0, :, 0, 0] = 2.0
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[0, 0, :2] = True                     # image 0: two pixels, one of them off by 2
    out = masked_l1(a, b, mask)
    assert out[0].item() == 1.0 and math.isnan(out[1].item())


def test_counterfactual_errors_compare_the_edit_with_the_no_op():
    x = torch.zeros(2, 3, 8, 8)
    cf = x.clone()
    cf[:, :, 2:4, 2:4] = 1.0
    errors = CounterfactualErrors()
    errors.update(x, cf, cf)                  # the exact edit: no error anywhere
    e = errors.summary()
    assert e["edit_in"] == 0.0 and e["edit_out"] == 0.0
    assert e["noop_in"] > 0.0 and e["noop_out"] == 0.0


def test_parser_defaults_and_grid(tmp_path):
    args = check_parser("aif", None).parse_args(["--ckpt", "x.ckpt"])
    assert (args.attribute, args.strength, args.out) == ("Smiling", 1.0, "results/aif/check.png")
    cols = [torch.rand(10, 3, 8, 8) * 2 - 1 for _ in range(4)]
    out = write_grid(cols, tmp_path / "g.png", rows=3)
    w, h = Image.open(out).size
    assert (w, h) == (4 * 10 + 2, 3 * 10 + 2)   # 8 px + 2 px padding per cell, plus the outer padding
