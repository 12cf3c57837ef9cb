"""``fadernet``: Fader Networks (Lample, Zeghidour, Usunier, Bordes, Denoyer, Ranzato; NeurIPS 2017).

An autoencoder whose decoder is given the image's attributes as one-hot pairs at every layer, while a latent
discriminator tries to read those attributes from the encoder's code and the encoder is trained to fool it
(with flipped labels), so the code carries no attribute information and the decoder must take it from the
attribute input. Editing: encode, decode with other attribute values (a continuous "fader").

One training iteration, in the official order (facebookresearch/FaderNetworks ``train.py``, ``src/training.py``):
    ``n_lat_dis`` x latent discriminator: cross-entropy of P(y | E(x)) on the true labels
                 (encoder in eval mode, no gradient to it; discriminator in train mode: dropout on)
    autoencoder: lambda_ae * MSE(D(E(x), y), x) + lambda_lat(t) * cross-entropy of P(1 - y | E(x))
                 (autoencoder in train mode; discriminator in eval mode, not updated)
    lambda_lat(t) = lambda_lat_dis * min(t, lambda_schedule) / lambda_schedule   (t = iterations done)
Each network's gradient is clipped to L2 norm ``clip_grad_norm``. An iteration makes ``n_lat_dis + 1``
optimizer steps, and Lightning's ``max_steps`` counts all of them. Each step of the official iteration draws
its own random batch; here one loader batch is split into ``n_lat_dis + 1`` equal parts, one per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from methods.base import EditingMethod, register_method
from methods.common.training import assert_finite
from methods.fadernet.networks import Decoder, Encoder, LatentDiscriminator, one_hot_pairs


def attribute_loss(logits: torch.Tensor, attrs: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """The official ``get_attr_loss`` for binary attributes: the sum over attributes of the batch-mean
    cross-entropy of each softmax pair. logits (B, 2K), attrs (B, K) in {0, 1}; ``flip`` scores the other
    value (1 - a), the target the encoder is trained towards (for two categories the official random shift
    is always 1)."""
    b, k = attrs.shape
    target = (attrs > 0.5).long()
    if flip:
        target = 1 - target
    return F.cross_entropy(logits.float().reshape(b * k, 2), target.reshape(-1)) * k


def attribute_accuracy(logits: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
    """How often the pair's argmax is the true value (the official ``update_predictions``), averaged."""
    b, k = attrs.shape
    return (logits.reshape(b, k, 2).argmax(-1) == (attrs > 0.5).long()).float().mean()


def lambda_lat(iteration: int, final: float, schedule: float) -> float:
    """The official ``get_lambda``: ``final`` reached linearly over ``schedule`` iterations (0 = no schedule)."""
    if schedule <= 0:
        return float(final)
    return float(final) * min(float(iteration), float(schedule)) / float(schedule)


