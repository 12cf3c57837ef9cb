"""Vectorised, anti-aliased renderer of procedural faces.

Every shape is drawn from a signed distance ``sd`` (negative inside, in face units) as coverage
``clamp(0.5 - sd / pixel, 0, 1)``, so edges are anti-aliased at any resolution from 32 to 256 px.
All ops are per-pixel, so a batch renders in one pass and flipping a local attribute only changes
the pixels its layers cover.

Factors are dicts of float tensors of shape (B,) (colours: (B, 3)); ``attrs`` is (B, 8) in {0, 1} with
columns ``ATTRIBUTES``. ``render`` returns float (B, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import math

import torch

ATTRIBUTES: tuple[str, ...] = (
    "Smiling", "Mouth_Slightly_Open", "Eyeglasses", "Bangs", "Wearing_Hat", "Mustache", "Young", "Pale_Skin",
)
LOCAL_ATTRIBUTES: tuple[str, ...] = ATTRIBUTES[:6]
GLOBAL_ATTRIBUTES: tuple[str, ...] = ("Young", "Pale_Skin")

IDENTITY_FACTORS: tuple[str, ...] = (
    "face_w", "face_h", "jaw_square", "skin_tone", "hair_volume", "hair_long", "eye_aspect", "eye_spacing",
    "eye_size", "nose_len", "nose_w", "brow_thick", "brow_tilt", "mouth_w",
)
IDENTITY_COLOURS: tuple[str, ...] = ("hair_rgb", "iris_rgb", "lip_rgb")
NUISANCE_FACTORS: tuple[str, ...] = ("yaw", "roll", "scale", "tx", "ty", "light_angle", "light_strength")
NUISANCE_COLOURS: tuple[str, ...] = ("bg_top", "bg_bottom", "hat_rgb", "shirt_rgb")

_DARK_SKIN = torch.tensor([0.36, 0.22, 0.14])
_LIGHT_SKIN = torch.tensor([0.86, 0.68, 0.56])
_PALE = torch.tensor([0.99, 0.95, 0.93])
_GREY_HAIR = torch.tensor([0.78, 0.78, 0.80])
_GLASSES = torch.tensor([0.08, 0.08, 0.10])
_LENS = torch.tensor([0.35, 0.45, 0.55])
_MOUTH_INSIDE = torch.tensor([0.22, 0.04, 0.05])
_EYE_WHITE = torch.tensor([0.97, 0.97, 0.97])
_PUPIL = torch.tensor([0.03, 0.03, 0.03])
_TEETH = torch.tensor([0.96, 0.94, 0.88])


class _Canvas:
    """Holds the image, the face-space pixel grid and the anti-aliasing width for one batch."""

    def __init__(self, nuis: dict[str, torch.Tensor], size: int) -> None:
        b = nuis["yaw"].shape[0]
        centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
        gy, gx = torch.meshgrid(centres, centres, indexing="ij")
        self.gx, self.gy = gx.expand(b, size, size), gy.expand(b, size, size)
        s = nuis["scale"][:, None, None]
        dx = self.gx - nuis["tx"][:, None, None]
        dy = self.gy - nuis["ty"][:, None, None]
        c, sn = torch.cos(nuis["roll"])[:, None, None], torch.sin(nuis["roll"])[:, None, None]
        self.x = (c * dx + sn * dy) / s
        self.y = (-sn * dx + c * dy) / s
        self.pixel = 2.0 / size / s  # one pixel in face units
        self.img = torch.zeros(b, 3, size, size)

    def cover(self, sd: torch.Tensor) -> torch.Tensor:
        return (0.5 - sd / self.pixel).clamp(0, 1)

    def paint(self, alpha: torch.Tensor, rgb: torch.Tensor) -> None:
        """Composite colour ``rgb`` (B, 3) with coverage ``alpha`` (B, H, W) over the image."""
        self.img = self.img + alpha[:, None] * (rgb[:, :, None, None] - self.img)


def _col(v: torch.Tensor) -> torch.Tensor:
    return v[:, None, None]


def _ellipse(x, y, cx, cy, a, b) -> torch.Tensor:
    """Signed distance to an ellipse, first-order accurate near the edge (k - 1) / |grad k|, so flat ellipses
    get a one-pixel anti-aliased rim, not a rim stretched along their long axis."""
    a, b = _col(a), _col(b)
    kx, ky = (x - _col(cx)) / a, (y - _col(cy)) / b
    k = torch.sqrt(kx**2 + ky**2 + 1e-12)
    grad = torch.sqrt((kx / a) ** 2 + (ky / b) ** 2 + 1e-12)
    return torch.where(k < 0.5, (k - 1) * torch.minimum(a, b), (k - 1) * k / grad)


def _superellipse(x, y, cx, cy, a, b, n) -> torch.Tensor:
    n = _col(n)
    k = ((x - _col(cx)).abs() / _col(a) + 1e-9) ** n + ((y - _col(cy)).abs() / _col(b) + 1e-9) ** n
    return (k ** (1 / n) - 1) * torch.minimum(_col(a), _col(b))


def _box(x, y, cx, cy, hw, hh, radius=0.0) -> torch.Tensor:
    qx = (x - _col(cx)).abs() - _col(hw) + radius
    qy = (y - _col(cy)).abs() - _col(hh) + radius
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2 + 1e-12)
    return outside + torch.maximum(qx, qy).clamp(max=0) - radius


def _capsule(x, y, x0, y0, x1, y1, r) -> torch.Tensor:
    """Distance to the segment (x0, y0)-(x1, y1) minus radius r; every argument (B,) or scalar."""
    ax, ay = x - _col(x0), y - _col(y0)
    bx, by = _col(x1 - x0), _col(y1 - y0)
    h = ((ax * bx + ay * by) / (bx * bx + by * by + 1e-12)).clamp(0, 1)
    return torch.sqrt((ax - h * bx) ** 2 + (ay - h * by) ** 2 + 1e-12) - _col(r)


def _union(*sds: torch.Tensor) -> torch.Tensor:
    out = sds[0]
    for sd in sds[1:]:
        out = torch.minimum(out, sd)
    return out


def _as_b(v: float, like: torch.Tensor) -> torch.Tensor:
    return torch.full_like(like, float(v))


def _geometry(ident: dict[str, torch.Tensor], nuis: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Feature positions in face units (B,). Yaw shifts features sideways, the nose (which sticks out) most."""
    yaw = nuis["yaw"]
    g = {
        "fcx": 0.0 * yaw, "fcy": 0.05 + 0.0 * yaw, "fa": ident["face_w"], "fb": ident["face_h"],
        "eye_y": -0.08 + 0.0 * yaw, "eye_dx": ident["eye_spacing"], "eye_cx": 0.12 * yaw,
        "eye_a": 0.085 * ident["eye_size"], "mouth_cx": 0.1 * yaw, "nose_cx": 0.2 * yaw,
    }
    g["eye_b"] = g["eye_a"] * ident["eye_aspect"]
    g["brow_y"] = g["eye_y"] - 0.12
    g["nose_top"] = g["eye_y"] + 0.05
    g["nose_bottom"] = g["nose_top"] + ident["nose_len"]
    g["mouth_y"] = g["nose_bottom"] + 0.13
    g["hairline"] = g["brow_y"] - 0.2
    return g


