"""InterFaceGAN (Shen et al., CVPR 2020): linear semantic boundaries in a GAN's latent space; real images are
edited through in-domain GAN inversion. Registered as ``interfacegan``; ``interfacegan-cond`` is its named
variant that edits by the paper's conditional manipulation (``conditional.py``, configs in
``configs/interfacegan-cond/``)."""

from methods.interfacegan.conditional import InterFaceGANConditional
from methods.interfacegan.module import InterFaceGAN

__all__ = ["InterFaceGAN", "InterFaceGANConditional"]
