"""Backbones of the evaluator networks (never used by methods: the fairness rule)."""

from __future__ import annotations

import timm
import torch
from torch import nn


def resnet18_backbone(image_size: int) -> nn.Module:
    """timm ResNet18 without its classifier (no pretrained download): (B, 3, H, W) -> (B, 512).

    The standard architecture at every resolution (``image_size`` is recorded for callers; at 32 px the stem
    leaves an 8x8 map, which the synthetic set's features are drawn large enough for).
    """
    return timm.create_model("resnet18", pretrained=False, num_classes=0)


class FeatureNet(nn.Module):
    """Backbone + linear head. ``features`` gives the 512-d pooled features, ``forward`` the head's output."""

    def __init__(self, image_size: int, num_outputs: int) -> None:
        super().__init__()
        self.backbone = resnet18_backbone(image_size)
        self.head = nn.Linear(self.backbone.num_features, num_outputs)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class _Residual(nn.Module):
    """Two 3x3 conv-BN layers with a (1x1, strided) shortcut: (B, cin, H, W) -> (B, cout, H/stride, W/stride)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class SmallImageResNet(nn.Module):
    """A ResNet for 32-64 px inputs (CIFAR-style: a stride-1 3x3 stem, no max-pool, so one-pixel geometry
    survives to the deep layers): (B, 3, H, W) -> (B, 8 * width * grid**2). ``grid`` > 1 pools to a
    grid x grid map instead of one vector, keeping WHERE the features are (face outline, feature positions).
    timm's ImageNet ResNet18 quarters a 32 px face in its stem, which leaves identity to colour."""

    def __init__(self, width: int = 32, grid: int = 1) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            _Residual(w, w, 1), _Residual(w, 2 * w, 2), _Residual(2 * w, 4 * w, 2), _Residual(4 * w, 8 * w, 2),
            nn.AdaptiveAvgPool2d(grid), nn.Flatten())
        self.num_features = 8 * w * grid * grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