def region_masks(ident, nuis, size: int) -> dict[str, torch.Tensor]:
    """Conservative bool masks (B, H, W) of where each local attribute may change pixels."""
    cv = _Canvas(nuis, size)
    g = _geometry(ident, nuis)
    x, y, pad = cv.x, cv.y, 3 * cv.pixel
    mouth_w = ident["mouth_w"]
    mouth = _box(x, y, g["mouth_cx"], g["mouth_y"] - 0.02, mouth_w * 1.2 + 0.04, _as_b(0.1, mouth_w)) < pad
    stache = _box(x, y, g["mouth_cx"], g["mouth_y"] - 0.075, mouth_w * 1.05 + 0.03,
                  _as_b(0.05, mouth_w)) < pad
    glasses = _box(x, y, g["eye_cx"], g["eye_y"], g["eye_dx"] + 0.17, _as_b(0.16, mouth_w)) < pad
    bangs = (y < _col(g["brow_y"] - 0.02) + pad) & (_ellipse(x, y, g["fcx"], g["fcy"], g["fa"] + 0.12,
                                                             g["fb"] + 0.12) < pad)
    hat = (y < _col(g["hairline"]) + 0.14 + pad) & (x.abs() < _col(g["fa"]) + 0.25 + pad)
    return {"Smiling": mouth, "Mouth_Slightly_Open": mouth, "Mustache": stache, "Eyeglasses": glasses,
            "Bangs": bangs, "Wearing_Hat": hat}


