"""AttGAN (He, Zuo, Kan, Shan and Chen, TIP 2019): facial attribute editing by only changing what you want.

An encoder-decoder generator renders an image with a wanted attribute vector; a discriminator with a shared
trunk judges realism (WGAN-GP critic) and classifies the attributes. The generator learns to reconstruct the
image from its own attributes (L1), and to fool the critic and satisfy the classifier with random ones (the
batch's attributes shuffled).

Attribute codes: {0, 1} labels enter the generator as ``(2 a - 1) * thres_int`` (official 0.5). ``edit`` gives
the attributes that change ``+-test_int`` (official 1.0: the test-time intensity of the official test
scripts), moved from the source's code by ``strength`` (see ``edit_code``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from methods.attgan.networks import Discriminators, Generator
from methods.base import EditingMethod, register_method
from methods.common.losses import adv_loss, generator_adv_loss, gradient_penalty
from methods.common.training import assert_finite


def step_decay_lr(lr: float, epoch: int, decay_epochs: int, factor: float) -> float:
    """The official schedule: lr * factor ** (epoch // decay_epochs), i.e. lr / 10 ** (epoch // 100)."""
    return lr * factor ** (epoch // decay_epochs)


def generator_turn(iteration: int, n_d: int) -> bool:
    """Whether training batch ``iteration`` (0-based) updates G: the official loop updates D on n_d batches,
    then G on the next one (``(it + 1) % (n_d + 1) == 0``)."""
    return (iteration + 1) % (n_d + 1) == 0


@register_method("attgan")
class AttGAN(EditingMethod):
    """AttGAN; one model for all ``attribute_names``.

    Architecture (defaults = the official 128 px model): ``num_layers`` encoder and decoder layers of widths
    ``enc_dim`` / ``dec_dim`` times powers of 2 capped at ``max_dim``, ``shortcut_layers`` skips and
    ``inject_layers`` re-injections of the attribute code; discriminator trunk of ``dis_layers`` layers from
    ``dis_dim``, heads of ``dis_fc_dim`` hidden units with activation ``dis_fc_act``.
    Losses: D = WGAN + lambda_gp * GP + lambda_3 * BCE(D_cls(x), a); G = WGAN + lambda_2 * BCE(D_cls(G(x, b)), b)
    + lambda_1 * L1(G(x, a), x), b = the batch's attributes shuffled. One training batch = ONE optimizer step:
    D on n_d batches, then G on the next (``generator_turn``). Adam(lr, betas) for both; lr multiplied by
    ``lr_decay_factor`` every ``lr_decay_epochs`` epochs (official: / 10 after epoch 100 of 200).
    """

    supports_strength = True
    multi_attribute = True
    edit_modes = ("latent",)

    def __init__(
        self,
        attribute_names: Sequence[str],
        image_size: int = 128,
        enc_dim: int = 64,
        dec_dim: int = 64,
        num_layers: int = 5,
        shortcut_layers: int = 1,
        inject_layers: int = 1,
        dis_dim: int = 64,
        dis_fc_dim: int = 1024,
        dis_layers: int = 5,
        dis_fc_act: str = "lrelu",
        max_dim: int = 1024,
        lr: float = 2e-4,
        betas: Sequence[float] = (0.5, 0.999),
        lr_decay_epochs: int = 100,
        lr_decay_factor: float = 0.1,
        n_d: int = 5,
        lambda_1: float = 100.0,
        lambda_2: float = 10.0,
        lambda_3: float = 1.0,
        lambda_gp: float = 10.0,
        thres_int: float = 0.5,
        test_int: float = 1.0,
    ) -> None:
        super().__init__(attribute_names, image_size)
        self.save_hyperparameters()
        self.automatic_optimization = False
        k = len(self.attribute_names)
        self.generator = Generator(k, self.image_size, enc_dim, dec_dim, num_layers, shortcut_layers,
                                   inject_layers, max_dim)
        self.discriminator = Discriminators(k, self.image_size, dis_dim, dis_fc_dim, dis_layers, max_dim,
                                            dis_fc_act)
        # training batches seen (each is one D or one G update); drives the n_d schedule, saved in checkpoints
        self.register_buffer("iterations_done", torch.zeros((), dtype=torch.long))

    # -- attribute codes -------------------------------------------------------------------------------
    def training_code(self, attrs: torch.Tensor) -> torch.Tensor:
        """(B, K) labels in {0, 1} -> the generator's input during training, (2 a - 1) * thres_int."""
        return (attrs * 2 - 1) * self.hparams.thres_int

    def edit_code(self, src_attrs: torch.Tensor, tgt_attrs: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """The generator's input for an edit. Unchanged attributes keep the training code +-thres_int; each
        attribute where src and tgt differ goes linearly from the source's code (strength 0: the reconstruction
        input) to the target's official test code (2 tgt - 1) * test_int (strength 1: the official test scripts'
        input); strength > 1 extrapolates past test_int, like the official slider's wider range."""
        source = self.training_code(src_attrs)
        changed = src_attrs.round() != tgt_attrs.round()
        target = torch.where(changed, (tgt_attrs * 2 - 1) * self.hparams.test_int, source)
        return source + float(strength) * (target - source)

    # -- the contract ------------------------------------------------------------------------------------
    def edit(
        self,
        images: torch.Tensor,
        src_attrs: torch.Tensor,
        tgt_attrs: torch.Tensor,
        strength: float = 1.0,
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """images (B, 3, H, W) in [-1, 1], src/tgt (B, K) in {0, 1} -> edited (B, 3, H, W) in [-1, 1], same dtype
        and device as ``images``. ``reference`` is not used (label-driven)."""
        self.check_edit_inputs(images, src_attrs, tgt_attrs, reference)
        x = images.to(self.device, torch.float32)
        code = self.edit_code(src_attrs.to(self.device, torch.float32), tgt_attrs.to(self.device, torch.float32),
                              strength)
        out = self.generator(x, code).clamp(-1, 1)
        return out.to(images.device, images.dtype)

    # -- losses ------------------------------------------------------------------------------------------
    def discriminator_losses(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """D's loss on real images x (B, 3, H, W) with labels a (B, K) and fakes G(x, code(b)), fakes detached."""
        hp = self.hparams
        with torch.no_grad():  # G stays in train mode, as in the official trainD (BatchNorm batch statistics)
            fake = self.generator(x, self.training_code(b))
        adv, cls = self.discriminator(torch.cat([x, fake]))  # InstanceNorm: per image, so one pass = two
        adv_real, adv_fake = adv.split(x.shape[0])
        d_adv = adv_loss(adv_real, True, "wgan") + adv_loss(adv_fake, False, "wgan")   # = -(Wasserstein estimate)
        gp = gradient_penalty(self.discriminator, x, fake)
        d_cls = F.binary_cross_entropy_with_logits(cls[: x.shape[0]], a)
        loss = d_adv + hp.lambda_gp * gp + hp.lambda_3 * d_cls
        return {"loss_d": loss, "d_adv": d_adv, "gp": gp, "d_cls": d_cls}

    def generator_losses(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """G's loss: fool the critic and satisfy the classifier with b, reconstruct x with its own a."""
        hp = self.hparams
        zs = self.generator.encode(x)
        fake = self.generator.decode(zs, self.training_code(b))   # two decoder passes, as the official trainG:
        recon = self.generator.decode(zs, self.training_code(a))  # each with its own BatchNorm statistics
        adv_fake, cls_fake = self.discriminator(fake)
        g_adv = generator_adv_loss(adv_fake, "wgan")
        g_cls = F.binary_cross_entropy_with_logits(cls_fake, b)
        g_rec = F.l1_loss(recon, x)
        loss = g_adv + hp.lambda_2 * g_cls + hp.lambda_1 * g_rec
        return {"loss_g": loss, "g_adv": g_adv, "g_cls": g_cls, "g_rec": g_rec}

    # -- training ----------------------------------------------------------------------------------------
    def configure_optimizers(self):
        betas = tuple(float(v) for v in self.hparams.betas)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas)
        return [opt_g, opt_d]

    def current_lr(self) -> float:
        hp = self.hparams
        return step_decay_lr(hp.lr, self.current_epoch, hp.lr_decay_epochs, hp.lr_decay_factor)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        x, a = batch["image"], batch["attrs"].float()
        b = a[torch.randperm(a.shape[0], device=a.device)]   # random targets: the batch's attributes shuffled
        opt_g, opt_d = self.optimizers()
        lr = self.current_lr()
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        iteration = int(self.iterations_done)
        g_turn = generator_turn(iteration, self.hparams.n_d)
        opt = opt_g if g_turn else opt_d
        self.toggle_optimizer(opt)   # the other network's parameters are frozen for this update
        losses = self.generator_losses(x, a, b) if g_turn else self.discriminator_losses(x, a, b)
        total = losses["loss_g" if g_turn else "loss_d"]
        assert_finite(iteration, **losses)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(total)
        opt.step()
        self.untoggle_optimizer(opt)
        self.iterations_done += 1
        n = x.shape[0]
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=n)
        self.log("train/lr", lr, batch_size=n)
        self.log("g" if g_turn else "d", total.detach(), prog_bar=True, logger=False, batch_size=n)
