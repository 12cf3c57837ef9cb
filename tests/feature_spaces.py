"""Feature spaces for protocol tests (imported by test modules, like fixtures_real)."""

from __future__ import annotations

import torch

from evaluators.realism import FeatureSpace


class PixelFeatures(FeatureSpace):
    """Images averaged to 4x4 per channel (48-d): a feature space that sees every edit, for protocol tests."""

    name, metric_name, resizer = "pixels-4x4-test", "fd_pixels", "area to 4x4"

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(images, 4).flatten(1)
