"""AIGN: Adversarial Inverse Graphics Networks (Tung, Harley, Seto, Fragkiadaki, ICCV 2017) as an editing method.

For every chosen attribute and each edit direction (add: target value 1, remove: target value 0) one generator
maps the rendered input R(x) back to a full image. Training asks (i) that rendering the output reproduces the
rendered input, ``|| R(G(R(x))) - R(x) ||^2``, and (ii) that a discriminator, shown only real images that have
the direction's target value (the paper's "biased" ground-truth collection), cannot tell the outputs apart.
The bias of the discriminator's collection is what moves the outputs towards the attribute. As in the scripts,
the discriminator gets a full batch of such real images every step, drawn from the training split by its own
seeded source (``datamodules.domains.DomainBatches``); the generator's inputs are the loader batch's images
that lack the target value.

Training follows the authors' face scripts (faces/sr_unpaired_*.py, faces/ip_lips.py): non-saturating GAN loss
with sigmoid cross-entropy, ``g_loss = recon + adv_weight * g_adv`` (0.01 super-resolution, 0.001 inpainting),
whole-batch label flipping with probability 0.05, the discriminator skipped while its previous loss is below
``d_update_threshold`` (1.0 in the young/female/bald scripts), Adam(1e-4, beta1 0.9), and generator and
discriminator updated simultaneously from one forward pass (the scripts' single ``sess.run([d_optim, g_optim])``).

Editing: images whose attribute already has the target value are returned unchanged; otherwise the generator of
the requested direction is applied to the rendered input, attribute after attribute when several differ.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from datamodules.domains import DomainBatches, derive_seed
from methods.aign.networks import Discriminator, InpaintingGenerator, SuperResolutionGenerator
from methods.aign.renderers import InpaintingRenderer, build_renderer
from methods.base import EditingMethod, register_method
from methods.common.losses import adv_loss, generator_adv_loss
from methods.common.training import assert_finite

_GRAY = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale weights


def _gray(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma, as tf.image.rgb_to_grayscale."""
    w = images.new_tensor(_GRAY).view(1, 3, 1, 1)
    return (images * w).sum(dim=1, keepdim=True)


