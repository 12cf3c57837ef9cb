"""StarGAN's generator and PatchGAN discriminator (Choi et al., CVPR 2018; yunjey/stargan ``model.py``).

Generator: [image, label maps] -> 7x7 conv -> 2 stride-2 convs -> residual blocks -> 2 stride-2 up-convs ->
7x7 conv -> tanh; every hidden conv is bias-free and followed by an affine instance norm and ReLU.
Discriminator: ``repeat_num`` stride-2 4x4 convs with LeakyReLU(0.01), then two bias-free heads on the last
map: a 3x3 conv giving the real/fake (critic) map and a conv whose kernel covers the whole map, giving K
domain-classification logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.common.blocks import ConvBlock


class InstanceStatsNorm(nn.InstanceNorm2d):
    """Affine instance norm that keeps running statistics (as the official layers, so the state dict has their
    buffers) but always normalises with each image's own statistics, in eval mode too.

    The official code builds ``InstanceNorm2d(affine=True, track_running_stats=True)`` and never calls
    ``G.eval()``: it trains and translates with per-image statistics. A plain tracked instance norm would switch
    to the running averages in eval mode, a network the official model was never trained or tested as.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=True, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        track = self.training
        return F.instance_norm(x, self.running_mean if track else None, self.running_var if track else None,
                               self.weight, self.bias, use_input_stats=True, momentum=self.momentum, eps=self.eps)


def conv_in_relu(c_in: int, c_out: int, kernel: int, stride: int, transpose: bool = False) -> ConvBlock:
    """Bias-free conv (or up-conv) -> ``InstanceStatsNorm`` -> ReLU: the shared ``ConvBlock`` with StarGAN's norm."""
    block = ConvBlock(c_in, c_out, kernel, stride, norm="none", act="relu", transpose=transpose, bias=False)
    block[1] = InstanceStatsNorm(c_out)
    return block


class ResidualBlock(nn.Module):
    """x + IN(conv3x3(ReLU(IN(conv3x3(x))))), convs bias-free (no activation after the sum, as the official)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        second = ConvBlock(channels, channels, 3, 1, norm="none", act="none", bias=False)
        second[1] = InstanceStatsNorm(channels)
        self.main = nn.Sequential(conv_in_relu(channels, channels, 3, 1), second)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


def label_maps(labels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """labels (B, K) -> (B, K, H, W), each label replicated over the image plane."""
    return labels[:, :, None, None].expand(-1, -1, height, width)


class Generator(nn.Module):
    """G(x, c): x (B, 3, H, W) in [-1, 1], c (B, K) target labels -> (B, 3, H, W) in [-1, 1].

    H and W must be multiples of 4 (two stride-2 stages). ``conv_dim`` is the stem's width (official 64), doubled
    at each down-sampling (64 -> 128 -> 256 in the bottleneck); ``repeat_num`` residual blocks (official 6).
    """

    def __init__(self, num_labels: int, conv_dim: int = 64, repeat_num: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_in_relu(3 + num_labels, conv_dim, 7, 1)]
        width = conv_dim
        for _ in range(2):
            layers.append(conv_in_relu(width, width * 2, 4, 2))
            width *= 2
        layers += [ResidualBlock(width) for _ in range(repeat_num)]
        for _ in range(2):
            layers.append(conv_in_relu(width, width // 2, 4, 2, transpose=True))
            width //= 2
        layers.append(ConvBlock(width, 3, 7, 1, norm="none", act="tanh", bias=False))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = label_maps(labels.to(x.dtype), x.shape[2], x.shape[3])
        return self.main(torch.cat([x, c], dim=1))


class Discriminator(nn.Module):
    """D(x) -> (critic map (B, 1, H / 2**repeat_num, W / 2**repeat_num), domain logits (B, K)).

    ``repeat_num`` stride-2 4x4 convs (official 6 at 128 px: a 2x2 map), widths ``conv_dim`` doubling each time
    (64 -> 2048, uncapped as in the official code). The classification head's kernel is
    ``image_size / 2**repeat_num``, the whole final map.
    """

    def __init__(self, image_size: int, num_labels: int, conv_dim: int = 64, repeat_num: int = 6) -> None:
        super().__init__()
        final = image_size // 2**repeat_num
        if repeat_num < 1 or final < 1 or final * 2**repeat_num != image_size:
            raise ValueError(f"image_size {image_size} must be a multiple of 2**repeat_num = {2**repeat_num}")
        layers: list[nn.Module] = []
        c_in, width = 3, conv_dim
        for _ in range(repeat_num):
            block = ConvBlock(c_in, width, 4, 2, norm="none", act="none", bias=True)
            block[2] = nn.LeakyReLU(0.01)
            layers.append(block)
            c_in, width = width, width * 2
        self.main = nn.Sequential(*layers)
        self.src_head = nn.Conv2d(c_in, 1, kernel_size=3, stride=1, padding=1, bias=False)
        self.cls_head = nn.Conv2d(c_in, num_labels, kernel_size=final, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.src_head(h), self.cls_head(h).flatten(1)
