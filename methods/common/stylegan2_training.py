"""StyleGAN2's training rules beside the networks (``methods/common/stylegan2.py``): lazy regularisation weights,
path-length regularisation, style mixing and the EMA half-life (NVlabs/stylegan2-ada-pytorch ``training/loss.py``
and ``training/training_loop.py``). The adversarial loss and R1 are ``methods.common.losses`` (``adv_loss``,
``generator_adv_loss``, ``r1_penalty``).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def lazy_weight(weight: float, interval: int, step: int) -> float:
    """Lazy regularisation (StyleGAN2): the regulariser runs every ``interval`` minibatches (when
    ``step % interval == 0``) with its weight multiplied by the interval, so its average strength is unchanged;
    0 on the other steps. For R1 pass ``weight = gamma`` and add ``weight * r1_penalty`` (which is 0.5 E||g||^2,
    so the term is interval * gamma / 2 * ||grad||^2 as official)."""
    if interval < 1:
        raise ValueError(f"interval must be >= 1, got {interval}")
    return float(weight) * interval if weight > 0 and step % interval == 0 else 0.0


def ema_beta(batch_size: int, ema_kimg: float, cur_nimg: int | None = None, rampup: float | None = None) -> float:
    """EMA decay per minibatch for a half-life of ``ema_kimg`` thousand images: 0.5 ** (batch / (ema_kimg * 1000)).

    With ``rampup`` (official: 0.05 for small data sets) the half-life is at most ``cur_nimg * rampup`` images,
    so the average follows the early generator closely (official training_loop's ``ema_nimg``)."""
    ema_nimg = ema_kimg * 1000
    if rampup is not None and cur_nimg is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


def mix_styles(mapping: nn.Module, z: torch.Tensor, ws: torch.Tensor, prob: float,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Style-mixing regularisation: with probability ``prob`` the layers from a random cutoff in [1, num_ws) on
    take the w of a second latent (one cutoff per batch, as official; the second mapping pass does not update
    ``w_avg``). z (B, z_dim), ws (B, num_ws, w_dim) -> ws (B, num_ws, w_dim)."""
    num_ws = ws.shape[1]
    if prob <= 0 or num_ws < 2:
        return ws
    draw = torch.rand((), generator=generator).item()
    if draw >= prob:
        return ws
    cutoff = int(torch.randint(1, num_ws, (), generator=generator))
    z2 = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
    w2 = mapping(z2, skip_w_avg_update=True)
    return torch.cat([ws[:, :cutoff], w2[:, None].expand(-1, num_ws - cutoff, -1)], dim=1)


class PathLengthPenalty(nn.Module):
    """Path-length regularisation (StyleGAN2): for images G(w+) (B, 3, H, W) and the codes ws (B, num_ws, w_dim)
    they were rendered from (part of the graph), the Jacobian-vector length |J^T y|, y ~ N(0, I) / sqrt(H W),
    summed over w_dim and averaged over layers, is pulled towards its running mean ``pl_mean`` (decay
    ``pl_decay``, official 0.01). Returns the per-sample penalty (length - pl_mean)^2 averaged: a scalar to weigh
    by ``pl_weight`` (official 2) and the lazy interval (official every 4 minibatches, on half the batch)."""

    def __init__(self, pl_decay: float = 0.01) -> None:
        super().__init__()
        self.pl_decay = pl_decay
        self.register_buffer("pl_mean", torch.zeros(()))

    def forward(self, images: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
        (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
        lengths = grad.square().sum(2).mean(1).sqrt()
        pl_mean = self.pl_mean.lerp(lengths.mean().detach(), self.pl_decay)
        self.pl_mean.copy_(pl_mean)
        return (lengths - pl_mean).square().mean()
