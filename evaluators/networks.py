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
