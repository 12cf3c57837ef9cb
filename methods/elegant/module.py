"""ELEGANT (Xiao, Hong and Ma, ECCV 2018): exchanging latent encodings to transfer face attributes.

The encoder's code is split channel-wise into one part per attribute. A training step picks the next attribute
k and pairs images A, B that differ on it; C = A rendered with B's part k, D = B rendered with A's part k. The
decoder renders (code, own code, own skips) as a residual added to the image. Two label-conditioned
discriminators (full and half resolution) judge A, B as real and C, D (with swapped labels) as fake; the
generator is trained on reconstruction of A and B plus fooling both discriminators.

Editing is exemplar-guided: every attribute where ``src_attrs`` and ``tgt_attrs`` differ takes its part from the
``reference`` image's code, blended by ``strength`` (0 = own part, 1 = the reference's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from methods.base import EditingMethod, register_method
from methods.common.losses import adv_loss, generator_adv_loss
from methods.common.training import assert_finite, ema_update, make_ema
from methods.elegant.networks import (
    ConditionalDiscriminator,
    Decoder,
    Encoder,
    attribute_slices,
    channel_widths,
    part_mask,
)
from methods.elegant.pairs import OppositePairs


@register_method("elegant")
class ELEGANT(EditingMethod):
    """ELEGANT editing method; one model for all ``attribute_names``.

    Architecture (defaults = the official code at 256 px): ``num_layers`` encoder layers of width
    ``base_channels * 2**i`` capped at ``max_channels``; discriminators of ``disc_layers`` layers of width
    ``disc_base_channels * 2**i`` capped at ``disc_max_channels``; residual = ``residual_scale * tanh``.
    Losses: D = (L_D1 + d2_weight * L_D2) / 4; G = recon_weight * (MSE(A1, A) + MSE(B1, B)) + adv1_weight * L_adv1
    + adv2_weight * L_adv2, with the non-saturating (BCE) GAN loss. Optimisers: Adam(g_lr / d_lr, betas,
    weight_decay); both learning rates multiplied by ``lr_gamma`` every ``lr_step_size`` iterations, where an
    iteration is one pass over all attributes (one training step per attribute), as in the official loop.
    One training step = one discriminator update then one generator update. ``ema_beta`` > 0 (not in the
    paper; 0 = official) keeps an exponential moving average of the encoder and decoder that ``edit`` uses.
    """

    supports_strength = True
    edit_modes = ("reference",)  # ELEGANT swaps latent parts with an exemplar: reference-only
    multi_attribute = True

    def __init__(
        self,
        attribute_names: Sequence[str],
        image_size: int = 64,
        base_channels: int = 64,
        max_channels: int = 512,
        num_layers: int = 5,
        disc_base_channels: int = 64,
        disc_max_channels: int = 512,
        disc_layers: int = 4,
        residual_scale: float = 2.0,
        g_lr: float = 2e-4,
        d_lr: float = 2e-4,
        betas: Sequence[float] = (0.5, 0.999),
        weight_decay: float = 1e-5,
        lr_step_size: int = 3000,
        lr_gamma: float = 0.97,
        recon_weight: float = 5.0,
        adv1_weight: float = 1.0,
        adv2_weight: float = 0.5,
        d2_weight: float = 0.5,
        gan_loss: str = "nonsaturating",
        pair_seed: int = 0,
        ema_beta: float = 0.0,
    ) -> None:
        super().__init__(attribute_names, image_size)
        self.save_hyperparameters()
        self.automatic_optimization = False
        k = len(self.attribute_names)
        widths = channel_widths(base_channels, num_layers, max_channels)
        if self.image_size % 2**num_layers:
            raise ValueError(f"image_size {self.image_size} must be divisible by 2**num_layers = {2**num_layers}")
        self.encoder = Encoder(widths)
        self.decoder = Decoder(widths, residual_scale)
        d_widths = channel_widths(disc_base_channels, disc_layers, disc_max_channels)
        self.d1 = ConditionalDiscriminator(k, self.image_size, d_widths)
        self.d2 = ConditionalDiscriminator(k, self.image_size // 2, d_widths)
        self.slices = attribute_slices(widths[-1], k)
        # optional (not in the paper): edit with an exponential moving average of the encoder and decoder
        self.encoder_ema = make_ema(self.encoder) if ema_beta > 0 else None
        self.decoder_ema = make_ema(self.decoder) if ema_beta > 0 else None
        # training iterations done (one per training step, i.e. per attribute); saved in the checkpoint
        self.register_buffer("train_steps_done", torch.zeros((), dtype=torch.long))
        self._pairs: OppositePairs | None = None
        self._trainable: list[int] = []

    # -- generator ---------------------------------------------------------------------------------------
    def swap_mask(self, weights: torch.Tensor) -> torch.Tensor:
        """(B, K) per-attribute swap weights in [0, 1] -> (B, C, 1, 1) weights over the code's channels."""
        return part_mask(weights, self.slices, self.encoder.code_channels)

    def exchange(self, a: torch.Tensor, b: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        """The official forward pass for a pair differing on attribute k.

        a, b: (B, 3, H, W) in [-1, 1]. Returns A1, B1 (reconstructions), C (A with B's part k), D (B with A's
        part k), all clamped to [-1, 1]. A and B go through the encoder, and A1, B1, C, D through the decoder,
        as one batch each (no layer uses batch statistics, so this equals four separate passes, faster).
        """
        n = a.shape[0]
        z, skips = self.encoder(torch.cat([a, b]))
        z_a, z_b = z[:n], z[n:]
        onehot = torch.zeros(1, len(self.attribute_names), device=a.device, dtype=z.dtype)
        onehot[0, k] = 1.0
        m = self.swap_mask(onehot)
        z_c = z_a + m * (z_b - z_a)
        z_d = z_b + m * (z_a - z_b)
        residual = self.decoder(torch.cat([z_a, z_b, z_c, z_d]), torch.cat([z, z]), [torch.cat([s, s]) for s in skips])
        out = (torch.cat([a, b, a, b]) + residual).clamp(-1, 1)
        return dict(zip(("A1", "B1", "C", "D"), out.split(n)))

    def edit(
        self,
        images: torch.Tensor,
        src_attrs: torch.Tensor,
        tgt_attrs: torch.Tensor,
        strength: float = 1.0,
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Give ``images`` the parts of ``reference``'s code for every attribute where src and tgt differ.

        images, reference: (B, 3, H, W) in [-1, 1] (reference has the target values); src_attrs, tgt_attrs:
        (B, K) in {0, 1}; strength: 0 keeps the image's own parts, 1 takes the reference's (linear in between).
        Returns (B, 3, H, W) in [-1, 1], same dtype and device as ``images``.
        """
        self.check_edit_inputs(images, src_attrs, tgt_attrs, reference)
        x = images.to(self.device, torch.float32)
        ref = reference.to(self.device, torch.float32)
        differs = (src_attrs.round() != tgt_attrs.round()).to(self.device, torch.float32)
        encoder = self.encoder_ema if self.encoder_ema is not None else self.encoder
        decoder = self.decoder_ema if self.decoder_ema is not None else self.decoder
        z, skips = encoder(x)
        z_ref, _ = encoder(ref)
        z_new = z + float(strength) * self.swap_mask(differs) * (z_ref - z)
        out = (x + decoder(z_new, z, skips)).clamp(-1, 1)
        return out.to(images.device, images.dtype)

    # -- training ----------------------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        betas = tuple(float(b) for b in hp.betas)
        g_params = [*self.encoder.parameters(), *self.decoder.parameters()]
        d_params = [*self.d1.parameters(), *self.d2.parameters()]
        opt_g = torch.optim.Adam(g_params, lr=hp.g_lr, betas=betas, weight_decay=hp.weight_decay)
        opt_d = torch.optim.Adam(d_params, lr=hp.d_lr, betas=betas, weight_decay=hp.weight_decay)
        return [opt_g, opt_d]

    def on_fit_start(self) -> None:
        # channels-last convolutions are ~12 % faster on CPU here; the same math, stored weights unchanged in shape
        self.to(memory_format=torch.channels_last)

    def on_fit_end(self) -> None:
        # back to the default layout, so that edits equal those of a model loaded from a checkpoint bit for bit
        self.to(memory_format=torch.contiguous_format)

    def _pair_source(self) -> OppositePairs:
        if self._pairs is None:
            dm = self.trainer.datamodule
            dataset = dm.dataset("train") if dm is not None and hasattr(dm, "dataset") else \
                self.trainer.train_dataloader.dataset
            self._pairs = OppositePairs(dataset, seed=self.hparams.pair_seed)
            self._trainable = [k for k in range(len(self.attribute_names)) if self._pairs.trainable(k)]
            if not self._trainable:
                raise ValueError(f"no attribute of {self.attribute_names} has both values in the training split")
        return self._pairs

    def _set_learning_rates(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Official StepLR: lr * gamma ** (iteration // step_size), an iteration being one pass over attributes."""
        iteration = int(self.train_steps_done) // len(self._trainable)
        factor = self.hparams.lr_gamma ** (iteration // self.hparams.lr_step_size)
        for opt, base in zip(optimizers, (self.hparams.g_lr, self.hparams.d_lr)):
            for group in opt.param_groups:
                group["lr"] = base * factor

    def discriminator_loss(self, real: list[tuple], fake: list[tuple]) -> tuple[torch.Tensor, ...]:
        """(L_D1 + d2_weight * L_D2) / 4 over (image, label) pairs; returns (total, L_D1, L_D2).

        Each discriminator reads all images as one batch; every term is a per-image mean, as in the official
        sum of BCE losses.
        """
        kind = self.hparams.gan_loss
        images = torch.cat([x for x, _ in real + fake])
        labels = torch.cat([y for _, y in real + fake])
        sizes = [x.shape[0] for x, _ in real + fake]
        losses = []
        for disc in (self.d1, self.d2):
            logits = disc(images, labels).split(sizes)
            losses.append(sum(adv_loss(lg, i < len(real), kind) for i, lg in enumerate(logits)))
        return (losses[0] + self.hparams.d2_weight * losses[1]) / 4, losses[0], losses[1]

    def generator_adv_losses(self, fake: list[tuple]) -> tuple[torch.Tensor, torch.Tensor]:
        """Generator's adversarial losses (L_adv1, L_adv2): sum over the fakes of each discriminator's loss."""
        images, labels = torch.cat([x for x, _ in fake]), torch.cat([y for _, y in fake])
        sizes = [x.shape[0] for x, _ in fake]
        return tuple(sum(generator_adv_loss(lg, self.hparams.gan_loss) for lg in disc(images, labels).split(sizes))
                     for disc in (self.d1, self.d2))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        hp = self.hparams
        pairs = self._pair_source()
        opt_g, opt_d = self.optimizers()
        self._set_learning_rates((opt_g, opt_d))
        step = int(self.train_steps_done)
        k = self._trainable[step % len(self._trainable)]

        a, y_a = batch["image"].contiguous(memory_format=torch.channels_last), batch["attrs"].float()
        b, y_b = pairs.partners(y_a[:, k], k)
        b, y_b = b.to(a).contiguous(memory_format=torch.channels_last), y_b.to(y_a)
        y_c, y_d = y_a.clone(), y_b.clone()      # C carries B's value of k, D carries A's
        y_c[:, k], y_d[:, k] = y_b[:, k], y_a[:, k]
        out = self.exchange(a, b, k)

        self.toggle_optimizer(opt_d)
        loss_d, l_d1, l_d2 = self.discriminator_loss(
            real=[(a, y_a), (b, y_b)], fake=[(out["C"].detach(), y_c), (out["D"].detach(), y_d)])
        assert_finite(step, loss_d=loss_d)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        recon = F.mse_loss(out["A1"], a) + F.mse_loss(out["B1"], b)
        adv1, adv2 = self.generator_adv_losses([(out["C"], y_c), (out["D"], y_d)])
        loss_g = hp.recon_weight * recon + hp.adv1_weight * adv1 + hp.adv2_weight * adv2
        assert_finite(step, loss_g=loss_g, recon=recon)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        if self.encoder_ema is not None:
            ema_update(self.encoder_ema, self.encoder, hp.ema_beta)
            ema_update(self.decoder_ema, self.decoder, hp.ema_beta)

        self.train_steps_done += 1
        self.log_dict({"train/loss_d": loss_d.detach(), "train/loss_d1": l_d1.detach(),
                       "train/loss_d2": l_d2.detach(), "train/loss_g": loss_g.detach(),
                       "train/recon": recon.detach(), "train/adv1": adv1.detach(), "train/adv2": adv2.detach()},
                      prog_bar=False, batch_size=a.shape[0])
        self.log("recon", recon.detach(), prog_bar=True, logger=False, batch_size=a.shape[0])
        self.log("d", loss_d.detach(), prog_bar=True, logger=False, batch_size=a.shape[0])
