"""Image grids: rows = test images, columns = input, each method's edit in each of its editing modes, and
(embedded set) the exact edit."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

from datamodules.base import float_to_uint8
from datamodules.cache import atomic_write_bytes
from evaluators.harness import evaluation_indices, method_columns, reference_indices


def _label_strip(labels: list[str], cell: int, pad: int) -> Image.Image:
    strip = Image.new("RGB", (len(labels) * (cell + pad) + pad, 14), "white")
    draw = ImageDraw.Draw(strip)
    for i, text in enumerate(labels):
        draw.text((pad + i * (cell + pad), 1), text[: max(4, cell // 6)], fill="black")
    return strip


@torch.no_grad()
def edit_grid(dm, methods: dict, attribute: str, rows: int = 8, seed: int = 0) -> tuple[Image.Image, list[str]]:
    test = dm.dataset("test")
    idx = torch.tensor(evaluation_indices(len(test), rows, seed))
    x = torch.stack([test[int(i)]["image"] for i in idx])
    src = test.attrs[idx]
    col = dm.attribute_names.index(attribute)
    tgt = src.clone()
    tgt[:, col] = 1 - tgt[:, col]
    columns, labels = [x], ["input"]
    for name, m in methods.items():
        m.eval()
        m.bind_datamodule(dm)
        for mode in m.edit_modes:  # one column per (method, editing mode); exemplars only in reference mode
            reference = None
            if mode == "reference":
                ref_i = reference_indices(test.attrs, test.identity, col, seed)[idx]
                reference = torch.stack([test[int(i)]["image"] for i in ref_i])
            cols = method_columns(m, dm.attribute_names)  # a per-attribute model edits one of the columns
            columns.append(m.edit(x, src[:, cols], tgt[:, cols], 1.0, reference).clamp(-1, 1))
            labels.append(name if len(m.edit_modes) == 1 else f"{name}:{mode[:3]}")
    if dm.has_counterfactuals:
        columns.append(dm.counterfactuals("test", idx, tgt))
        labels.append("exact")
    cells = torch.stack(columns, dim=1).flatten(0, 1)
    grid = make_grid((cells + 1) / 2, nrow=len(columns), padding=2, pad_value=1.0)
    img = Image.fromarray(float_to_uint8(grid * 2 - 1).permute(1, 2, 0).numpy())
    scale = max(1, 96 // dm.resolution)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    strip = _label_strip(labels, dm.resolution * scale, 2 * scale)
    out = Image.new("RGB", (img.width, img.height + strip.height), "white")
    out.paste(strip, (0, 0))
    out.paste(img, (0, strip.height))
    return out, labels


def grid_methods(ctx, dm, attribute: str, seed: int, loaded: dict) -> dict:
    """Each method's model that edits ``attribute`` (a per-attribute method's own model for it), by name;
    ``loaded`` keeps models across attributes ((name, unit attribute) -> model, None when not trained)."""
    from benchmark.runner import all_methods, load_unit_method, model_attribute, unit_name

    methods = {}
    for name in all_methods(ctx, dm):
        unit = (name, model_attribute(ctx, name, attribute))
        if unit not in loaded:
            try:
                loaded[unit] = load_unit_method(ctx, name, seed, dm, unit[1])
            except FileNotFoundError as err:
                loaded[unit] = None
                ctx.status(f"grid {unit_name(*unit)}", f"skipped: {err}")
        if loaded[unit] is not None:
            methods[name] = loaded[unit]
    return methods


def write_grids(ctx, dm) -> list[Path]:
    seed = ctx.preset.get("seeds", [0])[0]
    loaded: dict = {}
    written = []
    for attribute in ctx.attributes:
        methods = grid_methods(ctx, dm, attribute, seed, loaded)
        img, _ = edit_grid(dm, methods, attribute, ctx.preset.get("grids", {}).get("rows", 8), seed)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        path = ctx.out / "grids" / f"{attribute}.png"
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)
        ctx.status(f"grid {attribute}", f"wrote {path}")
    return written
