"""AIGN (Tung et al., ICCV 2017): biased super-resolution / inpainting as attribute editing. Registered as "aign"."""

from methods.aign.module import AIGN

__all__ = ["AIGN"]
