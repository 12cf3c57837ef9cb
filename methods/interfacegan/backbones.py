"""The GAN InterFaceGAN edits in: ``dcgan`` (the suite's compact style-modulated DCGAN, ``networks.py``; the
default, so older configs and checkpoints behave as before) or ``stylegan2`` (``methods/common/stylegan2.py``).

Both generators offer the same interface: ``mapping(z, skip_w_avg_update=False) -> w (B, w_dim)`` with a
``w_avg`` buffer, ``synthesize(w or w+, noise_mode) -> images (B, 3, R, R)``, ``broadcast``, ``num_ws``,
``mapping`` / ``synthesis`` submodules; both discriminators ``forward(images) -> logits`` ((B,) or (B, 1)) and
``features(images) -> (B, C, 4, 4)``.
"""

from __future__ import annotations

from torch import nn

from methods.common import stylegan2
from methods.interfacegan import networks

BACKBONES = ("dcgan", "stylegan2")


def check_backbone(backbone: str) -> None:
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")


def build_generator(backbone: str, resolution: int, z_dim: int, w_dim: int, mapping_layers: int,
                    channel_base: int, channel_max: int, norm: str, mapping_lr_mul: float) -> nn.Module:
    """The generator. ``norm`` is the DCGAN's only; ``mapping_lr_mul`` is built into StyleGAN2's equalized
    mapping layers (the DCGAN's mapping gets it as an optimizer learning-rate factor instead)."""
    check_backbone(backbone)
    if backbone == "stylegan2":
        return stylegan2.Generator(resolution, z_dim, w_dim, mapping_layers, channel_base, channel_max,
                                   mapping_lr_mul=mapping_lr_mul)
    return networks.Generator(resolution, z_dim, w_dim, mapping_layers, channel_base, channel_max, norm)


def build_discriminator(backbone: str, resolution: int, channel_base: int, channel_max: int) -> nn.Module:
    check_backbone(backbone)
    if backbone == "stylegan2":
        return stylegan2.Discriminator(resolution, channel_base, channel_max)
    return networks.Discriminator(resolution, channel_base, channel_max)
