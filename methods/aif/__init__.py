"""Adversarial Information Factorization (IFcVAE-GAN, Creswell et al., 2017): registered as ``aif``."""

from methods.aif.module import AIFMethod

__all__ = ["AIFMethod"]
