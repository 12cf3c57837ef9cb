"""Sampling of the synthetic set: identities, per-image nuisance, and attributes with CelebA-like bias.

``correlation`` in [0, 1] blends independent attribute probabilities (0) with the biased ones (1):
``Mustache`` is tied to the square-jaw face-shape group, ``Eyeglasses`` to not-``Young``,
``Mouth_Slightly_Open`` to ``Smiling``, ``Bangs`` to long hair, ``Pale_Skin`` to light skin tones.
"""

from __future__ import annotations

import torch

from datamodules.synthfaces.render import ATTRIBUTES


def _col(name: str) -> int:
    return ATTRIBUTES.index(name)


def sample_attributes(ident: dict[str, torch.Tensor], correlation: float,
                      generator: torch.Generator) -> torch.Tensor:
    """Attributes (N, 8) in {0, 1} for images whose identity factors are ``ident`` (per image, (N,))."""
    if not 0.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must be in [0, 1], got {correlation}")
    n = ident["face_w"].shape[0]
    c = float(correlation)
    attrs = torch.zeros(n, len(ATTRIBUTES))

    def draw(name: str, p_indep: float | torch.Tensor, p_biased: float | torch.Tensor) -> torch.Tensor:
        p = (1 - c) * torch.as_tensor(p_indep, dtype=torch.float32) + c * torch.as_tensor(p_biased,
                                                                                       dtype=torch.float32)
        v = (torch.rand(n, generator=generator) < p.expand(n)).float()
        attrs[:, _col(name)] = v
        return v

    young = draw("Young", 0.7, 0.7)
    smiling = draw("Smiling", 0.5, 0.5)
    draw("Mouth_Slightly_Open", 0.45, 0.2 + 0.5 * smiling)
    draw("Eyeglasses", 0.2, 0.08 + 0.4 * (1 - young))
    draw("Bangs", 0.3, 0.15 + 0.3 * (ident["hair_long"] > 0).float())
    draw("Wearing_Hat", 0.2, 0.2)
    draw("Mustache", 0.2, 0.03 + 0.3 * ident["jaw_square"] + 0.12 * ident["jaw_square"] * (1 - young))
    draw("Pale_Skin", 0.25, 0.1 + 0.3 * (ident["skin_tone"] > 0.5).float())
    return attrs
