"""Training helpers shared by the methods: divergence guard and EMA of weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class DivergedError(RuntimeError):
    """A training loss became NaN or infinite."""


def assert_finite(step: int, **losses: torch.Tensor) -> None:
    """Raise ``DivergedError`` naming the loss and step when any loss is not finite.

    Lightning's checkpoints written before the divergence stay on disk, so nothing is lost.
    """
    for name, value in losses.items():
        if not torch.isfinite(value.detach()).all():
            raise DivergedError(
                f"loss {name!r} diverged ({value.detach().float().mean().item()}) at step {step}; "
                "lower the learning rate or check the data. Checkpoints written before this step are kept."
            )


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` to hold the exponential moving average of its weights."""
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema.eval()


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float = 0.999) -> None:
    """ema <- beta * ema + (1 - beta) * model, parameters and buffers alike."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1.0 - beta)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)
