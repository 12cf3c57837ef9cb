"""L2M-GAN (Yang et al., CVPR 2021): latent-space manipulation of a StarGAN v2 style code; registered as ``l2mgan``."""

from methods.l2mgan.module import L2MGAN

__all__ = ["L2MGAN"]
