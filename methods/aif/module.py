"""``aif``: the IFcVAE-GAN of "Adversarial Information Factorization" (Creswell et al., arXiv 1711.05175).

A conditional VAE-GAN whose encoder gives an identity latent z ~ q(z|x) and a predicted attribute vector
y_hat; the decoder renders D(z, y). An auxiliary network A(z) tries to read the attributes from z and the
encoder is trained to defeat it, so the attributes live in y only. Editing: encode, swap the edited units of
y for their target values, decode.

Training (one batch = three optimizer steps, in this order, as in the official code):
    encoder + decoder: L_rec + alpha L_KL + rho L_class - gamma L_aux(A(z), y) + delta L_gan
                       (or + gamma BCE(A(z), 1 - y) with aux_adv_loss="nonsaturating")
                       (+ beta L_class(E_y(x_rec), y), the official script's label loss on reconstructions)
    auxiliary net:     L_aux(A(z.detach()), y)
    discriminator:     non-saturating GAN loss on real x, reconstructions and prior samples D(z_p, y)
so Lightning's ``max_steps`` (which counts every optimizer step) is 3 x the number of training batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from methods.aif.networks import AuxiliaryNet, Decoder, Discriminator, Encoder
from methods.base import EditingMethod, register_method
from methods.common.losses import adv_loss, generator_adv_loss, kl_standard_normal
from methods.common.training import assert_finite


def to_image(logits: torch.Tensor) -> torch.Tensor:
    """Decoder logits -> image in [-1, 1]: 2 sigmoid(l) - 1 = tanh(l / 2)."""
    return torch.tanh(0.5 * logits)


def bernoulli_reconstruction(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Pixel binary cross-entropy of x (B, 3, H, W) in [-1, 1] (as [0, 1] targets) under logits.

    Summed over channels and pixels, divided by H * W (as the official code), averaged over the batch.
    """
    bce = F.binary_cross_entropy_with_logits(logits, (x + 1) * 0.5, reduction="none")
    return bce.sum(dim=(1, 2, 3)).mean() / (x.shape[-1] * x.shape[-2])


