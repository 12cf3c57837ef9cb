"""Networks of the IFcVAE-GAN (Creswell et al., 2017): encoder, decoder, image discriminator, auxiliary net.

Shapes: images (B, 3, H, W) in [-1, 1]; identity latent z (B, nz); attribute vector y (B, K) in [0, 1].
The convolutional stacks follow ToniCreswell/attribute-cVAEGAN (``CVAE1``, ``DISCRIMINATOR``, ``AUX``):
stride-2 5x5 convolutions with ReLU and no normalisation in the encoder and the discriminator, a fully
connected bottleneck, stride-2 transposed convolutions with batch norm in the decoder. Widths and depth are
hyper-parameters so the same structure runs at 32 px (demo) and 64 px (paper).
"""

from __future__ import annotations

import torch
from torch import nn

from methods.common.blocks import ConvBlock, mlp, num_downsamples


def _widths(depth: int, width: int, max_width: int) -> list[int]:
    """Channels after each of ``depth`` stride-2 stages: width, 2 width, 4 width, ... capped at max_width."""
    return [min(width * 2**i, max_width) for i in range(depth)]


class Encoder(nn.Module):
    """E(x) -> (mu, logvar, y_logits): the Gaussian identity posterior q(z|x) and the attribute classifier.

    With ``detach_classifier`` the classifier head reads the convolutional features detached (as
    ``encY(x.detach())`` in the official code), so the label loss trains the head only; without it the label
    loss also trains the shared trunk (the encoder as a classifier, as the paper describes it).
    ``logvar_init`` sets the initial bias of the log-variance head.
    """

    def __init__(self, image_size: int, num_attributes: int, nz: int, width: int, max_width: int,
                 bottom: int = 4, detach_classifier: bool = True, logvar_init: float = 0.0) -> None:
        super().__init__()
        depth = num_downsamples(image_size, bottom)
        chans = _widths(depth, width, max_width)
        layers, c_in = [], 3
        for c in chans:
            layers.append(ConvBlock(c_in, c, kernel=5, stride=2, norm="none", act="relu"))
            c_in = c
        self.features = nn.Sequential(*layers, nn.Flatten())
        feat = c_in * bottom * bottom
        self.mu = nn.Linear(feat, nz)
        self.logvar = nn.Linear(feat, nz)
        self.classifier = nn.Linear(feat, num_attributes)
        self.detach_classifier = detach_classifier
        if logvar_init:
            nn.init.constant_(self.logvar.bias, logvar_init)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, 3, H, W) in [-1, 1] -> mu (B, nz), logvar (B, nz), y_logits (B, K)."""
        h = self.features(x)
        return self.mu(h), self.logvar(h), self.classifier(h.detach() if self.detach_classifier else h)


class Decoder(nn.Module):
    """D(z, y) -> image logits (B, 3, H, W); the image is ``tanh(logits / 2)`` = 2 sigmoid(logits) - 1."""

    def __init__(self, image_size: int, num_attributes: int, nz: int, width: int, max_width: int,
                 bottom: int = 4) -> None:
        super().__init__()
        depth = num_downsamples(image_size, bottom)
        chans = _widths(depth, width, max_width)[::-1]  # deepest first
        self.bottom, self.c0 = bottom, chans[0]
        self.fc = nn.Sequential(nn.Linear(nz + num_attributes, chans[0] * bottom * bottom), nn.ReLU())
        layers = [ConvBlock(a, b, kernel=4, stride=2, norm="batch", act="relu", transpose=True)
                  for a, b in zip(chans[:-1], chans[1:])]
        layers.append(nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1))
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z (B, nz), y (B, K) in [0, 1] -> logits (B, 3, H, W) of the pixel Bernoulli means."""
        h = self.fc(torch.cat([y, z], dim=1)).view(z.shape[0], self.c0, self.bottom, self.bottom)
        return self.convs(h)


class Discriminator(nn.Module):
    """C(x) -> (B, 1) real/fake logit for images (B, 3, H, W) in [-1, 1]."""

    def __init__(self, image_size: int, width: int, max_width: int, bottom: int = 4) -> None:
        super().__init__()
        depth = num_downsamples(image_size, bottom)
        layers, c_in = [], 3
        for c in _widths(depth, width, max_width):
            layers.append(ConvBlock(c_in, c, kernel=5, stride=2, norm="none", act="relu"))
            c_in = c
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * bottom * bottom, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AuxiliaryNet(nn.Module):
    """A(z) -> (B, K) attribute logits predicted from the identity latent alone."""

    def __init__(self, nz: int, num_attributes: int, hidden: int) -> None:
        super().__init__()
        self.net = mlp([nz, hidden, hidden, num_attributes], act="relu")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