def render(ident: dict[str, torch.Tensor], nuis: dict[str, torch.Tensor], attrs: torch.Tensor,
           size: int) -> torch.Tensor:
    """Render faces: returns float (B, 3, size, size) in [0, 1]."""
    if not 16 <= size <= 512:
        raise ValueError(f"resolution must be in [16, 512], got {size}")
    a = {name: attrs[:, i] for i, name in enumerate(ATTRIBUTES)}
    cv = _Canvas(nuis, size)
    g = _geometry(ident, nuis)
    x, y = cv.x, cv.y
    old = 1.0 - a["Young"]

    # colours: skin from a dark-to-light scale, paler with Pale_Skin; hair greys with age
    tone = ident["skin_tone"][:, None]
    skin = _DARK_SKIN + tone * (_LIGHT_SKIN - _DARK_SKIN)
    skin = skin * (1 - 0.08 * old[:, None])
    skin = skin + 0.62 * a["Pale_Skin"][:, None] * (_PALE - skin)
    hair = ident["hair_rgb"] + 0.7 * old[:, None] * (_GREY_HAIR - ident["hair_rgb"])
    shade = skin * 0.8

    # background: vertical gradient
    t = ((cv.gy + 1) / 2)[:, None]
    cv.img = nuis["bg_top"][:, :, None, None] * (1 - t) + nuis["bg_bottom"][:, :, None, None] * t

    # shirt, neck, back hair
    cv.paint(cv.cover(_ellipse(x, y, 0 * g["fcx"], _as_b(1.35, g["fcx"]), _as_b(0.95, g["fcx"]),
                               _as_b(0.45, g["fcx"]))), nuis["shirt_rgb"])
    cv.paint(cv.cover(_box(x, y, g["fcx"], _as_b(0.85, g["fcx"]), g["fa"] * 0.45, _as_b(0.25, g["fcx"]))),
             shade)
    back_a = g["fa"] + 0.08 + 0.08 * ident["hair_volume"]
    back_b = g["fb"] + 0.05 + 0.3 * ident["hair_long"]
    back_hair = _ellipse(x, y, g["fcx"], g["fcy"] + 0.25 * ident["hair_long"] - 0.04, back_a, back_b)
    cv.paint(cv.cover(back_hair), hair)

    # face: a superellipse, squarer jaw for one face-shape group
    n = 2.0 + 1.6 * ident["jaw_square"]
    cv.paint(cv.cover(_superellipse(x, y, g["fcx"], g["fcy"], g["fa"], g["fb"], n)), skin)

    # age cues (global with the grey hair): forehead lines, nasolabial folds, eye bags
    line_w = _as_b(0.011, g["fa"])
    wrinkles = _union(
        _capsule(x, y, -g["fa"] * 0.45, g["brow_y"] - 0.07, g["fa"] * 0.45, g["brow_y"] - 0.07, line_w),
        _capsule(x, y, -g["fa"] * 0.38, g["brow_y"] - 0.11, g["fa"] * 0.38, g["brow_y"] - 0.11, line_w),
        _capsule(x, y, g["mouth_cx"] - ident["mouth_w"] - 0.02, g["nose_bottom"] - 0.01,
                 g["mouth_cx"] - ident["mouth_w"] - 0.06, g["mouth_y"] + 0.02, line_w),
        _capsule(x, y, g["mouth_cx"] + ident["mouth_w"] + 0.02, g["nose_bottom"] - 0.01,
                 g["mouth_cx"] + ident["mouth_w"] + 0.06, g["mouth_y"] + 0.02, line_w),
        _capsule(x, y, g["eye_cx"] - g["eye_dx"] - 0.05, g["eye_y"] + 0.07,
                 g["eye_cx"] - g["eye_dx"] + 0.05, g["eye_y"] + 0.07, line_w),
        _capsule(x, y, g["eye_cx"] + g["eye_dx"] - 0.05, g["eye_y"] + 0.07,
                 g["eye_cx"] + g["eye_dx"] + 0.05, g["eye_y"] + 0.07, line_w),
    )
    cv.paint(cv.cover(wrinkles) * _col(old) * 0.8, skin * 0.62)

    # top hair above the hairline
    top = _ellipse(x, y, g["fcx"], g["fcy"] - 0.02, g["fa"] + 0.05 + 0.06 * ident["hair_volume"],
                   g["fb"] + 0.07 + 0.05 * ident["hair_volume"])
    cv.paint(cv.cover(torch.maximum(top, y - _col(g["hairline"]))), hair)

    # bangs: a scalloped fringe from the hairline down to just above the brows
    fringe_bottom = _col(g["brow_y"] - 0.01) + 0.018 * torch.cos(x * 38.0)
    fringe = torch.maximum(_ellipse(x, y, g["fcx"], g["fcy"] - 0.02, g["fa"] + 0.05, g["fb"] + 0.07),
                           y - fringe_bottom)
    cv.paint(cv.cover(fringe) * _col(a["Bangs"]), hair * 0.9)

    # brows
    for side in (-1.0, 1.0):
        cx = g["eye_cx"] + side * g["eye_dx"]
        tilt = ident["brow_tilt"] * side
        cv.paint(cv.cover(_capsule(x, y, cx - 0.075, g["brow_y"] + tilt, cx + 0.075, g["brow_y"] - tilt,
                                   ident["brow_thick"])), hair * 0.55)

    # eyes: white, iris, pupil
    for side in (-1.0, 1.0):
        cx = g["eye_cx"] + side * g["eye_dx"]
        white = _ellipse(x, y, cx, g["eye_y"], g["eye_a"], g["eye_b"])
        cv.paint(cv.cover(white), _EYE_WHITE.expand_as(skin))
        iris = torch.maximum(_ellipse(x, y, cx, g["eye_y"], g["eye_b"] * 0.95, g["eye_b"] * 0.95), white)
        cv.paint(cv.cover(iris), ident["iris_rgb"])
        cv.paint(cv.cover(_ellipse(x, y, cx, g["eye_y"], g["eye_b"] * 0.4, g["eye_b"] * 0.4)),
                 _PUPIL.expand_as(skin))

    # nose
    cv.paint(cv.cover(_ellipse(x, y, g["nose_cx"], (g["nose_top"] + g["nose_bottom"]) / 2,
                               ident["nose_w"], ident["nose_len"] / 2)) * 0.8, shade)

    # mouth: the open cavity, then the lip line, curved up when smiling
    mw = ident["mouth_w"] * (1 + 0.2 * a["Smiling"])
    curve = 0.09 * a["Smiling"] - 0.006 * (1 - a["Smiling"])
    cavity = _ellipse(x, y, g["mouth_cx"], g["mouth_y"] + 0.035 - 0.4 * curve, mw * 0.75,
                      _as_b(0.065, mw))
    cv.paint(cv.cover(cavity) * _col(a["Mouth_Slightly_Open"]), _MOUTH_INSIDE.expand_as(skin))
    u = (x - _col(g["mouth_cx"])) / _col(mw)
    lip_y = _col(g["mouth_y"]) - _col(curve) * (u**2 - 0.35)
    # a smile shows the teeth: a white crescent under the upturned lip line
    teeth = torch.maximum(torch.maximum(lip_y - y, y - lip_y - 0.075 * (1 - u**2).clamp(min=0)),
                          (x - _col(g["mouth_cx"])).abs() - _col(mw) * 0.88)
    cv.paint(cv.cover(teeth) * _col(a["Smiling"]), _TEETH.expand_as(skin))
    lip = torch.maximum((y - lip_y).abs() - 0.02, (x - _col(g["mouth_cx"])).abs() - _col(mw))
    cv.paint(cv.cover(lip), ident["lip_rgb"])

    # mustache between nose and mouth
    stache = _ellipse(x, y, g["mouth_cx"], g["mouth_y"] - 0.068, mw * 0.95, _as_b(0.042, mw))
    cv.paint(cv.cover(stache) * _col(a["Mustache"]), hair * 0.5)

    # eyeglasses: two rings, tinted lenses, a bridge
    ring_r, ring_w = g["eye_a"] + 0.045, 0.014
    rings, lenses = [], []
    for side in (-1.0, 1.0):
        cx = g["eye_cx"] + side * g["eye_dx"]
        d = torch.sqrt((x - _col(cx)) ** 2 + (y - _col(g["eye_y"])) ** 2 + 1e-12)
        lenses.append(d - _col(ring_r))
        rings.append((d - _col(ring_r)).abs() - ring_w)
    bridge = _capsule(x, y, g["eye_cx"] - g["eye_dx"] + ring_r, g["eye_y"], g["eye_cx"] + g["eye_dx"] - ring_r,
                      g["eye_y"], _as_b(ring_w, mw))
    on = _col(a["Eyeglasses"])
    cv.paint(cv.cover(_union(*lenses)) * on * 0.3, _LENS.expand_as(skin))
    cv.paint(cv.cover(_union(*rings, bridge)) * on, _GLASSES.expand_as(skin))

    # hat: a crown and a brim over the hairline
    crown = _box(x, y, g["fcx"], g["hairline"] - 0.2, g["fa"] + 0.02, _as_b(0.24, mw), radius=0.08)
    brim = _ellipse(x, y, g["fcx"], g["hairline"] + 0.04, g["fa"] + 0.2, _as_b(0.07, mw))
    cv.paint(cv.cover(_union(crown, brim)) * _col(a["Wearing_Hat"]), nuis["hat_rgb"])

    # lighting: a smooth directional gain over the whole picture
    ang = nuis["light_angle"]
    gain = 1 + _col(nuis["light_strength"]) * (cv.gx * _col(torch.cos(ang)) + cv.gy * _col(torch.sin(ang)))
    return (cv.img * gain[:, None]).clamp(0, 1)


