"""In-domain GAN inversion (after Zhu et al., ECCV 2020, genforce/idinvert): start from the encoder's code,
then a few Adam steps on the code that lower the reconstruction error while the encoder, applied to the
reconstruction, keeps the code in the generator's domain.

Two objectives train the encoder against the fixed (EMA) generator: ``encoder_losses`` (the suite's original
"regression": code regression and reconstruction of generated images plus reconstruction of real images) and
``idinvert_encoder_losses`` (idinvert's domain-guided encoder: real images only, pixel MSE + perceptual MSE +
the discriminator's non-saturating loss on the reconstruction, ``training/loss_encoder.py:E_loss``).

Images are float (B, 3, R, R) in [-1, 1]; codes are (B, D) or (B, num_ws, D).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from methods.common.losses import generator_adv_loss


def per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the first: (B, ...) -> (B,)."""
    return x.flatten(1).mean(1)


def reconstruction_error(fake: torch.Tensor, real: torch.Tensor, features: Callable[[torch.Tensor], torch.Tensor]
                         | None = None, feature_weight: float = 0.0) -> torch.Tensor:
    """Per-sample pixel MSE + L1 (+ ``feature_weight`` x MSE of ``features``): (B,)."""
    err = per_sample_mean((fake - real).pow(2)) + per_sample_mean((fake - real).abs())
    if features is not None and feature_weight > 0:
        err = err + feature_weight * per_sample_mean((features(fake) - features(real)).pow(2))
    return err


def _like(code: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Broadcast an encoder code (B, D) to the shape of ``ref`` ((B, D) or w+ (B, num_ws, D))."""
    return code[:, None].expand_as(ref) if ref.ndim == 3 and code.ndim == 2 else code


def optimise_codes(images: torch.Tensor, codes: torch.Tensor, render: Callable[[torch.Tensor], torch.Tensor],
                   encode: Callable[[torch.Tensor], torch.Tensor], steps: int, lr: float,
                   domain_weight: float, features: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   feature_weight: float = 0.0) -> torch.Tensor:
    """Refine ``codes`` so ``render(codes)`` reconstructs ``images``; returns the refined codes (detached).

    The loss of each sample is its own (summed over the batch, never averaged), so a sample's result does not
    depend on the rest of its batch. Runs with gradients enabled even under the caller's ``no_grad`` /
    ``inference_mode``; only the codes get gradients (never the networks' parameters).
    """
    if steps <= 0:
        return codes.detach()
    with torch.inference_mode(False), torch.enable_grad():
        target = images.detach().clone()
        code = codes.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([code], lr=lr)
        for _ in range(steps):
            fake = render(code)
            loss = reconstruction_error(fake, target, features, feature_weight)
            if domain_weight > 0:
                loss = loss + domain_weight * per_sample_mean((_like(encode(fake), code) - code).pow(2))
            (grad,) = torch.autograd.grad(loss.sum(), code)
            code.grad = grad
            opt.step()
        return code.detach()


def encoder_losses(real: torch.Tensor, fake: torch.Tensor, target_code: torch.Tensor,
                   encode: Callable[[torch.Tensor], torch.Tensor], render: Callable[[torch.Tensor], torch.Tensor],
                   features: Callable[[torch.Tensor], torch.Tensor] | None, feature_weight: float
                   ) -> dict[str, torch.Tensor]:
    """Losses that train the encoder to invert a fixed generator.

    real:        (B, 3, R, R) real images: in-domain reconstruction ``render(encode(real)) ~ real``
    fake:        (B, 3, R, R) generated images of the codes ``target_code`` (B, D): code regression and
                 reconstruction (a w+ encoder regresses the broadcast code, the w+ a sample is rendered from)
    returns:     dict of scalar losses ``code`` (MSE), ``fake_rec`` and ``real_rec`` (MSE + L1 (+ features))
    """
    code_fake = encode(fake)
    rec_real = render(encode(real))
    return {
        "code": F.mse_loss(code_fake, _like(target_code, code_fake)),
        "fake_rec": reconstruction_error(render(code_fake), fake).mean(),
        "real_rec": reconstruction_error(rec_real, real, features, feature_weight).mean(),
    }


def idinvert_encoder_losses(real: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor],
                            render: Callable[[torch.Tensor], torch.Tensor],
                            discriminator: Callable[[torch.Tensor], torch.Tensor],
                            features: Callable[[torch.Tensor], torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """idinvert's domain-guided encoder losses on real images only (unweighted; the caller weighs them).

    real:          (B, 3, R, R) real images in [-1, 1]; rec = render(encode(real))
    discriminator: images -> logits; its non-saturating generator loss on rec is ``adv``
    features:      images -> a feature map (idinvert: VGG16 conv4_3; here the method's own discriminator
                   trunk); None skips the ``feature`` term
    returns:       dict of scalar losses ``pixel`` (mean squared error), ``feature`` (mean squared feature
                   distance to the real image's, which is a fixed target) and ``adv``
    """
    rec = render(encode(real))
    losses = {"pixel": (rec - real).pow(2).mean(), "adv": generator_adv_loss(discriminator(rec))}
    if features is not None:
        with torch.no_grad():
            target = features(real)
        losses["feature"] = (features(rec) - target).pow(2).mean()
    return losses
