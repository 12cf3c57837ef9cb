"""L2M-GAN (Yang et al., CVPR 2021) as an ``EditingMethod``: training losses, EMA, editing.

Domains are (attribute, value) pairs, 2K of them (see ``networks.domain_index``). Each training sample edits one
attribute: the one of the domain the balanced sampler drew it for (``batch["domain"]``, the release's sampler,
``train_sampler: balanced``), else one drawn at random: x of domain src = (k, a_k) goes to tgt = (k, 1 - a_k) with
    s = E_src(x), s_unrel = decomposer_k(s), s_rel = s - s_unrel, s~_rel = T_tgt(s_rel), s~ = s_unrel + s~_rel,
    x_fake = G(x, s~).
Losses (generator side): adversarial, cycle |G(x_fake, s) - x|, style reconstruction |E_tgt(x_fake) - s~|,
perceptual |phi(x_fake) - phi(x)| with phi the method's own discriminator trunk, orthogonality
mean|s_rel * s_unrel| + mean|s~_rel * s_unrel|. Discriminator: non-saturating loss + R1 on reals.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from methods.base import EditingMethod, register_method
from methods.common.init import he_init
from methods.common.losses import adv_loss, generator_adv_loss, r1_penalty
from methods.common.training import assert_finite, ema_update, make_ema
from methods.l2mgan.networks import Discriminator, Generator, StyleEncoder, StyleTransformer, domain_index


@register_method("l2mgan")
class L2MGAN(EditingMethod):
    """L2M-GAN on a StarGAN v2 backbone, one model for every attribute (2K domains).

    Args (network sizes and loss weights; the official values are the defaults):
        style_dim: style code size (64).
        base_dim: channels at full resolution of G, E and D (default 2**14 // image_size, as StarGAN v2).
        max_conv_dim: channel cap (512).
        bottleneck_size: spatial size of the generator's bottleneck (16 px = StarGAN v2 without high-pass).
        w_hpf: > 0 enables StarGAN v2's high-pass skip path (official L2M-GAN: 1 with an 8 px bottleneck), 0 = off.
        lr, beta1, beta2, weight_decay: Adam for every network (1e-4, 0.0, 0.99, 1e-4).
        ema_beta: EMA decay of generator, style encoder and style transformer; edits use the EMA copies (0.999).
        lambda_reg, lambda_cyc, lambda_sty, lambda_per, lambda_ort: loss weights (all 1 in the official code).
        perceptual_depth: how many discriminator-trunk ResBlks the perceptual features go through.
        r1_fp32: run the real-image discriminator pass (and so R1) outside autocast, in float32.

    One training iteration = one discriminator step + one generator step, i.e. two optimizer steps: Lightning's
    ``max_steps`` / ``every_n_train_steps`` / ``global_step`` count 2 per iteration; ``self.iterations`` counts 1.
    """

    supports_strength = True
    # latent (the paper's contribution: the learned transformer T edits the attribute-relevant code) first,
    # reference-guided (the reference's attribute-relevant code swapped in) scored as a second row
    edit_modes = ("latent", "reference")
    multi_attribute = True

    def __init__(
        self,
        attribute_names: Sequence[str],
        image_size: int = 64,
        style_dim: int = 64,
        base_dim: int | None = None,
        max_conv_dim: int = 512,
        bottleneck_size: int = 16,
        w_hpf: float = 0.0,
        lr: float = 1e-4,
        beta1: float = 0.0,
        beta2: float = 0.99,
        weight_decay: float = 1e-4,
        ema_beta: float = 0.999,
        lambda_reg: float = 1.0,
        lambda_cyc: float = 1.0,
        lambda_sty: float = 1.0,
        lambda_per: float = 1.0,
        lambda_ort: float = 1.0,
        perceptual_depth: int = 2,
        r1_fp32: bool = True,
    ) -> None:
        super().__init__(attribute_names, image_size)
        self.save_hyperparameters()
        self.automatic_optimization = False
        k = len(self.attribute_names)
        base = int(base_dim) if base_dim else 2**14 // self.image_size
        self.generator = Generator(self.image_size, style_dim, base, max_conv_dim, bottleneck_size, w_hpf=w_hpf)
        self.style_encoder = StyleEncoder(self.image_size, style_dim, 2 * k, base, max_conv_dim)
        self.style_transformer = StyleTransformer(style_dim, k)
        self.discriminator = Discriminator(self.image_size, 2 * k, base, max_conv_dim)
        if not 0 <= perceptual_depth <= len(self.discriminator.trunk.blocks):
            raise ValueError(f"perceptual_depth must be in [0, {len(self.discriminator.trunk.blocks)}]")
        for net in (self.generator, self.style_encoder, self.style_transformer, self.discriminator):
            net.apply(he_init)
        self.generator_ema = make_ema(self.generator)
        self.style_encoder_ema = make_ema(self.style_encoder)
        self.style_transformer_ema = make_ema(self.style_transformer)
        self.register_buffer("iterations", torch.zeros((), dtype=torch.long))

    # -- training ----------------------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        kw = {"lr": float(hp.lr), "betas": (float(hp.beta1), float(hp.beta2)), "weight_decay": float(hp.weight_decay)}
        opt_d = torch.optim.Adam(self.discriminator.parameters(), **kw)
        g_params = itertools.chain(self.generator.parameters(), self.style_encoder.parameters(),
                                   self.style_transformer.parameters())
        opt_g = torch.optim.Adam(g_params, **kw)  # per-parameter Adam: same as StarGAN v2's one Adam per net
        return [opt_d, opt_g]

    @staticmethod
    def _styles(encoder: StyleEncoder, transformer: StyleTransformer, x: torch.Tensor, attribute: torch.Tensor,
                src: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(s, s_unrel, s_rel, s~_rel), each (B, style_dim), for images x of domains src edited to tgt."""
        s = encoder(x, src)
        s_unrel, s_rel = transformer.decompose(s, attribute)
        return s, s_unrel, s_rel, transformer.transform(s_rel, tgt)

    def discriminator_loss(self, x: torch.Tensor, attribute: torch.Tensor, src: torch.Tensor,
                           tgt: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Non-saturating D loss on reals (domain src) and fakes (domain tgt) + lambda_reg * R1 on reals."""
        x_real = x.detach().float().requires_grad_(True)
        with torch.autocast(device_type=x.device.type, enabled=not self.hparams.r1_fp32):
            out_real = self.discriminator(x_real, src)
        loss_real = adv_loss(out_real, real=True)
        loss_reg = r1_penalty(out_real, x_real)
        with torch.no_grad():
            _, s_unrel, _, s_rel_t = self._styles(self.style_encoder, self.style_transformer, x, attribute, src, tgt)
            x_fake = self.generator(x, s_unrel + s_rel_t)
        loss_fake = adv_loss(self.discriminator(x_fake, tgt), real=False)
        loss = loss_real + loss_fake + self.hparams.lambda_reg * loss_reg
        return loss, {"d_real": loss_real, "d_fake": loss_fake, "d_r1": loss_reg}

    def generator_loss(self, x: torch.Tensor, attribute: torch.Tensor, src: torch.Tensor,
                       tgt: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L2M-GAN's generator objective for G, E and T (the discriminator's weights are not updated by it)."""
        hp = self.hparams
        s, s_unrel, s_rel, s_rel_t = self._styles(self.style_encoder, self.style_transformer, x, attribute, src, tgt)
        s_t = s_unrel + s_rel_t
        x_fake = self.generator(x, s_t)
        loss_adv = generator_adv_loss(self.discriminator(x_fake, tgt))
        loss_cyc = (self.generator(x_fake, s) - x).abs().mean()
        loss_sty = (self.style_encoder(x_fake, tgt) - s_t).abs().mean()
        with torch.no_grad():
            feat_real = self.discriminator.features(x, hp.perceptual_depth)
        loss_per = (self.discriminator.features(x_fake, hp.perceptual_depth) - feat_real).abs().mean()
        loss_ort = (s_rel * s_unrel).abs().mean() + (s_rel_t * s_unrel).abs().mean()
        loss = (loss_adv + hp.lambda_cyc * loss_cyc + hp.lambda_sty * loss_sty + hp.lambda_per * loss_per
                + hp.lambda_ort * loss_ort)
        return loss, {"g_adv": loss_adv, "g_cyc": loss_cyc, "g_sty": loss_sty, "g_per": loss_per, "g_ort": loss_ort}

    def sample_edit_domains(self, attrs: torch.Tensor, domain: torch.Tensor | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For attrs (B, K) in {0, 1}: the attribute each row edits and its source / flipped target domains (B,).

        ``domain`` (B,): the domain ids (2k + v) a balanced sampler drew the rows for (``batch["domain"]``); the
        row then edits attribute k from its domain, so source domains are as balanced as the sampler's draws
        (the release's source domain is the image's sampled domain). Without it, a uniform random attribute.
        """
        rows = torch.arange(attrs.shape[0], device=attrs.device)
        if domain is not None:
            attribute = domain.to(attrs.device).long() // 2
        else:
            attribute = torch.randint(attrs.shape[1], (attrs.shape[0],), device=attrs.device)
        value = attrs[rows, attribute].round().long()
        return attribute, domain_index(attribute, value), domain_index(attribute, 1 - value)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        opt_d, opt_g = self.optimizers()
        x = batch["image"]
        attribute, src, tgt = self.sample_edit_domains(batch["attrs"], batch.get("domain"))
        step = int(self.iterations)

        self.toggle_optimizer(opt_d)
        d_loss, d_logs = self.discriminator_loss(x, attribute, src, tgt)
        assert_finite(step, d_loss=d_loss, **d_logs)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        g_loss, g_logs = self.generator_loss(x, attribute, src, tgt)
        assert_finite(step, g_loss=g_loss, **g_logs)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        beta = self.hparams.ema_beta
        ema_update(self.generator_ema, self.generator, beta)
        ema_update(self.style_encoder_ema, self.style_encoder, beta)
        ema_update(self.style_transformer_ema, self.style_transformer, beta)
        self.iterations += 1

        self.log_dict({"train/d_loss": d_loss.detach(), "train/g_loss": g_loss.detach()}, prog_bar=True)
        self.log_dict({f"train/{k}": v.detach() for k, v in {**d_logs, **g_logs}.items()})

    # -- editing -----------------------------------------------------------------------------------------
    def edit(
        self,
        images: torch.Tensor,
        src_attrs: torch.Tensor,
        tgt_attrs: torch.Tensor,
        strength: float = 1.0,
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Edit with the EMA networks, one attribute at a time (in ``attribute_names`` order).

        For each attribute k that differs, rows of domain (k, src) get
            G(x, s_unrel + s_rel + strength * (s~_rel - s_rel)),
        with s~_rel = T_(k, tgt)(s_rel), or, given ``reference`` (B, 3, H, W) exemplars with ``tgt_attrs``,
        s~_rel = the reference's attribute-relevant code under E_(k, tgt). Rows whose attributes already
        match are returned unchanged. Returns (B, 3, H, W) in [-1, 1], dtype and device of ``images``.
        """
        self.check_edit_inputs(images, src_attrs, tgt_attrs, reference)
        dtype = next(self.generator_ema.parameters()).dtype
        out = images.to(dtype).clone()
        ref = reference.to(dtype) if reference is not None else None
        current, target = src_attrs.round().long(), tgt_attrs.round().long()
        enc, trans, gen = self.style_encoder_ema, self.style_transformer_ema, self.generator_ema
        for k in range(len(self.attribute_names)):
            rows = (current[:, k] != target[:, k]).nonzero().flatten()
            if rows.numel() == 0:
                continue
            x = out[rows]
            attribute = torch.full_like(rows, k)
            src, tgt = domain_index(attribute, current[rows, k]), domain_index(attribute, target[rows, k])
            s, s_unrel, s_rel, s_rel_t = self._styles(enc, trans, x, attribute, src, tgt)
            if ref is not None:
                _, s_rel_t = trans.decompose(enc(ref[rows], tgt), attribute)
            out[rows] = gen(x, s_unrel + s_rel + float(strength) * (s_rel_t - s_rel))
            current[rows, k] = target[rows, k]
        return out.clamp(-1, 1).to(images.dtype)