def sample_identities(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Identity factors of ``n`` people: dict of (n,) floats and (n, 3) colours."""
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=generator)  # noqa: E731
    hair_palette = torch.tensor([[0.08, 0.06, 0.05], [0.25, 0.15, 0.08], [0.45, 0.28, 0.14],
                                 [0.85, 0.72, 0.42], [0.62, 0.25, 0.10], [0.55, 0.45, 0.35]])
    iris_palette = torch.tensor([[0.35, 0.20, 0.08], [0.25, 0.45, 0.75], [0.25, 0.55, 0.30],
                                 [0.50, 0.52, 0.55]])
    lip_palette = torch.tensor([[0.62, 0.22, 0.25], [0.50, 0.20, 0.20], [0.72, 0.36, 0.38]])

    def pick(palette: torch.Tensor, jitter: float) -> torch.Tensor:
        idx = torch.randint(len(palette), (n,), generator=generator)
        return (palette[idx] + jitter * (torch.rand(n, 3, generator=generator) - 0.5)).clamp(0, 1)

    return {
        "face_w": u(0.46, 0.58), "face_h": u(0.6, 0.72),
        "jaw_square": (torch.rand(n, generator=generator) < 0.5).float(),
        "skin_tone": u(0.0, 1.0), "hair_volume": u(0.0, 1.0),
        "hair_long": (torch.rand(n, generator=generator) < 0.5).float() * u(0.3, 1.0),
        "eye_aspect": u(0.45, 0.75), "eye_spacing": u(0.17, 0.24), "eye_size": u(0.8, 1.15),
        "nose_len": u(0.1, 0.17), "nose_w": u(0.035, 0.065), "brow_thick": u(0.012, 0.028),
        "brow_tilt": u(-0.025, 0.025), "mouth_w": u(0.15, 0.2),
        "hair_rgb": pick(hair_palette, 0.08), "iris_rgb": pick(iris_palette, 0.1),
        "lip_rgb": pick(lip_palette, 0.06),
    }


def sample_nuisance(n: int, generator: torch.Generator, strength: float = 1.0) -> dict[str, torch.Tensor]:
    """Per-image nuisance: pose (yaw, roll), scale/translation jitter, lighting, background, clothes."""
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=generator)  # noqa: E731
    k = float(strength)

    def colour(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, 3, generator=generator)

    return {
        "yaw": u(-0.3, 0.3) * k, "roll": u(-0.15, 0.15) * k, "scale": 0.85 + u(-0.05, 0.05) * k,
        "tx": u(-0.05, 0.05) * k, "ty": 0.08 + u(-0.04, 0.04) * k,
        "light_angle": u(0, 2 * math.pi), "light_strength": u(0.0, 0.22) * k,
        "bg_top": colour(0.15, 0.95), "bg_bottom": colour(0.15, 0.95),
        "hat_rgb": colour(0.05, 0.9), "shirt_rgb": colour(0.1, 0.9),
    }
