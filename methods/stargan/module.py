"""``stargan``: StarGAN (Choi et al., "StarGAN: Unified Generative Adversarial Networks for Multi-Domain
Image-to-Image Translation", CVPR 2018), the official CelebA path of yunjey/stargan ``solver.py``.

One generator edits every attribute: G(x, c) renders x with the target label vector c (B, K). The PatchGAN
discriminator D gives a WGAN critic map and K domain logits (its own attribute classifier, D_cls).

One training iteration (one batch x, labels c_org; target labels c_trg = the batch's labels shuffled):
    discriminator, every iteration:
        -mean D_src(x) + mean D_src(G(x, c_trg)) + lambda_cls BCE(D_cls(x), c_org) + lambda_gp GP
    generator, every ``n_critic``-th iteration:
        -mean D_src(G(x, c_trg)) + lambda_cls BCE(D_cls(G(x, c_trg)), c_trg)
        + lambda_rec mean |x - G(G(x, c_trg), c_org)|
BCE is summed over the K attributes and averaged over the batch (the official ``classification_loss``).
Lightning's ``max_steps`` counts both optimizers' steps: ``num_iters`` iterations are
``num_iters + num_iters // n_critic`` optimizer steps (``optimizer_steps``); ``self.iterations`` counts iterations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from methods.base import EditingMethod, register_method
from methods.common.losses import adv_loss, generator_adv_loss, gradient_penalty
from methods.common.training import assert_finite
from methods.stargan.networks import Discriminator, Generator

LR_DECAYS = ("official", "linear")


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label BCE of logits (B, K) against labels (B, K) in {0, 1}: summed over K, averaged over B."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / logits.shape[0]


def optimizer_steps(num_iters: int, n_critic: int) -> int:
    """Lightning's ``max_steps`` for ``num_iters`` iterations: one D step each, one G step every ``n_critic``."""
    return num_iters + num_iters // n_critic