@register_method("aif")
class AIFMethod(EditingMethod):
    """IFcVAE-GAN with adversarial information factorization (multi-attribute, strength-scalable).

    Args (besides ``attribute_names`` and ``image_size``, linked from the data module):
        nz: size of the identity latent z.
        enc_width / dec_width / dis_width: channels of the first (last, for the decoder) conv stage;
            each stage doubles them up to ``max_width``.
        bottom: spatial size of the fully connected bottleneck (image_size = bottom * 2**depth).
        aux_hidden: width of the auxiliary MLP's two hidden layers.
        optimizer: "rmsprop" (official code) or "adam" for all three networks; lr: their learning rate;
            dis_rms_alpha: RMSprop smoothing of the discriminator (the official code's ``--mom``);
            adam_betas: Adam's betas when optimizer="adam"; weight_decay: of all optimizers.
        kl_weight (alpha), class_weight (rho), aux_weight (gamma), gan_weight (delta): weights of the
            encoder/decoder loss terms, each loss averaged over the batch (see README for the official code's
            batch-summed scaling).
        rec_class_weight (beta): the official script's label loss of the encoder's classifier on the
            reconstructions, BCE(E_y(x_rec), y); with ``detach_classifier`` it trains the head only (as in the
            code), without it the gradient also reaches the decoder.
        aux_adv_loss: how the encoder fights the auxiliary net. "minimax" (paper and code): minimise
            -BCE(A(z), y), which saturates once A is confident; "nonsaturating": minimise BCE(A(z), 1 - y),
            the flipped-label form (as Fader Networks), whose gradient is largest when A is right.
        detach_classifier: the label head reads detached features (official code) or also trains the trunk.
        logvar_init: initial bias of the log-variance head (0 = PyTorch default init).
    """

    multi_attribute = True
    supports_strength = True

    def __init__(
        self,
        attribute_names: Sequence[str],
        image_size: int = 64,
        nz: int = 100,
        enc_width: int = 64,
        dec_width: int = 64,
        dis_width: int = 64,
        max_width: int = 512,
        bottom: int = 4,
        aux_hidden: int = 1000,
        optimizer: str = "rmsprop",
        lr: float = 1e-3,
        dis_rms_alpha: float = 0.9,
        adam_betas: tuple[float, float] = (0.5, 0.999),
        weight_decay: float = 0.0,
        kl_weight: float = 1.0,
        class_weight: float = 1.0,
        aux_weight: float = 1.0,
        gan_weight: float = 1.0,
        rec_class_weight: float = 0.0,
        aux_adv_loss: str = "minimax",
        detach_classifier: bool = True,
        logvar_init: float = 0.0,
    ) -> None:
        super().__init__(attribute_names, image_size)
        self.save_hyperparameters()
        self.automatic_optimization = False
        k = len(self.attribute_names)
        self.nz = int(nz)
        self.encoder = Encoder(image_size, k, nz, enc_width, max_width, bottom, detach_classifier, logvar_init)
        self.decoder = Decoder(image_size, k, nz, dec_width, max_width, bottom)
        self.discriminator = Discriminator(image_size, dis_width, max_width, bottom)
        self.aux = AuxiliaryNet(nz, k, aux_hidden)
        self.iterations = 0  # training batches seen (each is 3 optimizer steps)

    # -- model pieces ------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, 3, H, W) in [-1, 1] -> mu, logvar (B, nz) and y_hat (B, K) in (0, 1)."""
        mu, logvar, y_logits = self.encoder(x)
        return mu, logvar, torch.sigmoid(y_logits)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z (B, nz), y (B, K) in [0, 1] -> image (B, 3, H, W) in [-1, 1]."""
        return to_image(self.decoder(z, y))

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    # -- training ----------------------------------------------------------------------------------------
    def configure_optimizers(self):
        h = self.hparams
        if h.optimizer not in ("rmsprop", "adam"):
            raise ValueError(f"optimizer must be 'rmsprop' or 'adam', got {h.optimizer!r}")

        def make(params, dis: bool = False) -> torch.optim.Optimizer:
            if h.optimizer == "adam":
                return torch.optim.Adam(params, lr=h.lr, betas=tuple(h.adam_betas), weight_decay=h.weight_decay)
            alpha = h.dis_rms_alpha if dis else 0.99  # the official code sets alpha only for the discriminator
            return torch.optim.RMSprop(params, lr=h.lr, alpha=alpha, weight_decay=h.weight_decay)

        return [make([*self.encoder.parameters(), *self.decoder.parameters()]), make(self.aux.parameters()),
                make(self.discriminator.parameters(), dis=True)]

    def aux_adversarial(self, aux_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The encoder's loss against the auxiliary net's logits A(z) (B, K) for labels y (B, K), to minimise."""
        if self.hparams.aux_adv_loss == "minimax":
            # -BCE with each element capped at 100, as PyTorch's F.binary_cross_entropy (log clamped at -100)
            # caps it in the official code: otherwise the encoder could push it to -infinity
            return -F.binary_cross_entropy_with_logits(aux_logits, y, reduction="none").clamp(max=100.0).mean()
        if self.hparams.aux_adv_loss == "nonsaturating":
            return F.binary_cross_entropy_with_logits(aux_logits, 1.0 - y)
        raise ValueError(f"aux_adv_loss must be 'minimax' or 'nonsaturating', got {self.hparams.aux_adv_loss!r}")

    def vae_losses(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every encoder/decoder term on a batch x (B, 3, H, W), y (B, K); also returns z and the fakes."""
        mu, logvar, y_logits = self.encoder(x)
        z = self.reparameterise(mu, logvar)
        # Reconstructions use the *predicted* label y_hat; prior samples z_p ~ N(0, I) the batch's labels. Both go
        # through the decoder as one batch, so its batch-norm statistics (and running averages used by ``edit``)
        # are those of the mixture it is trained on, the same in train and eval mode.
        both = self.decoder(torch.cat([z, torch.randn_like(z)]), torch.cat([torch.sigmoid(y_logits), y]))
        rec_logits, sample_logits = both.chunk(2)
        rec, sample = to_image(rec_logits), to_image(sample_logits)
        out = {
            "rec": bernoulli_reconstruction(rec_logits, x),
            "kl": kl_standard_normal(mu, logvar) / self.nz,        # per latent unit, as the official code
            "class": F.binary_cross_entropy_with_logits(y_logits, y),
            "aux_enc": self.aux_adversarial(self.aux(z), y),
            "gen": 0.5 * (generator_adv_loss(self.discriminator(rec)) +
                          generator_adv_loss(self.discriminator(sample))),
            "class_acc": ((y_logits > 0).float() == y).float().mean(),
        }
        if self.hparams.rec_class_weight:
            out["rec_class"] = F.binary_cross_entropy_with_logits(self.encoder(rec)[2], y)
        out.update(z=z, rec_image=rec, sample_image=sample)
        return out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        h = self.hparams
        opt_vae, opt_aux, opt_dis = self.optimizers()
        x, y = batch["image"], batch["attrs"].float()
        step = self.iterations

        # 1) encoder + decoder: reconstruct, classify, fool the auxiliary net and the discriminator
        self.toggle_optimizer(opt_vae)
        t = self.vae_losses(x, y)
        loss_vae = (t["rec"] + h.kl_weight * t["kl"] + h.class_weight * t["class"]
                    + h.aux_weight * t["aux_enc"] + h.gan_weight * t["gen"])
        if h.rec_class_weight:
            loss_vae = loss_vae + h.rec_class_weight * t["rec_class"]
        assert_finite(step, loss_vae=loss_vae)
        opt_vae.zero_grad(set_to_none=True)
        self.manual_backward(loss_vae)
        opt_vae.step()
        self.untoggle_optimizer(opt_vae)

        # 2) auxiliary net: read y from the (detached) identity latent
        self.toggle_optimizer(opt_aux)
        loss_aux = F.binary_cross_entropy_with_logits(self.aux(t["z"].detach()), y)
        assert_finite(step, loss_aux=loss_aux)
        opt_aux.zero_grad(set_to_none=True)
        self.manual_backward(loss_aux)
        opt_aux.step()
        self.untoggle_optimizer(opt_aux)

        # 3) discriminator: real images vs reconstructions and prior samples
        self.toggle_optimizer(opt_dis)
        loss_dis = (adv_loss(self.discriminator(x), real=True)
                    + adv_loss(self.discriminator(t["rec_image"].detach()), real=False)
                    + adv_loss(self.discriminator(t["sample_image"].detach()), real=False)) / 3.0
        assert_finite(step, loss_dis=loss_dis)
        opt_dis.zero_grad(set_to_none=True)
        self.manual_backward(loss_dis)
        opt_dis.step()
        self.untoggle_optimizer(opt_dis)

        self.iterations += 1
        self.log_dict({"train/loss_vae": loss_vae.detach(), "train/rec": t["rec"].detach(),
                       "train/kl": t["kl"].detach(), "train/class": t["class"].detach(),
                       "train/aux_enc": t["aux_enc"].detach(), "train/gen": t["gen"].detach(),
                       "train/aux": loss_aux.detach(), "train/dis": loss_dis.detach(),
                       "train/class_acc": t["class_acc"].detach(),
                       **({"train/rec_class": t["rec_class"].detach()} if "rec_class" in t else {})},
                      prog_bar=False)
        self.log("rec", t["rec"].detach(), prog_bar=True, logger=False)
        self.log("aux", loss_aux.detach(), prog_bar=True, logger=False)

    # -- the contract ------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_attributes(self, images: torch.Tensor) -> torch.Tensor:
        """The encoder's classifier: images (B, 3, H, W) in [-1, 1] -> y_hat (B, K) in (0, 1)."""
        return self.encode(images)[2]

    def edit(self, images, src_attrs, tgt_attrs, strength=1.0, reference=None):
        """Encode (z = posterior mean), set the edited units of y, decode. Returns (B, 3, H, W) in [-1, 1].

        y starts as the encoder's own reading y_hat (what the decoder reconstructs from); every unit whose
        target differs from the source becomes y_hat + strength * (target - y_hat), so strength 0 is the
        reconstruction and 1 the full label swap. ``reference`` is ignored.
        """
        self.check_edit_inputs(images, src_attrs, tgt_attrs, reference)
        x = images.to(self.device, torch.float32)
        mu, _, y_hat = self.encode(x)
        tgt = tgt_attrs.to(x)
        changed = tgt.ne(src_attrs.to(x))
        y = torch.where(changed, y_hat + float(strength) * (tgt - y_hat), y_hat)
        out = self.decode(mu, y).clamp(-1.0, 1.0)
        return out.to(device=images.device, dtype=images.dtype)


@register_method("aif-fader")
class AIFFaderMethod(AIFMethod):
    """``aif-fader``: IFcVAE-GAN with a Fader-style (flipped-label, non-saturating) auxiliary adversary instead
    of the paper's minimax one, and the demo's re-weighted objective (see ``configs/aif-fader/*.yaml``, whose
    ``deviations:`` list says what differs from the official code). Same module as ``aif``; a named variant so
    the leaderboard row of ``aif`` measures the paper's objective."""

    variant_of = "aif"
