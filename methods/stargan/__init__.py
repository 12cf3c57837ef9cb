"""StarGAN (Choi et al., CVPR 2018): one label-conditioned generator translating faces between attribute domains."""

from methods.stargan.module import StarGAN

__all__ = ["StarGAN"]
