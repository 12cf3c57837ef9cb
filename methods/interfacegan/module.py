"""InterFaceGAN (Shen et al., CVPR 2020) as an attredit-bench method.

Training runs four phases in one ``fit`` (manual optimisation, counted by the ``iteration`` buffer):

1. GAN (``gan_steps`` iterations): ``backbone`` "dcgan" (a compact generator, mapping z -> w and a style-modulated
   DCGAN synthesis) or "stylegan2" (StyleGAN2's generator and residual discriminator, ``methods/common/stylegan2.py``,
   with optional style mixing and path-length regularisation), non-saturating loss + lazy R1, EMA of the generator.
2. The method's own attribute predictor, trained on the real training images and labels (the first
   ``predictor_steps`` iterations, alongside the GAN).
3. The encoder that inverts the (EMA) generator, from iteration ``encoder_start`` until ``gan_steps +
   encoder_steps``, with one of two objectives (``encoder_objective``): "regression" (code regression and
   reconstruction of generated images plus reconstruction of real images) or "idinvert" (idinvert's
   domain-guided encoder: real images only, pixel + perceptual (the discriminator's features) + adversarial
   loss, the discriminator trained on real images vs. reconstructions, with R1, in the encoder-only
   iterations). The encoder predicts one w (``encoder_output="w"``) or w+ (``"wp"``, one w per layer).
4. Boundary search (last iteration): ``num_boundary_samples`` codes are generated and scored by the predictor;
   a linear SVM per attribute separates the top and bottom ``boundary_ratio``; the unit normals are buffers.

Editing a real image: encoder -> ``inversion_steps`` of code optimisation -> move the code along the (possibly
conditional) normal to signed distance ``+-edit_distance`` (in standard deviations of the sampled codes along
the normal) -> render with the generator. The output is the generator's image: the whole face is re-rendered.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from methods.base import EditingMethod, register_method
from methods.common.losses import adv_loss, generator_adv_loss, r1_penalty
from methods.common.stylegan2_training import PathLengthPenalty, ema_beta, lazy_weight, mix_styles
from methods.common.training import assert_finite, ema_update, make_ema
from methods.interfacegan.backbones import build_discriminator, build_generator, check_backbone
from methods.interfacegan.boundary import project_boundary, train_boundary
from methods.interfacegan.inversion import encoder_losses, idinvert_encoder_losses, optimise_codes
from methods.interfacegan.networks import AttributePredictor, Encoder

#: boundary samples of a fit stopped before its schedule's end (a smoke run, ``--trainer.max_steps 2``)
EARLY_STOP_BOUNDARY_SAMPLES = 2000

log = logging.getLogger(__name__)

ENCODER_OBJECTIVES = ("regression", "idinvert")
ENCODER_OUTPUTS = ("w", "wp")


def check_encoder_settings(objective: str, output: str, latent_space: str, inversion_space: str,
                           co_train_generator: bool) -> None:
    """Raise ValueError for an encoder objective / output the rest of the settings cannot use."""
    if objective not in ENCODER_OBJECTIVES:
        raise ValueError(f"encoder_objective must be one of {ENCODER_OBJECTIVES}, got {objective!r}")
    if output not in ENCODER_OUTPUTS:
        raise ValueError(f"encoder_output must be one of {ENCODER_OUTPUTS}, got {output!r}")
    if output == "wp" and (latent_space != "w" or inversion_space != "wp"):
        raise ValueError("encoder_output: wp predicts w+ codes: needs latent_space: w and inversion_space: wp")
    if objective == "idinvert" and co_train_generator:
        raise ValueError("encoder_objective: idinvert trains the encoder against a fixed generator: "
                         "set co_train_generator: false")


@register_method("interfacegan")
class InterFaceGAN(EditingMethod):
    """InterFaceGAN: linear semantic boundaries in the latent space of a GAN, real images edited by inversion.

    Args (beyond ``attribute_names`` / ``image_size``):
        backbone: "dcgan" (default; the suite's compact generator and discriminator, ``networks.py``) or
            "stylegan2" (``methods/common/stylegan2.py``: skip generator with noise inputs, residual discriminator;
            ``g_norm`` unused, ``mapping_lr_mul`` is the mapping layers' equalized-LR multiplier, official 0.01).
        latent_space: "w" (after the mapping network) or "z" (the Gaussian input) — where boundaries live.
        inversion_space: "wp" (one w per layer, as in-domain inversion) or "w"; ignored when latent_space="z".
        z_dim, w_dim, mapping_layers, g_channel_base, g_channel_max: the generator.
        g_norm: "batch" (DCGAN), "pixel" (PGGAN) or "instance" (StyleGAN's AdaIN): the normalisation each
            style modulation scales and shifts.
        d_channel_base, d_channel_max: the discriminator (the encoder uses the same widths).
        lr_g, lr_d, beta1, beta2, mapping_lr_mul, r1_gamma, r1_every, ema_beta, gan_steps: GAN training.
        ema_kimg, ema_rampup: when ``ema_kimg`` is set, the EMA's half-life in thousands of images (StyleGAN2:
            beta = 0.5 ** (batch / (ema_kimg * 1000)), the half-life capped at ``ema_rampup`` x images seen);
            otherwise ``ema_beta`` with the ramp min(ema_beta, (1 + it) / (10 + it)).
        style_mixing_prob, pl_weight, pl_every, pl_decay, pl_batch_shrink: StyleGAN2's style-mixing
            regularisation and lazy path-length regularisation (official 0.9, 2, 4, 0.01, 2); stylegan2 only.
        predictor_steps, predictor_lr, predictor_width: the own attribute predictor.
        encoder_start, encoder_steps, lr_e: the encoder's schedule and learning rate.
        encoder_objective: "regression" (default; the suite's original objective, weights ``code_weight``,
            ``fake_rec_weight``, ``real_rec_weight``, ``feature_weight`` (a perceptual term on the
            discriminator's features of the real reconstruction)) or "idinvert" (Zhu et al. 2020: real images
            only, ``idinvert_pixel_weight`` x pixel MSE + ``idinvert_feature_weight`` x MSE of the discriminator's
            features (idinvert: VGG16 conv4_3, 5e-5 on 0-255 inputs) + ``idinvert_adv_weight`` x the
            non-saturating loss of the discriminator on the reconstruction (official training script 0.08);
            in iterations after the GAN phase the discriminator steps on real images vs. reconstructions with
            R1 weight ``idinvert_r1_gamma`` (official 10; lazy, every ``r1_every``-th iteration) at learning
            rate ``idinvert_lr_d`` (None: ``lr_d``; official 1e-4)). Requires ``co_train_generator=False``.
        encoder_output: "w" (default: one code, broadcast to w+ before the edit-time refinement) or "wp"
            (w+ (B, num_ws, w_dim), idinvert's encoder; needs ``latent_space="w"`` and ``inversion_space="wp"``).
        num_boundary_samples, boundary_ratio, boundary_split, boundary_seed: boundary search.
        edit_distance: nominal signed distance (in std of the codes along the normal) an edit moves to.
        conditional_on: attributes whose boundaries edits are projected off (kept fixed) when not edited.
        inversion_steps, inversion_lr, inversion_domain_weight, inversion_feature_weight: edit-time refinement.
    """

    supports_strength = True
    multi_attribute = True
    edits_own_samples = True  # the paper's own protocol: edit GAN samples along the boundaries (no inversion)

    def __init__(
        self,
        attribute_names: Sequence[str],
        image_size: int = 64,
        backbone: str = "dcgan",
        latent_space: str = "w",
        inversion_space: str = "wp",
        z_dim: int = 64,
        w_dim: int = 64,
        mapping_layers: int = 4,
        g_channel_base: int = 512,
        g_channel_max: int = 64,
        g_norm: str = "batch",
        d_channel_base: int = 512,
        d_channel_max: int = 64,
        lr_g: float = 0.002,
        lr_d: float = 0.002,
        beta1: float = 0.0,
        beta2: float = 0.99,
        mapping_lr_mul: float = 0.1,
        r1_gamma: float = 1.0,
        r1_every: int = 4,
        ema_beta: float = 0.995,
        ema_kimg: float | None = None,
        ema_rampup: float | None = None,
        style_mixing_prob: float = 0.0,
        pl_weight: float = 0.0,
        pl_every: int = 4,
        pl_decay: float = 0.01,
        pl_batch_shrink: int = 2,
        gan_steps: int = 1000,
        predictor_steps: int = 300,
        predictor_lr: float = 0.001,
        predictor_width: int = 16,
        encoder_start: int = 500,
        encoder_steps: int = 300,
        co_train_generator: bool = False,
        lr_e: float = 0.001,
        code_weight: float = 1.0,
        fake_rec_weight: float = 1.0,
        real_rec_weight: float = 1.0,
        feature_weight: float = 0.0,
        encoder_objective: str = "regression",
        encoder_output: str = "w",
        idinvert_pixel_weight: float = 1.0,
        idinvert_feature_weight: float = 0.0,
        idinvert_adv_weight: float = 0.08,
        idinvert_r1_gamma: float = 10.0,
        idinvert_lr_d: float | None = None,
        num_boundary_samples: int = 10000,
        boundary_ratio: float = 0.02,
        boundary_split: float = 0.7,
        boundary_seed: int = 0,
        edit_distance: float = 3.0,
        conditional_on: Sequence[str] = (),
        inversion_steps: int = 50,
        inversion_lr: float = 0.01,
        inversion_domain_weight: float = 0.1,
        inversion_feature_weight: float = 0.0,
    ) -> None:
        super().__init__(attribute_names, image_size)
        check_backbone(backbone)
        if backbone == "dcgan" and (style_mixing_prob > 0 or pl_weight > 0):
            raise ValueError("style_mixing_prob and pl_weight are StyleGAN2 regularisers: set backbone: stylegan2")
        if latent_space not in ("w", "z"):
            raise ValueError(f"latent_space must be 'w' or 'z', got {latent_space!r}")
        if inversion_space not in ("w", "wp"):
            raise ValueError(f"inversion_space must be 'w' or 'wp', got {inversion_space!r}")
        check_encoder_settings(encoder_objective, encoder_output, latent_space, inversion_space, co_train_generator)
        unknown = [a for a in conditional_on if a not in self.attribute_names]
        if unknown:
            raise ValueError(f"conditional_on names {unknown}, not among the attributes {self.attribute_names}")
        if gan_steps < 1 or not 0 <= encoder_start <= gan_steps or encoder_steps < 0:
            raise ValueError("need gan_steps >= 1, 0 <= encoder_start <= gan_steps and encoder_steps >= 0")
        conditional_on = list(conditional_on)
        self.save_hyperparameters()
        self.automatic_optimization = False

        k = len(self.attribute_names)
        self.generator = build_generator(backbone, image_size, z_dim, w_dim, mapping_layers, g_channel_base,
                                         g_channel_max, g_norm, mapping_lr_mul)
        self.generator_ema = make_ema(self.generator)
        self.discriminator = build_discriminator(backbone, image_size, d_channel_base, d_channel_max)
        if backbone == "stylegan2":  # holds the running mean path length (a buffer, so checkpoints keep it)
            self.path_length = PathLengthPenalty(pl_decay)
        self.predictor = AttributePredictor(image_size, k, predictor_width)
        code_dim = z_dim if latent_space == "z" else w_dim
        self.encoder = Encoder(image_size, d_channel_base, d_channel_max, code_dim,
                               num_ws=self.generator.num_ws if encoder_output == "wp" else None)

        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self.register_buffer("boundaries_ready", torch.zeros((), dtype=torch.bool))
        self.register_buffer("boundary_normals", torch.zeros(k, code_dim))
        self.register_buffer("boundary_offsets", torch.zeros(k))
        self.register_buffer("boundary_scales", torch.ones(k))
        self.register_buffer("boundary_val_accuracy", torch.full((k,), float("nan")))
        self.register_buffer("boundary_remaining_accuracy", torch.full((k,), float("nan")))
        self._conditioned = [self.attribute_index(a) for a in conditional_on]

    def train(self, mode: bool = True) -> InterFaceGAN:
        super().train(mode)
        self.generator_ema.eval()  # the EMA generator always renders with its running statistics
        return self

    # -- schedule --------------------------------------------------------------------------------------
    @property
    def stylegan2(self) -> bool:
        return self.hparams.get("backbone", "dcgan") == "stylegan2"

    @property
    def total_iterations(self) -> int:
        return self.hparams.gan_steps + self.hparams.encoder_steps

    @property
    def idinvert(self) -> bool:
        """Whether the encoder trains with idinvert's objective (checkpoints older than the option: no)."""
        return self.hparams.get("encoder_objective", "regression") == "idinvert"

    def _phases(self, it: int) -> tuple[bool, bool, bool]:
        """(GAN trains, predictor trains, encoder trains) at iteration ``it``."""
        h = self.hparams
        return it < h.gan_steps, it < h.predictor_steps, h.encoder_start <= it < self.total_iterations

    def planned_optimizer_steps(self) -> int:
        """Lightning's ``global_step`` at the end of the schedule: 2 optimizer steps per GAN iteration
        (discriminator; generator + encoder + predictor) and, per encoder-only iteration (after the GAN phase),
        1 with the "regression" objective (encoder + predictor) or 2 with "idinvert" (discriminator on real vs.
        reconstructions; encoder + predictor): ``2 x gan_steps + encoder_steps`` or ``2 x (gan_steps +
        encoder_steps)``. Set ``trainer.max_steps`` to this number (or -1: the method stops itself after its
        last phase)."""
        per_encoder_iteration = 2 if self.idinvert else 1
        return 2 * self.hparams.gan_steps + per_encoder_iteration * self.hparams.encoder_steps

    def configure_optimizers(self):
        h = self.hparams
        betas = (float(h.beta1), float(h.beta2))
        aux_betas = (0.9, 0.99)
        # StyleGAN2's mapping layers carry lr_mul in their equalized-LR scaling; the DCGAN's get it here
        mapping_lr = h.lr_g if self.stylegan2 else h.lr_g * h.mapping_lr_mul
        opt_main = torch.optim.Adam([
            {"params": self.generator.synthesis.parameters(), "lr": h.lr_g},
            {"params": self.generator.mapping.parameters(), "lr": mapping_lr},
            {"params": self.encoder.parameters(), "lr": h.lr_e, "betas": aux_betas},
            {"params": self.predictor.parameters(), "lr": h.predictor_lr, "betas": aux_betas},
        ], betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=h.lr_d, betas=betas)
        return [opt_main, opt_d]

    def on_fit_start(self) -> None:
        planned = self.planned_optimizer_steps()
        max_steps = self.trainer.max_steps if self.trainer is not None else -1
        if max_steps not in (-1, planned):
            log.warning("interfacegan: trainer.max_steps=%s but the schedule takes %s optimizer steps; the "
                        "boundaries are then searched when fit ends, after the last checkpoint", max_steps, planned)

    # -- latent codes ----------------------------------------------------------------------------------
    @property
    def code_kind(self) -> str:
        """'z', 'w' or 'wp': the kind of code inversion optimises (the encoder predicts z or w)."""
        return "z" if self.hparams.latent_space == "z" else self.hparams.inversion_space

    def render(self, codes: torch.Tensor, ema: bool = True) -> torch.Tensor:
        """z (B, z_dim) when latent_space="z", else w (B, w_dim) / w+ (B, num_ws, w_dim) -> images (B, 3, R, R).

        Deterministic: StyleGAN2's noise inputs use their fixed maps (noise_mode "const"), and rendering a code
        never moves the mapping's ``w_avg``."""
        g = self.generator_ema if ema else self.generator
        if self.hparams.latent_space == "z":
            codes = g.mapping(codes, skip_w_avg_update=True)
        return g.synthesize(codes, noise_mode="const")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, R, R) -> the encoder's code: z (B, z_dim), w (B, w_dim) or, with
        ``encoder_output="wp"``, w+ (B, num_ws, w_dim)."""
        return self.encoder(images)

    def _sync_encoder_origin(self) -> None:
        """w and w+ encoders predict offsets from the trained generator's current mean w."""
        if self.hparams.latent_space == "w":
            self.encoder.origin.copy_(self.generator.mapping.w_avg)

    def _sample(self, n: int, generator: torch.Generator | None = None, ema: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes in the boundary space (n, D), images (n, 3, R, R)) of random z, rendered like ``render``."""
        g = self.generator_ema if ema else self.generator
        z = torch.randn(n, self.hparams.z_dim, generator=generator, device="cpu").to(self.device)
        w = g.mapping(z)
        images = g.synthesize(w, noise_mode="const")
        return (z if self.hparams.latent_space == "z" else w), images

    def _gan_sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """StyleGAN2 training samples of the trained generator: (w+ (n, num_ws, w_dim) after style mixing, images
        (n, 3, R, R) with random noise). The mapping tracks ``w_avg`` as it runs (training mode)."""
        g, z = self.generator, torch.randn(n, self.hparams.z_dim, device=self.device)
        ws = mix_styles(g.mapping, z, g.broadcast(g.mapping(z)), self.hparams.style_mixing_prob)
        return ws, g.synthesis(ws, noise_mode="random")

    # -- training --------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        it = int(self.iteration)
        real, attrs = batch["image"], batch["attrs"]
        opt_main, opt_d = self.optimizers()
        train_gan, train_pred, train_enc = self._phases(it)
        if train_gan:
            self._discriminator_step(it, real, self._gan_fakes(real.shape[0]), opt_d, self.hparams.r1_gamma)
        elif train_enc and self.idinvert:  # idinvert: the discriminator keeps training, on reconstructions
            self._set_lr(opt_d, self.hparams.get("idinvert_lr_d"))
            self._discriminator_step(it, real, self._reconstructions(real), opt_d, self.hparams.idinvert_r1_gamma)
        if train_gan or train_pred or train_enc:
            self._main_step(it, real, attrs, opt_main, train_gan, train_pred, train_enc)
        self.iteration += 1
        if int(self.iteration) >= self.total_iterations:
            if not bool(self.boundaries_ready):
                self.find_boundaries()
            self.trainer.should_stop = True

    @torch.no_grad()
    def _gan_fakes(self, n: int) -> torch.Tensor:
        """The GAN phase's fakes for the discriminator: n samples (n, 3, R, R) of the trained generator."""
        if self.stylegan2:
            return self._gan_sample(n)[1]
        return self.generator(torch.randn(n, self.hparams.z_dim, device=self.device))

    @torch.no_grad()
    def _reconstructions(self, real: torch.Tensor) -> torch.Tensor:
        """idinvert's fakes for the discriminator: real images (B, 3, R, R) encoded, rendered by the EMA generator."""
        self._sync_encoder_origin()
        return self.render(self.encode(real))

    @staticmethod
    def _set_lr(optimizer, lr: float | None) -> None:  # noqa: ANN001
        if lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = float(lr)

    def _discriminator_step(self, it: int, real: torch.Tensor, fake: torch.Tensor, opt_d,  # noqa: ANN001
                            r1_gamma: float) -> None:
        """Non-saturating loss on ``real`` vs. ``fake`` (B, 3, R, R), lazy R1 (weight ``r1_gamma``) on every
        ``r1_every``-th iteration."""
        h = self.hparams
        self.toggle_optimizer(opt_d)
        do_r1 = r1_gamma > 0 and it % h.r1_every == 0
        x = real.detach().requires_grad_(do_r1)
        real_logits = self.discriminator(x)
        loss_d = adv_loss(real_logits, True) + adv_loss(self.discriminator(fake.detach()), False)
        if do_r1:
            r1 = r1_penalty(real_logits, x)
            loss_d = loss_d + r1_gamma * h.r1_every * r1
            self.log("train/r1", r1.detach())
        assert_finite(it, loss_d=loss_d)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        self.log("train/loss_d", loss_d.detach(), prog_bar=True)

    def _main_step(self, it: int, real: torch.Tensor, attrs: torch.Tensor, opt_main,  # noqa: ANN001
                   train_gan: bool, train_pred: bool, train_enc: bool) -> None:
        """One step of the generator (adversarial), the predictor (BCE on real labels) and the encoder."""
        h = self.hparams
        self.toggle_optimizer(opt_main)
        loss = real.new_zeros(())
        logs: dict[str, torch.Tensor] = {}
        if train_gan and self.stylegan2:
            loss, logs = self._stylegan2_generator_loss(it, real.shape[0])
        elif train_gan:
            code, fake = self._sample(real.shape[0], ema=False)
            loss_g = generator_adv_loss(self.discriminator(fake))
            assert_finite(it, loss_g=loss_g)
            loss, logs["train/loss_g"] = loss + loss_g, loss_g.detach()
            w = code if h.latent_space == "w" else self.generator.mapping(code)
            with torch.no_grad():
                self.generator.mapping.w_avg.lerp_(w.detach().mean(0), 0.01)
        if train_pred:
            loss_p = F.binary_cross_entropy_with_logits(self.predictor(real), attrs)
            assert_finite(it, loss_predictor=loss_p)
            loss, logs["train/loss_predictor"] = loss + loss_p, loss_p.detach()
        if train_enc:
            loss_e, enc_logs = self._encoder_loss(it, real, train_gan)
            loss = loss + loss_e
            logs.update(enc_logs)
        opt_main.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_main.step()
        self.untoggle_optimizer(opt_main)
        if train_gan:
            with torch.no_grad():
                ema_update(self.generator_ema, self.generator, self._ema_beta(it, real.shape[0]))
        self.log_dict(logs, prog_bar=True)

    def _encoder_loss(self, it: int, real: torch.Tensor, train_gan: bool
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The encoder's weighted loss for this iteration and its unweighted terms (for the log)."""
        h = self.hparams
        self._sync_encoder_origin()
        if self.idinvert:  # real images only, through the fixed EMA generator
            features = self.discriminator.features if h.idinvert_feature_weight > 0 else None
            losses = idinvert_encoder_losses(real, self.encode, self.render, self.discriminator, features)
            assert_finite(it, **losses)
            loss = h.idinvert_pixel_weight * losses["pixel"] + h.idinvert_adv_weight * losses["adv"]
            if features is not None:
                loss = loss + h.idinvert_feature_weight * losses["feature"]
        else:
            # co-training: during the GAN phase the reconstructions go through the trained generator, which
            # then learns from them too; otherwise (and after the GAN phase) through the frozen EMA generator
            ema = not (train_gan and h.co_train_generator)
            with torch.no_grad():
                target, fake = self._sample(real.shape[0], ema=ema)
            losses = encoder_losses(real, fake, target, self.encode, lambda c: self.render(c, ema=ema),
                                    self.discriminator.features, h.feature_weight)
            assert_finite(it, **losses)
            loss = (h.code_weight * losses["code"] + h.fake_rec_weight * losses["fake_rec"]
                    + h.real_rec_weight * losses["real_rec"])
        return loss, {f"train/enc_{k}": v.detach() for k, v in losses.items()}

    def _ema_beta(self, it: int, batch_size: int) -> float:
        h = self.hparams
        if h.get("ema_kimg") is not None:  # StyleGAN2: a half-life in images, images seen before this batch
            return ema_beta(batch_size, h.ema_kimg, it * batch_size, h.get("ema_rampup"))
        return min(h.ema_beta, (1 + it) / (10 + it))

    def _stylegan2_generator_loss(self, it: int, batch_size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Non-saturating loss on style-mixed samples, plus the lazy path-length penalty on every ``pl_every``-th
        iteration (on batch / pl_batch_shrink samples, weight pl_weight x pl_every)."""
        h = self.hparams
        _, fake = self._gan_sample(batch_size)
        loss = generator_adv_loss(self.discriminator(fake))
        assert_finite(it, loss_g=loss)
        logs = {"train/loss_g": loss.detach()}
        pl_weight = lazy_weight(h.pl_weight, h.pl_every, it)
        if pl_weight > 0:
            ws, images = self._gan_sample(max(1, batch_size // h.pl_batch_shrink))
            penalty = self.path_length(images, ws)
            assert_finite(it, path_length=penalty)
            loss = loss + pl_weight * penalty
            logs["train/path_length"] = penalty.detach()
        return loss, logs

    def on_train_end(self) -> None:
        # fallback when fit stopped before the schedule's last iteration (e.g. a shorter max_steps): an
        # early-stopped or smoke run gets a small search, not the paper's 500K samples
        if not bool(self.boundaries_ready):
            n = min(int(self.hparams.num_boundary_samples), EARLY_STOP_BOUNDARY_SAMPLES)
            log.warning("interfacegan: fit stopped before the schedule's end (step %d): searching the boundaries "
                        "on %d samples instead of num_boundary_samples=%d", int(self.global_step), n,
                        int(self.hparams.num_boundary_samples))
            self.find_boundaries(num_samples=n)
            # last.ckpt was written before the search: rewrite it so a scored checkpoint holds the boundaries
            for cb in getattr(self.trainer, "checkpoint_callbacks", []):
                if getattr(cb, "last_model_path", ""):
                    self.trainer.save_checkpoint(cb.last_model_path)

    # -- boundary search -------------------------------------------------------------------------------
    @torch.no_grad()
    def find_boundaries(self, chunk: int | None = None, num_samples: int | None = None) -> dict[str, float]:
        """Sample codes, score their images with the own predictor, fit one SVM boundary per attribute.

        Memory is bounded: images are generated ``chunk`` at a time (default: about 2M pixels, 500 images at
        64 px, 32 at 256 px) and dropped once scored; only the codes (N, D) float32 and scores are kept.
        Returns {attribute: SVM validation accuracy}; also stored in ``boundary_val_accuracy``.
        """
        h = self.hparams
        total = int(num_samples or h.num_boundary_samples)
        chunk = chunk or max(1, min(500, (1 << 21) // (int(self.image_size) ** 2)))
        was_training = self.training
        self.eval()
        g = torch.Generator().manual_seed(h.boundary_seed)
        codes, scores = [], []
        for start in range(0, total, chunk):
            c, images = self._sample(min(chunk, total - start), g)
            codes.append(c.float().cpu())
            scores.append(self.predictor(images).float().cpu())
            del images
        code_t, score_t = torch.cat(codes), torch.cat(scores)
        result = {}
        for k, name in enumerate(self.attribute_names):
            bd = train_boundary(code_t.numpy(), score_t[:, k].numpy(), h.boundary_ratio, h.boundary_split,
                                h.boundary_seed + k)
            normal = torch.from_numpy(bd.normal).float()
            self.boundary_normals[k] = normal.to(self.device)
            self.boundary_offsets[k] = bd.offset
            self.boundary_scales[k] = float((code_t @ normal).std())
            self.boundary_val_accuracy[k] = bd.val_accuracy
            self.boundary_remaining_accuracy[k] = bd.remaining_accuracy
            result[name] = bd.val_accuracy
            log.info("interfacegan boundary %s: SVM validation accuracy %.3f, remaining %.3f", name,
                     bd.val_accuracy, bd.remaining_accuracy)
        self.boundaries_ready.fill_(True)
        self.train(was_training)
        return result

    # -- editing ---------------------------------------------------------------------------------------
    def invert(self, images: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Real images (B, 3, R, R) in [-1, 1] -> codes of ``code_kind``: encoder, then optimisation.

        In eval mode the codes are memoised per image (by its bytes and the inversion settings): each image's
        inversion is independent of its batch (per-sample losses, element-wise Adam) and deterministic, so
        editing the same image towards another attribute or strength reuses its code instead of redoing the
        optimisation. The memo belongs to one state of the weights (a digest of every parameter and buffer,
        checked on each call): new weights empty it. Training mode never uses it."""
        h = self.hparams
        steps = h.inversion_steps if steps is None else steps
        memo = self._current_memo() if not self.training else None
        keys = [self._memo_key(img, steps) for img in images] if memo is not None else []
        if memo is not None and keys and all(k in memo for k in keys):
            return torch.stack([memo[k] for k in keys]).to(images.device)
        with torch.inference_mode(False), torch.no_grad():
            codes = self.encode(images.detach().clone())
            if self.code_kind == "wp":
                codes = self.generator_ema.broadcast(codes).clone()
        codes = optimise_codes(images, codes, self.render, self.encode, steps, h.inversion_lr,
                               h.inversion_domain_weight, self.discriminator.features, h.inversion_feature_weight)
        if memo is not None:
            if len(memo) + len(keys) > self.INVERSION_MEMO_SIZE:
                memo.clear()
            memo.update({k: c.detach().cpu().clone() for k, c in zip(keys, codes)})
        return codes

    #: most memoised inversions (one code per image: (num_ws, w_dim) floats)
    INVERSION_MEMO_SIZE = 50_000

    @property
    def _inversion_memo(self) -> dict[tuple, torch.Tensor]:
        if not hasattr(self, "_memo"):
            self._memo: dict[tuple, torch.Tensor] = {}
        return self._memo

    def weights_digest(self) -> str:
        """SHA-1 of every parameter and buffer (a few ms at demo size): the state the memo belongs to."""
        digest = hashlib.sha1()
        for t in [*self.parameters(), *self.buffers()]:
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def _current_memo(self) -> dict[tuple, torch.Tensor]:
        memo, now = self._inversion_memo, self.weights_digest()
        if getattr(self, "_memo_weights", None) != now:
            memo.clear()
            self._memo_weights = now
        return memo

    @staticmethod
    def _memo_key(image: torch.Tensor, steps: int) -> tuple:
        data = image.detach().float().cpu().contiguous().numpy().tobytes()
        return (hashlib.sha1(data).hexdigest(), tuple(image.shape), int(steps))

    def directions(self, edited: Sequence[int]) -> torch.Tensor:
        """(K, D) unit directions: normal k projected off the ``conditional_on`` normals not in ``edited``."""
        conds = [c for c in self._conditioned if c not in edited]
        normals = self.boundary_normals
        return torch.stack([project_boundary(normals[k], normals[[c for c in conds if c != k]])
                            for k in range(len(self.attribute_names))])

    def signed_distance(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, K) distance of codes to each boundary, in std of the sampled codes along the normal
        (w+ codes: of their mean over layers)."""
        base = codes.mean(1) if codes.ndim == 3 else codes
        return (base @ self.boundary_normals.T + self.boundary_offsets) / self.boundary_scales

    def move(self, codes: torch.Tensor, src_attrs: torch.Tensor, tgt_attrs: torch.Tensor,
             strength: float = 1.0) -> torch.Tensor:
        """Move each code along the boundaries of its edited attributes (src != tgt) towards signed distance
        ``+-edit_distance`` (sign of the target), scaled by ``strength``; already beyond it = no move."""
        src, tgt = src_attrs.round().to(codes.device), tgt_attrs.round().to(codes.device)
        edited = src != tgt
        sign = 2 * tgt - 1
        dist = self.signed_distance(codes)
        amount = (self.hparams.edit_distance - sign * dist).clamp(min=0) * sign * float(strength)
        amount = amount * edited * self.boundary_scales  # (B, K) in code units
        delta = torch.zeros(codes.shape[0], codes.shape[-1], device=codes.device, dtype=codes.dtype)
        cache: dict[tuple[int, ...], torch.Tensor] = {}
        for i in range(codes.shape[0]):
            key = tuple(torch.nonzero(edited[i]).flatten().tolist())
            if not key:
                continue
            if key not in cache:
                cache[key] = self.directions(key)
            delta[i] = amount[i] @ cache[key]
        return codes + (delta[:, None] if codes.ndim == 3 else delta)

    # -- the GAN-sample protocol (evaluators/gan_samples.py) --------------------------------------------
    def sample_codes(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Codes of the boundary space (n, D) of the EMA generator: z ~ N(0, I) drawn with ``generator``,
        mapped to w when ``latent_space="w"``."""
        z = torch.randn(n, self.hparams.z_dim, generator=generator, device="cpu").to(self.device)
        if self.hparams.latent_space == "z":
            return z
        with torch.inference_mode(False), torch.no_grad():
            return self.generator_ema.mapping(z)

    def render_codes(self, codes: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(False), torch.no_grad():
            return self.render(codes).clamp(-1, 1)

    def edit_codes(self, codes: torch.Tensor, src_attrs: torch.Tensor, tgt_attrs: torch.Tensor,
                   strength: float = 1.0) -> torch.Tensor:
        """The same move as ``edit`` (``move``: towards signed distance +-edit_distance, conditional projection
        as configured), applied to sampled codes instead of inverted ones."""
        if not bool(self.boundaries_ready):
            raise RuntimeError("interfacegan has no boundaries yet: train it (the last phase searches them)")
        with torch.inference_mode(False), torch.no_grad():
            return self.move(codes, src_attrs.float(), tgt_attrs.float(), strength)

    def edit(self, images, src_attrs, tgt_attrs, strength=1.0, reference=None):
        self.check_edit_inputs(images, src_attrs, tgt_attrs, reference)
        if not bool(self.boundaries_ready):
            raise RuntimeError("interfacegan has no boundaries yet: train it (the last phase searches them) or "
                               "call find_boundaries()")
        x = images.float()
        codes = self.invert(x)
        with torch.inference_mode(False), torch.no_grad():
            codes = self.move(codes, src_attrs.float(), tgt_attrs.float(), strength)
            out = self.render(codes).clamp(-1, 1)
        return out.to(images.dtype)
