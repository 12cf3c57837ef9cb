"""InterFaceGAN (Shen et al., CVPR 2020): linear semantic boundaries in a GAN's latent space; real images are
edited through in-domain GAN inversion. Registered as ``interfacegan``."""

from methods.interfacegan.module import InterFaceGAN

__all__ = ["InterFaceGAN"]
