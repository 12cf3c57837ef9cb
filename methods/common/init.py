"""Weight initialisation shared by the methods.

``he_init`` is the initialisation of StarGAN v2 (clovaai/stargan-v2, core/utils.py) and of the models built on
it: Kaiming-normal weights (fan-in, ReLU gain) for every convolution and linear layer, zero biases.
"""

from __future__ import annotations

from torch import nn


def he_init(module: nn.Module) -> None:
    """Initialise one module in place; use as ``net.apply(he_init)``. Other module types are left as they are."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