def fader_code(src_attrs: torch.Tensor, tgt_attrs: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """The decoder's attribute input for an edit: per attribute alpha = src + strength * (tgt - src), coded as
    the pair [1 - alpha, alpha]. Unchanged attributes keep their one-hot pair; strength 0 is the source code
    (the reconstruction), 1 the target's one-hot, > 1 goes past it (the official interpolation's
    ``alpha_max`` > 1). (B, K), (B, K) -> (B, 2K)."""
    alpha = src_attrs + float(strength) * (tgt_attrs - src_attrs)
    return one_hot_pairs(alpha)


@register_method("fadernet")
class FaderNetMethod(EditingMethod):
    """Fader Networks (multi-attribute, strength-scalable). Hyper-parameters carry the official flags' names.

    Args (besides ``attribute_names`` and ``image_size``, linked from the data module):
        n_layers / init_fm / max_fm: encoder depth and widths (C init_fm, 2 init_fm, ... capped at max_fm); the
            latent map is image_size / 2**n_layers pixels wide.
        hid_dim / lat_dis_dropout: the latent discriminator's hidden layer and its conv layers' dropout.
        n_lat_dis: latent discriminator steps per iteration.
        lambda_ae / lambda_lat_dis: weights of the reconstruction and (final) adversarial terms.
        lambda_schedule: iterations over which the adversarial weight grows linearly from 0 (0 = constant).
        lr / betas: Adam's for both networks (the official ``adam,lr=...`` with beta1 0.5).
        clip_grad_norm: L2 norm each network's gradient is clipped to (0 = off).
        h_flip: flip each step's batch horizontally with probability 0.5 (the official augmentation).
    """

    multi_attribute = True
    supports_strength = True
    edit_modes = ("latent",)

    def __init__(
        self,
        attribute_names: Sequence[str],
        image_size: int = 256,
        n_layers: int = 7,
        init_fm: int = 16,
        max_fm: int = 512,
        hid_dim: int = 512,
        lat_dis_dropout: float = 0.3,
        n_lat_dis: int = 1,
        lambda_ae: float = 1.0,
        lambda_lat_dis: float = 1e-4,
        lambda_schedule: float = 500_000,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.5, 0.999),
        clip_grad_norm: float = 5.0,
        h_flip: bool = True,
    ) -> None:
        super().__init__(attribute_names, image_size)
        self.save_hyperparameters()
        self.automatic_optimization = False
        if n_lat_dis < 1:
            raise ValueError(f"n_lat_dis must be >= 1 (the adversary is the method), got {n_lat_dis}")
        k = len(self.attribute_names)
        self.encoder = Encoder(image_size, n_layers, init_fm, max_fm)
        self.decoder = Decoder(n_layers, init_fm, max_fm, code_dim=2 * k)
        self.lat_dis = LatentDiscriminator(image_size, n_layers, init_fm, max_fm, k, hid_dim, lat_dis_dropout)
        # iterations done (the official n_total_iter): a buffer, so checkpoints and resumes keep the schedule
        self.register_buffer("n_iter", torch.zeros((), dtype=torch.long))

    # -- model pieces ------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) in [-1, 1] -> latent map z."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """z, attribute code (B, 2K) -> image (B, 3, H, W) in (-1, 1)."""
        return self.decoder(z, code)

    def current_lambda(self) -> float:
        h = self.hparams
        return lambda_lat(int(self.n_iter), h.lambda_lat_dis, h.lambda_schedule)

    # -- training ----------------------------------------------------------------------------------------
    def configure_optimizers(self):
        h = self.hparams
        ae = [*self.encoder.parameters(), *self.decoder.parameters()]
        return [torch.optim.Adam(ae, lr=h.lr, betas=tuple(h.betas)),
                torch.optim.Adam(self.lat_dis.parameters(), lr=h.lr, betas=tuple(h.betas))]

    def split_iteration(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One loader batch -> the ``n_lat_dis + 1`` batches of an iteration (discriminator steps first).

        Equal parts where each gets at least 2 images (batch norm on the discriminator's 1x1 maps needs 2);
        a smaller batch is reused whole by every step. Each part is flipped horizontally with probability 0.5
        when ``h_flip`` (the official flips a whole batch at once)."""
        parts = self.hparams.n_lat_dis + 1
        chunks = (list(zip(x.tensor_split(parts), y.tensor_split(parts))) if x.shape[0] >= 2 * parts
                  else [(x, y)] * parts)
        if self.hparams.h_flip:
            flips = torch.rand(parts, device=x.device) < 0.5
            chunks = [(cx.flip(3) if f else cx, cy) for (cx, cy), f in zip(chunks, flips.tolist())]
        return chunks

    def lat_dis_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent discriminator's loss (and accuracy) on one batch; the encoder is run frozen, in eval mode
        (batch norm on running statistics), as the official ``lat_dis_step`` does."""
        self.encoder.eval()
        self.lat_dis.train()
        with torch.no_grad():
            z = self.encode(x)
        logits = self.lat_dis(z)
        return attribute_loss(logits, y), attribute_accuracy(logits.detach(), y)

    def autoencoder_losses(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reconstruction MSE (decoded with the true attributes) and the encoder's adversarial term (the
        discriminator's cross-entropy on the flipped labels), autoencoder in train mode, discriminator in eval."""
        self.encoder.train()
        self.decoder.train()
        self.lat_dis.eval()
        z = self.encode(x)
        rec = self.decode(z, one_hot_pairs(y))
        return {"rec": F.mse_loss(rec.float(), x.float()), "adv": attribute_loss(self.lat_dis(z), y, flip=True)}

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.hparams.clip_grad_norm:
            self.clip_gradients(opt, gradient_clip_val=self.hparams.clip_grad_norm, gradient_clip_algorithm="norm")
        opt.step()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        h = self.hparams
        opt_ae, opt_dis = self.optimizers()
        step = int(self.n_iter)
        parts = self.split_iteration(batch["image"], batch["attrs"].float())

        self.toggle_optimizer(opt_dis)
        for x, y in parts[:-1]:
            loss_dis, acc = self.lat_dis_loss(x, y)
            assert_finite(step, lat_dis=loss_dis)
            self._step(opt_dis, loss_dis)
        self.untoggle_optimizer(opt_dis)

        lam = self.current_lambda()
        self.toggle_optimizer(opt_ae)
        x, y = parts[-1]
        t = self.autoencoder_losses(x, y)
        loss_ae = h.lambda_ae * t["rec"] + lam * t["adv"]
        assert_finite(step, rec=t["rec"], lat_dis_adv=t["adv"], loss_ae=loss_ae)
        self._step(opt_ae, loss_ae)
        self.untoggle_optimizer(opt_ae)

        self.n_iter += 1
        self.log_dict({"train/rec": t["rec"].detach(), "train/lat_dis_adv": t["adv"].detach(),
                       "train/loss_ae": loss_ae.detach(), "train/lat_dis": loss_dis.detach(),
                       "train/lat_dis_acc": acc, "train/lambda_lat": lam}, prog_bar=False)
        self.log("rec", t["rec"].detach(), prog_bar=True, logger=False)
        self.log("dis", loss_dis.detach(), prog_bar=True, logger=False)

    # -- the contract ------------------------------------------------------------------------------------
    def edit(self, images, src_attrs, tgt_attrs, strength=1.0, reference=None):
        """Encode, decode with ``fader_code(src, tgt, strength)``. Returns (B, 3, H, W) in [-1, 1].

        strength scales every edited attribute's alpha from its source value towards the target's
        (0 = the reconstruction with the source attributes, 1 = the target's one-hot pair, > 1 extrapolates).
        Deterministic in eval mode. ``reference`` is ignored.
        """
        self.check_edit_inputs(images, src_attrs, tgt_attrs, reference)
        x = images.to(self.device, torch.float32)
        code = fader_code(src_attrs.to(x), tgt_attrs.to(x), strength)
        out = self.decode(self.encode(x), code).clamp(-1.0, 1.0)
        return out.to(device=images.device, dtype=images.dtype)
