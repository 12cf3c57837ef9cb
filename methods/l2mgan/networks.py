"""L2M-GAN networks: the StarGAN v2 backbone plus the style transformer of L2M-GAN.

Domains: attribute k of ``attribute_names`` with value v in {0, 1} is domain ``2 * k + v`` (``domain_index``),
so one model holds 2K domains. Images are float (B, 3, S, S) in [-1, 1]; style codes are (B, style_dim);
domain and attribute indices are long (B,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.common.blocks import AdainResBlk, ResBlk, mlp, num_downsamples


def domain_index(attribute: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Domain of attribute index ``attribute`` (B,) with value ``value`` (B,) in {0, 1}: 2 * attribute + value."""
    return 2 * attribute.long() + value.round().long()


def _pick(stacked: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """stacked (B, N, ...) -> (B, ...) taking entry ``index[b]`` of row b."""
    return stacked[torch.arange(stacked.shape[0], device=stacked.device), index]


class HighPass(nn.Module):
    """StarGAN v2's depthwise 3x3 high-pass filter [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]] / w_hpf."""

    def __init__(self, w_hpf: float) -> None:
        super().__init__()
        kernel = -torch.ones(3, 3)
        kernel[1, 1] = 8.0
        self.register_buffer("kernel", kernel / w_hpf, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.kernel.to(x.dtype)[None, None].expand(x.shape[1], 1, 3, 3)
        return F.conv2d(x, weight, padding=1, groups=x.shape[1])


class _AdainResBlkNoShortcut(AdainResBlk):
    """StarGAN v2's AdaIN block when w_hpf > 0: the residual branch only (no shortcut)."""

    def __init__(self, c_in: int, c_out: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__(c_in, c_out, style_dim, upsample)
        self.skip = nn.Identity()

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.norm1(x, s), 0.2)
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.conv2(F.leaky_relu(self.norm2(self.conv1(h), s), 0.2))


class Generator(nn.Module):
    """StarGAN v2 encoder/decoder generator: instance-norm ResBlks down, AdaIN ResBlks up.

    ``base_dim`` channels at full resolution, doubled per downsampling up to ``max_dim``; the encoder stops at
    ``bottleneck_size`` px and adds ``num_bottleneck`` blocks there (StarGAN v2: 16 px and 2 blocks with w_hpf=0,
    8 px with w_hpf=1). ``w_hpf`` > 0 is StarGAN v2's high-pass path as the official L2M-GAN uses it: decoder blocks
    without shortcut, and the encoder features at every size from S/8 up to S/2 (above the bottleneck) added to the
    decoder through ``HighPass`` (the official masks them with face-landmark heatmaps of a pretrained network;
    here the mask is 1 everywhere).
    forward: x (B, 3, S, S), s (B, style_dim) -> (B, 3, S, S), unbounded (the caller clamps for display).
    """

    def __init__(self, image_size: int, style_dim: int, base_dim: int, max_dim: int,
                 bottleneck_size: int = 16, num_bottleneck: int = 2, w_hpf: float = 0.0) -> None:
        super().__init__()
        up_block = _AdainResBlkNoShortcut if w_hpf > 0 else AdainResBlk
        self.from_rgb = nn.Conv2d(3, base_dim, 3, 1, 1)
        self.encode = nn.ModuleList()
        self.decode = nn.ModuleList()
        c = base_dim
        for _ in range(num_downsamples(image_size, bottom=bottleneck_size)):
            c_out = min(c * 2, max_dim)
            self.encode.append(ResBlk(c, c_out, norm="instance", downsample=True))
            self.decode.insert(0, up_block(c_out, c, style_dim, upsample=True))
            c = c_out
        for _ in range(num_bottleneck):
            self.encode.append(ResBlk(c, c, norm="instance"))
            self.decode.insert(0, up_block(c, c, style_dim))
        self.to_rgb = nn.Sequential(nn.InstanceNorm2d(base_dim, affine=True), nn.LeakyReLU(0.2),
                                    nn.Conv2d(base_dim, 3, 1, 1, 0))
        self.skip_sizes = ({r for r in (image_size // 8, image_size // 4, image_size // 2) if r > bottleneck_size}
                           if w_hpf > 0 else set())
        self.hpf = HighPass(w_hpf) if w_hpf > 0 else None

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = self.from_rgb(x)
        cache: dict[int, torch.Tensor] = {}
        for block in self.encode:
            if h.shape[-1] in self.skip_sizes:
                cache[h.shape[-1]] = h
            h = block(h)
        for block in self.decode:
            h = block(h, s)
            if h.shape[-1] in cache:
                h = h + self.hpf(cache[h.shape[-1]])
        return self.to_rgb(h)


class _Trunk(nn.Module):
    """Shared trunk of the StarGAN v2 style encoder and discriminator.

    conv3x3 -> ResBlks (no norm) halving the size down to 4 px -> lrelu -> conv4x4 (valid) -> lrelu: (B, C, 1, 1).
    """

    def __init__(self, image_size: int, base_dim: int, max_dim: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, base_dim, 3, 1, 1)
        self.blocks = nn.ModuleList()
        c = base_dim
        for _ in range(num_downsamples(image_size, bottom=4)):
            c_out = min(c * 2, max_dim)
            self.blocks.append(ResBlk(c, c_out, norm="none", downsample=True))
            c = c_out
        self.out_dim = c
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(c, c, 4, 1, 0), nn.LeakyReLU(0.2))

    def features(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        """Activation after the stem and the first ``depth`` ResBlks: (B, C_depth, S / 2**depth, S / 2**depth)."""
        if not 0 <= depth <= len(self.blocks):
            raise ValueError(f"feature depth must be in [0, {len(self.blocks)}], got {depth}")
        h = self.stem(x)
        for block in self.blocks[:depth]:
            h = block(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x, len(self.blocks))).flatten(1)


class StyleEncoder(nn.Module):
    """StarGAN v2 style encoder: shared trunk, one linear head per domain.

    forward: x (B, 3, S, S), domain (B,) -> s (B, style_dim), the head of each row's domain.
    """

    def __init__(self, image_size: int, style_dim: int, num_domains: int, base_dim: int, max_dim: int) -> None:
        super().__init__()
        self.trunk = _Trunk(image_size, base_dim, max_dim)
        self.num_domains, self.style_dim = num_domains, style_dim
        # one Linear holding every domain's head side by side (same maths and init as separate heads)
        self.heads = nn.Linear(self.trunk.out_dim, num_domains * style_dim)

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        out = self.heads(self.trunk(x)).view(x.shape[0], self.num_domains, self.style_dim)
        return _pick(out, domain)


class Discriminator(nn.Module):
    """StarGAN v2 multi-task discriminator: shared trunk, one real/fake logit per domain.

    forward: x (B, 3, S, S), domain (B,) -> logits (B,) of each row's domain.
    ``features(x, depth)`` exposes the trunk's activations (used by L2M-GAN's perceptual loss here).
    """

    def __init__(self, image_size: int, num_domains: int, base_dim: int, max_dim: int) -> None:
        super().__init__()
        self.trunk = _Trunk(image_size, base_dim, max_dim)
        self.out = nn.Linear(self.trunk.out_dim, num_domains)  # = StarGAN v2's 1x1 conv on the 1x1 map

    def features(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        return self.trunk.features(x, depth)

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        return _pick(self.out(self.trunk(x)), domain)


class StyleTransformer(nn.Module):
    """L2M-GAN's style transformer (latent-space manipulation).

    decompose: s_unrel = decomposer_k(s), s_rel = s - s_unrel, with one 3-layer MLP decomposer per attribute k
    (the official two-domain model has one). transform: s~_rel = T_d(s_rel), one 3-layer MLP per domain d
    (the target domain). All codes (B, style_dim).
    """

    def __init__(self, style_dim: int, num_attributes: int) -> None:
        super().__init__()
        self.decomposers = nn.ModuleList(mlp([style_dim] * 4) for _ in range(num_attributes))
        self.transformers = nn.ModuleList(mlp([style_dim] * 4) for _ in range(2 * num_attributes))

    def decompose(self, s: torch.Tensor, attribute: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s (B, D), attribute (B,) -> (s_unrel, s_rel), each (B, D), s_unrel + s_rel == s."""
        s_unrel = _pick(torch.stack([f(s) for f in self.decomposers], dim=1), attribute)
        return s_unrel, s - s_unrel

    def transform(self, s_rel: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        """s_rel (B, D), target domain (B,) -> s~_rel (B, D)."""
        return _pick(torch.stack([t(s_rel) for t in self.transformers], dim=1), domain)
