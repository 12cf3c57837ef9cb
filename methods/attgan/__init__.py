"""AttGAN (He et al., TIP 2019): multi-attribute editing by an attribute-conditioned encoder-decoder trained with
an attribute classifier, reconstruction and a WGAN-GP critic; registered as ``attgan``."""

from methods.attgan.module import AttGAN

__all__ = ["AttGAN"]
