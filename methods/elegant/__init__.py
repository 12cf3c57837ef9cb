"""ELEGANT (Xiao et al., ECCV 2018): exemplar-guided multi-attribute editing by exchanging latent parts."""

from methods.elegant.module import ELEGANT

__all__ = ["ELEGANT"]
