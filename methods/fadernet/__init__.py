"""Fader Networks (Lample et al., NeurIPS 2017), registered as ``fadernet``.

Not to be confused with ``aif-fader``, a variant of AIF (``methods/aif``) that borrows Fader Networks'
flipped-label adversary: this package is the Fader Networks model itself."""

from methods.fadernet.module import FaderNetMethod

__all__ = ["FaderNetMethod"]
