"""GAN losses and regularisers shared by the methods.

Discriminator outputs are raw logits of any shape; losses are averaged over all elements.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def adv_loss(logits: torch.Tensor, real: bool, kind: str = "nonsaturating") -> torch.Tensor:
    """Adversarial loss for ``logits`` that should read ``real``.

    kind: "nonsaturating" (softplus / BCE with logits), "lsgan" (least squares on 1/0 targets),
    "hinge" (discriminator form; for the generator use ``generator_hinge``), "wgan".
    """
    if kind == "nonsaturating":
        return F.softplus(-logits).mean() if real else F.softplus(logits).mean()
    if kind == "lsgan":
        return ((logits - (1.0 if real else 0.0)) ** 2).mean()
    if kind == "hinge":
        return F.relu(1 - logits).mean() if real else F.relu(1 + logits).mean()
    if kind == "wgan":
        return -logits.mean() if real else logits.mean()
    raise ValueError(f"unknown adversarial loss {kind!r}")


def generator_adv_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """Generator's adversarial loss on the discriminator's logits for its fakes."""
    if kind in ("hinge", "wgan"):
        return -fake_logits.mean()
    return adv_loss(fake_logits, real=True, kind=kind)


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty 0.5 * E[||grad_x D(x)||^2] on real images (Mescheder et al., 2018).

    ``real_images`` must have ``requires_grad=True`` before the discriminator's forward pass.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return 0.5 * grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dims, averaged over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor,  # noqa: ANN001
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP penalty E[(||grad_x D(x_hat)||_2 - 1)^2] at random interpolates x_hat of ``real`` and ``fake``
    (Gulrajani et al., 2017), images (B, C, H, W). ``critic(x)`` returns the adversarial logits (any shape,
    summed per sample: a PatchGAN's map counts as one output), or a tuple whose first item they are (a critic
    with an auxiliary classification head). Weight it yourself (lambda_gp = 10 in StarGAN and AttGAN)."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    logits = out[0] if isinstance(out, tuple) else out
    (grad,) = torch.autograd.grad(logits.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