@register_method("stargan")
class StarGAN(EditingMethod):
    """StarGAN: one label-conditioned generator for all attributes (multi-attribute, strength-scalable).

    Args (official ``main.py`` defaults; ``attribute_names`` and ``image_size`` are linked from the data):
        g_conv_dim / d_conv_dim: widths of G's stem and D's first conv (64 / 64).
        g_repeat_num: residual blocks in G (6). d_repeat_num: stride-2 convs in D (6 at 128 px).
        lambda_cls / lambda_rec / lambda_gp: loss weights (1 / 10 / 10).
        g_lr / d_lr / beta1 / beta2: Adam for each network (1e-4 / 1e-4 / 0.5 / 0.999).
        n_critic: D updates per G update (5).
        num_iters / num_iters_decay / lr_update_step: the schedule (200,000 / 100,000 / 1,000): the learning
            rates are lowered every ``lr_update_step`` iterations once past ``num_iters - num_iters_decay``.
        lr_decay: "official": each update subtracts lr / num_iters_decay, as ``solver.py`` does (with its
            defaults the rates end 0.1 % lower); "linear": each subtracts lr * lr_update_step / num_iters_decay,
            reaching 0 at ``num_iters``: the linear decay to 0 the paper describes.
    """

    multi_attribute = True
    supports_strength = True

    def __init__(
        self,
        attribute_names: Sequence[str],
        image_size: int = 128,
        g_conv_dim: int = 64,
        d_conv_dim: int = 64,
        g_repeat_num: int = 6,
        d_repeat_num: int = 6,
        lambda_cls: float = 1.0,
        lambda_rec: float = 10.0,
        lambda_gp: float = 10.0,
        g_lr: float = 1e-4,
        d_lr: float = 1e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        n_critic: int = 5,
        num_iters: int = 200_000,
        num_iters_decay: int = 100_000,
        lr_update_step: int = 1_000,
        lr_decay: str = "official",
    ) -> None:
        super().__init__(attribute_names, image_size)
        self.save_hyperparameters()
        if lr_decay not in LR_DECAYS:
            raise ValueError(f"lr_decay must be one of {LR_DECAYS}, got {lr_decay!r}")
        if self.image_size % 4:
            raise ValueError(f"StarGAN's generator needs an image size divisible by 4, got {self.image_size}")
        if not (n_critic >= 1 and lr_update_step >= 1 and 0 < num_iters_decay <= num_iters):
            raise ValueError("need n_critic >= 1, lr_update_step >= 1 and 0 < num_iters_decay <= num_iters")
        self.automatic_optimization = False
        k = len(self.attribute_names)
        self.generator = Generator(k, g_conv_dim, g_repeat_num)
        self.discriminator = Discriminator(self.image_size, k, d_conv_dim, d_repeat_num)
        # training iterations done (saved in checkpoints: the G-step phase and the learning rates follow from it)
        self.register_buffer("iterations", torch.zeros((), dtype=torch.long))

    # -- schedule ----------------------------------------------------------------------------------------
    def learning_rates(self, iterations: int) -> tuple[float, float]:
        """(g_lr, d_lr) in force after ``iterations`` completed iterations (the official update happens at the
        end of iteration i when (i + 1) % lr_update_step == 0 and i + 1 > num_iters - num_iters_decay)."""
        h = self.hparams
        start = h.num_iters - h.num_iters_decay
        updates = max(0, iterations // h.lr_update_step - start // h.lr_update_step)
        fraction = updates * (h.lr_update_step if h.lr_decay == "linear" else 1) / h.num_iters_decay
        scale = max(0.0, 1.0 - fraction)
        return h.g_lr * scale, h.d_lr * scale

    def configure_optimizers(self):
        h = self.hparams
        betas = (float(h.beta1), float(h.beta2))
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=h.g_lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=h.d_lr, betas=betas)
        return [opt_g, opt_d]

    # -- losses ------------------------------------------------------------------------------------------
    def discriminator_loss(self, x: torch.Tensor, c_org: torch.Tensor, c_trg: torch.Tensor
                           ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's objective on reals x (B, 3, H, W) with labels c_org and fakes G(x, c_trg), both (B, K)."""
        h = self.hparams
        src_real, cls_real = self.discriminator(x)
        with torch.no_grad():
            x_fake = self.generator(x, c_trg)
        src_fake, _ = self.discriminator(x_fake)
        terms = {"d_real": adv_loss(src_real, real=True, kind="wgan"),
                 "d_fake": adv_loss(src_fake, real=False, kind="wgan"),
                 "d_cls": classification_loss(cls_real, c_org),
                 "d_gp": gradient_penalty(self.discriminator, x, x_fake)}
        loss = terms["d_real"] + terms["d_fake"] + h.lambda_cls * terms["d_cls"] + h.lambda_gp * terms["d_gp"]
        return loss, terms

    def generator_loss(self, x: torch.Tensor, c_org: torch.Tensor, c_trg: torch.Tensor
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """G's objective: fool the critic, be classified as c_trg, and map back to x under c_org."""
        h = self.hparams
        x_fake = self.generator(x, c_trg)
        src_fake, cls_fake = self.discriminator(x_fake)
        x_rec = self.generator(x_fake, c_org)
        terms = {"g_fake": generator_adv_loss(src_fake, kind="wgan"),
                 "g_cls": classification_loss(cls_fake, c_trg),
                 "g_rec": (x - x_rec).abs().mean()}
        loss = terms["g_fake"] + h.lambda_rec * terms["g_rec"] + h.lambda_cls * terms["g_cls"]
        return loss, terms

    @staticmethod
    def random_targets(labels: torch.Tensor) -> torch.Tensor:
        """Target labels (B, K): the batch's own label rows in random order (the official CelebA path)."""
        return labels[torch.randperm(labels.shape[0], device=labels.device)]

    # -- training ----------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        step = int(self.iterations)
        g_lr, d_lr = self.learning_rates(step)
        for opt, lr in ((opt_g, g_lr), (opt_d, d_lr)):
            for group in opt.param_groups:
                group["lr"] = lr
        x = batch["image"]
        c_org = batch["attrs"].to(x.dtype)
        c_trg = self.random_targets(c_org)

        self.toggle_optimizer(opt_d)
        d_loss, d_terms = self.discriminator_loss(x, c_org, c_trg)
        assert_finite(step, d_loss=d_loss, **d_terms)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        logs = {"train/d_loss": d_loss, **{f"train/{k}": v for k, v in d_terms.items()}, "train/lr": d_lr}

        if (step + 1) % self.hparams.n_critic == 0:
            self.toggle_optimizer(opt_g)
            g_loss, g_terms = self.generator_loss(x, c_org, c_trg)
            assert_finite(step, g_loss=g_loss, **g_terms)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
            self.untoggle_optimizer(opt_g)
            logs.update({"train/g_loss": g_loss, **{f"train/{k}": v for k, v in g_terms.items()}})

        self.iterations += 1
        self.log_dict({k: v.detach() if torch.is_tensor(v) else v for k, v in logs.items()})
        self.log("d_loss", d_loss.detach(), prog_bar=True, logger=False)

    # -- the contract ------------------------------------------------------------------------------------
    def edit(self, images, src_attrs, tgt_attrs, strength=1.0, reference=None):
        """G(x, c) with c = src_attrs + strength * (tgt_attrs - src_attrs), all K labels at once.

        images (B, 3, H, W) in [-1, 1]; src_attrs / tgt_attrs (B, K) in {0, 1}. Strength 0 gives G(x, src_attrs),
        the generator's rendering of x in its own domain (not x itself); 1 the official translation; values in
        between or above feed fractional or out-of-range labels, which training (binary labels) never showed
        the generator: an interpolation / extrapolation of the label input. ``reference`` is ignored.
        Returns (B, 3, H, W) in [-1, 1], dtype and device of ``images``.
        """
        self.check_edit_inputs(images, src_attrs, tgt_attrs, reference)
        dtype = next(self.generator.parameters()).dtype
        x = images.to(self.device, dtype)
        src, tgt = src_attrs.to(x), tgt_attrs.to(x)
        with torch.no_grad():
            out = self.generator(x, src + float(strength) * (tgt - src))
        return out.clamp(-1.0, 1.0).to(device=images.device, dtype=images.dtype)
