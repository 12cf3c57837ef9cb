"""Adversarial Information Factorization (IFcVAE-GAN, Creswell et al., 2017): registered as ``aif``;
``aif-fader`` is its named variant with a flipped-label adversary (configs in ``configs/aif-fader/``)."""

from methods.aif.module import AIFFaderMethod, AIFMethod

__all__ = ["AIFFaderMethod", "AIFMethod"]