@register_method("aign")
class AIGN(EditingMethod):
    """One generator and one discriminator per (attribute, target value); see the module docstring.

    Args:
        attribute_names / image_size: linked from the data module.
        renderer: "superres" (``downsample``:1 average pooling, the paper's face renderer) or "inpaint"
            (a fixed box ``inpaint_box`` = (top, left, height, width) fractions, masked to 0).
        downsample: the super-resolution factor (paper: 4).
        gen_channels / gen_res_blocks / gen_up_channels: super-resolution generator widths (scripts: 64, 15, 256).
        inpaint_channels: inpainting generator widths (scripts: 256, 1024, 512).
        disc_channels / disc_fc: discriminator conv widths and hidden fc width (scripts: 64..512 x5, 1024; 0 = none).
        disc_joint_batch: run real and generated images through the discriminator as one batch, so its batch
            norm shares statistics (the scripts: two calls, separate statistics).
        lr / beta1 / beta2: Adam, shared by generators and discriminators (scripts: 1e-4, 0.9, 0.999).
        adv_weight: weight of the generator's adversarial loss (scripts: 0.01 super-resolution, 0.001 inpainting).
        gray_weight: weight of an extra L2 on the luma of the renders (1.0 in the young script, 0 elsewhere).
        label_flip_prob: probability that a step swaps the discriminator's real/fake labels (scripts: 0.05).
        d_update_threshold: a discriminator is updated only while its previous loss exceeds this (scripts: 1.0;
            0 = always update).
        g_steps_per_d: generator updates per iteration (1 super-resolution, 2 inpainting).
        disc_real_batch_size: real target-value images each discriminator sees per step, drawn from the training
            split by its own source (scripts: a full batch, ``batch_size``); None = the data module's batch size.

    The real-image sources are seeded from the run seed (``seed_everything``, else the data module's seed) and
    saved in checkpoints, so a resumed run continues their draws.
    """

    multi_attribute = True
    supports_strength = False

    def __init__(
        self,
        attribute_names: Sequence[str],
        image_size: int = 64,
        renderer: str = "superres",
        downsample: int = 4,
        inpaint_box: Sequence[float] = (0.55, 0.25, 0.3, 0.5),
        gen_channels: int = 64,
        gen_res_blocks: int = 15,
        gen_up_channels: int = 256,
        inpaint_channels: Sequence[int] = (256, 1024, 512),
        disc_channels: Sequence[int] = (64, 128, 256, 512, 512),
        disc_fc: int = 1024,
        disc_joint_batch: bool = False,
        lr: float = 1e-4,
        beta1: float = 0.9,
        beta2: float = 0.999,
        adv_weight: float = 0.01,
        gray_weight: float = 0.0,
        label_flip_prob: float = 0.05,
        d_update_threshold: float = 1.0,
        g_steps_per_d: int = 1,
        disc_real_batch_size: int | None = None,
    ) -> None:
        super().__init__(attribute_names, image_size)
        self.save_hyperparameters()
        self.automatic_optimization = False
        if g_steps_per_d < 1:
            raise ValueError(f"g_steps_per_d must be >= 1, got {g_steps_per_d}")
        if disc_real_batch_size is not None and disc_real_batch_size < 1:
            raise ValueError(f"disc_real_batch_size must be >= 1 or None, got {disc_real_batch_size}")
        self.renderer = build_renderer(renderer, self.image_size, downsample, inpaint_box)
        # one (attribute, target value) pair per edit direction: "<attribute>__add" targets 1, "__remove" 0
        self.directions: list[tuple[str, int, int]] = [
            (f"{name}__{'add' if value else 'remove'}", k, value)
            for k, name in enumerate(self.attribute_names) for value in (1, 0)
        ]
        self.generators = nn.ModuleDict({key: self._make_generator() for key, _, _ in self.directions})
        self.discriminators = nn.ModuleDict({
            key: Discriminator(self.image_size, disc_channels, disc_fc) for key, _, _ in self.directions
        })
        self.register_buffer("iterations", torch.zeros((), dtype=torch.long))
        self._last_d_loss: dict[str, float] = {}
        # per direction, the discriminator's real images: built in on_fit_start from the training split
        self._real_sources: dict[str, DomainBatches] = {}
        self._pending_source_states: dict[str, dict[str, torch.Tensor]] = {}

    def _make_generator(self) -> nn.Module:
        hp = self.hparams
        if hp.renderer == "superres":
            return SuperResolutionGenerator(hp.downsample, hp.gen_channels, hp.gen_res_blocks, hp.gen_up_channels)
        return InpaintingGenerator(hp.inpaint_channels)

    # -- generation -------------------------------------------------------------------------------------
    def generate(self, key: str, rendered: torch.Tensor) -> torch.Tensor:
        """Raw generator output (B, 3, H, W) in [-1, 1] of direction ``key`` for renders ``rendered``."""
        gen = self.generators[key]
        if isinstance(self.renderer, InpaintingRenderer):
            return gen(rendered, self.renderer.mask)
        return gen(rendered)

    def _edit_once(self, key: str, images: torch.Tensor) -> torch.Tensor:
        rendered = self.renderer(images)
        out = self.generate(key, rendered)
        if isinstance(self.renderer, InpaintingRenderer):
            out = self.renderer.composite(rendered, out)
        return out

    def edit(self, images, src_attrs, tgt_attrs, strength=1.0, reference=None):
        """(B, 3, H, W) in [-1, 1] -> edited (B, 3, H, W) in [-1, 1]; ``strength`` is ignored (no control)."""
        self.check_edit_inputs(images, src_attrs, tgt_attrs, reference)
        src, tgt = src_attrs.round(), tgt_attrs.round()
        out = images.float().clone()
        for key, k, value in self.directions:
            rows = (src[:, k] != tgt[:, k]) & (tgt[:, k] == value)
            if rows.any():
                out[rows] = self._edit_once(key, out[rows]).float()
        return out.clamp(-1, 1).to(images.dtype)

    # -- training ---------------------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        betas = (hp.beta1, hp.beta2)
        opt_g = torch.optim.Adam(self.generators.parameters(), lr=hp.lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminators.parameters(), lr=hp.lr, betas=betas)
        return [opt_g, opt_d]

    def _run_seed(self) -> int:
        """The run's seed: ``seed_everything``'s (Lightning's PL_GLOBAL_SEED), else the data module's."""
        seed = os.environ.get("PL_GLOBAL_SEED")
        return int(seed) if seed is not None else int(getattr(self.trainer.datamodule, "seed", 0))

    def on_fit_start(self) -> None:
        dm = self.trainer.datamodule
        if dm is None or not hasattr(dm, "dataset"):
            raise ValueError("AIGN trains from a FaceDataModule: its discriminators draw real images from "
                             "datamodule.dataset('train')")
        if list(getattr(dm, "attribute_names", self.attribute_names)) != self.attribute_names:
            raise ValueError(f"the data module's attributes {dm.attribute_names} are not the model's "
                             f"{self.attribute_names}")
        dataset = dm.dataset("train")
        batch_size = self.hparams.disc_real_batch_size or dm.batch_size
        seed = self._run_seed()
        rank = self.global_rank  # under DDP every process draws its own real images
        self._real_sources = {
            key: DomainBatches(dataset, k, value, batch_size, seed=derive_seed(seed, f"aign/{key}/{rank}"),
                               attribute_names=self.attribute_names)
            for key, k, value in self.directions
        }
        for key, state in self._pending_source_states.items():
            if key in self._real_sources:
                self._real_sources[key].load_state_dict(state)
        self._pending_source_states = {}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self._real_sources:
            checkpoint["aign_real_sources"] = {key: src.state_dict() for key, src in self._real_sources.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = dict(checkpoint.get("aign_real_sources", {}))
        if self._real_sources:  # strategies that restore after on_fit_start
            for key, state in states.items():
                if key in self._real_sources:
                    self._real_sources[key].load_state_dict(state)
        else:
            self._pending_source_states = states

    def real_images(self, key: str, like: torch.Tensor) -> torch.Tensor:
        """The next full batch (B_real, 3, H, W) in [-1, 1] of direction ``key``'s real target-value images, on
        the device and in the dtype of ``like``."""
        if key not in self._real_sources:
            raise RuntimeError("AIGN's real-image sources are built in on_fit_start; train with trainer.fit")
        images = next(self._real_sources[key])["image"]
        return images.to(device=like.device, dtype=like.dtype, non_blocking=True)

    def on_train_epoch_start(self) -> None:
        # the scripts reset the discriminator-skip memory to 2 (> threshold) at every epoch
        self._last_d_loss = {key: 2.0 for key, _, _ in self.directions}

    def _active_directions(self, images: torch.Tensor, attrs: torch.Tensor
                           ) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """(key, source rows of the batch, real target-value images) of every direction with >= 2 inputs here.

        The real images are the direction's next full batch from its own source (``real_images``).
        """
        out = []
        for key, k, value in self.directions:
            src = attrs[:, k] != value
            if int(src.sum()) >= 2:
                out.append((key, src, self.real_images(key, images)))
        return out

    def _discriminate(self, key: str, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits_real, logits_fake) of direction ``key``'s discriminator.

        The scripts call the discriminator twice (real batch, fake batch), so batch norm normalises each batch
        with its own statistics; ``disc_joint_batch`` runs both through one batch with shared statistics.
        """
        disc = self.discriminators[key]
        if self.hparams.disc_joint_batch:
            logits = disc(torch.cat([real, fake.to(real.dtype)]))
            return logits[: real.shape[0]], logits[real.shape[0]:]
        return disc(real), disc(fake)

    def _generator_losses(self, images: torch.Tensor, rendered: torch.Tensor, active: list) -> dict[str, Any]:
        """Per direction of ``active`` (key, source rows, real images): fakes, the discriminator's logits on the
        real images and the fakes, and the generator's loss terms."""
        hp = self.hparams
        terms: dict[str, Any] = {}
        for key, src, real in active:
            target_render = rendered[src]
            fake = self.generate(key, target_render)
            fake_render = self.renderer(fake)
            recon = F.mse_loss(fake_render.float(), target_render.float())
            if hp.gray_weight > 0:
                recon = recon + hp.gray_weight * F.mse_loss(_gray(fake_render.float()), _gray(target_render.float()))
            logits_real, logits_fake = self._discriminate(key, real, fake)
            g_adv = generator_adv_loss(logits_fake.float(), "nonsaturating")
            terms[key] = {"logits_real": logits_real, "logits_fake": logits_fake, "recon": recon, "g_adv": g_adv,
                          "g_loss": recon + hp.adv_weight * g_adv}
        return terms

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        hp = self.hparams
        opt_g, opt_d = self.optimizers()
        images, attrs = batch["image"], batch["attrs"].round()
        step = int(self.iterations)
        rendered = self.renderer(images)  # shared by every direction
        active = self._active_directions(images, attrs)
        if not active:  # no attribute with two images lacking a target value in this batch: nothing to learn
            return
        terms = self._generator_losses(images, rendered, active)

        d_losses: dict[str, torch.Tensor] = {}
        for key in terms:
            flip = bool(torch.rand(()) < hp.label_flip_prob)  # one draw per step, as in the scripts
            logits_real = terms[key]["logits_real"].float()
            logits_fake = terms[key]["logits_fake"].float()
            d_losses[key] = adv_loss(logits_real, real=not flip) + adv_loss(logits_fake, real=flip)

        g_total = sum(t["g_loss"] for t in terms.values())
        updated = [key for key in d_losses if self._last_d_loss.get(key, 2.0) > hp.d_update_threshold]
        assert_finite(step, g_total=g_total, **{f"d_{k}": v for k, v in d_losses.items()})

        # simultaneous update from one forward pass: each loss only reaches its own networks (inputs=...)
        g_params = [p for key, _, _ in active for p in self.generators[key].parameters()]
        d_params = [p for key in updated for p in self.discriminators[key].parameters()]
        opt_g.zero_grad()
        opt_d.zero_grad()
        self.manual_backward(g_total, inputs=g_params, retain_graph=bool(d_params))
        if d_params:
            self.manual_backward(sum(d_losses[key] for key in updated), inputs=d_params)
        opt_g.step()
        opt_d.step()  # discriminators left out of ``updated`` have no gradient: Adam leaves them untouched

        for _ in range(hp.g_steps_per_d - 1):  # the inpainting script runs the generator step twice
            extra = self._generator_losses(images, rendered, active)
            g_extra = sum(t["g_loss"] for t in extra.values())
            assert_finite(step, g_extra=g_extra)
            opt_g.zero_grad()
            self.manual_backward(g_extra, inputs=g_params)
            opt_g.step()

        d_values = torch.stack([v.detach() for v in d_losses.values()]).tolist()
        self._last_d_loss.update(dict(zip(d_losses, d_values)))
        self.iterations += 1
        n = len(active)
        self.log_dict({
            "train/recon": sum(t["recon"].detach() for t in terms.values()) / n,
            "train/g_adv": sum(t["g_adv"].detach() for t in terms.values()) / n,
            "train/d_loss": sum(d_values) / n,
            "train/d_updated": float(len(updated)) / n,
        }, prog_bar=True, on_step=True, on_epoch=False, batch_size=images.shape[0])
