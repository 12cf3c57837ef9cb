"""StyleGAN2 generator and discriminator (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN",
CVPR 2020) in plain PyTorch: no custom CUDA ops, so it runs the same on CPU and GPU.

Facts follow NVlabs/stylegan2-ada-pytorch ``training/networks.py`` (written anew here):

* equalized learning rate: every weight is stored ~N(0, 1) / lr_mul and scaled at run time by
  lr_mul / sqrt(fan_in); biases are scaled by lr_mul. Leaky ReLU (0.2) outputs are multiplied by sqrt(2).
* mapping network: normalize_2nd_moment(z), ``num_layers`` leaky-ReLU FC layers (8 official, lr_mul 0.01),
  a running mean ``w_avg`` (beta 0.995, updated in training mode) and truncation towards it with a cutoff.
* synthesis ("skip" architecture): a learned 4x4 constant, two modulated 3x3 convs per resolution (one at 4x4),
  weight demodulation, per-pixel noise with a learned strength, a modulated 1x1 ToRGB (no demodulation) at every
  resolution whose images are upsampled and summed. ``num_ws`` = one w per conv layer + one for the last ToRGB
  (each ToRGB shares its w with the next block's first conv, as official).
* discriminator ("resnet" architecture): fromRGB at the input resolution, per resolution two 3x3 convs (the second
  downsamples) plus a 1x1 downsampling skip, sums scaled by sqrt(1/2); epilogue at 4x4 with the minibatch standard
  deviation layer, a 3x3 conv, an FC layer and the output FC.
* resampling by 2 with the [1, 3, 3, 1] FIR filter (zero-padded, as upfirdn2d), run as depthwise convolutions:
  upsampling convs are a stride-2 transposed 3x3 conv followed by the filter (gain 4), downsampling convs the
  filter followed by a stride-2 3x3 conv, the skip paths filter-and-subsample then a 1x1 conv, and the skip
  generator's images are upsampled by zero insertion and the filter (official ``conv2d_resample`` order and
  padding; the weights are not flipped, which only relabels a randomly initialised kernel).
* widths ``min(channel_max, channel_base // resolution)`` (official: channel_base 32768, or 16384 below 512 px).

Images are float NCHW: the generator's output is linear (no tanh), trained towards real images in [-1, 1]
(clamp for display); the discriminator takes (B, 3, R, R) in [-1, 1] and returns logits (B, 1).
Latent codes: z (B, z_dim) ~ N(0, I), w (B, w_dim), w+ (B, num_ws, w_dim).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: leaky-ReLU output gain (official ``def_gain``): keeps unit variance through the activation
LRELU_GAIN = math.sqrt(2.0)
NOISE_MODES = ("random", "const", "none")


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """StyleGAN's width rule: ``min(channel_max, channel_base // resolution)``."""
    c = min(channel_max, channel_base // resolution)
    if c < 1:
        raise ValueError(f"channel_base {channel_base} leaves no channels at {resolution} px")
    return c


def block_resolutions(resolution: int) -> list[int]:
    """[4, 8, ..., resolution]; ``resolution`` must be a power of two >= 4."""
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
    return [2**i for i in range(2, int(math.log2(resolution)) + 1)]


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale x to unit mean square along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def activate(x: torch.Tensor, activation: str, gain: float = 1.0) -> torch.Tensor:
    """"linear" or "lrelu" (slope 0.2, times sqrt(2)), then times ``gain``."""
    if activation == "lrelu":
        return F.leaky_relu(x, 0.2) * (LRELU_GAIN * gain)
    if activation == "linear":
        return x * gain if gain != 1 else x
    raise ValueError(f"activation must be 'linear' or 'lrelu', got {activation!r}")


# -- [1, 3, 3, 1] FIR resampling ---------------------------------------------------------------------------
def fir_kernel(taps: tuple[float, ...] = (1, 3, 3, 1)) -> torch.Tensor:
    """Separable 2-D low-pass kernel (K, K), normalised to sum 1."""
    f = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(f, f)
    return k / k.sum()


def _depthwise(kernel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(K, K) -> (C, 1, K, K) for a depthwise conv over x's channels, on x's device and dtype."""
    return kernel.to(x)[None, None].expand(x.shape[1], 1, *kernel.shape)


def upsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """x2 upsampling (B, C, H, W) -> (B, C, 2H, 2W): zero insertion then the FIR filter times 4 (official
    ``upfirdn2d.upsample2d``: padding [2, 1]); for [1, 3, 3, 1] this is bilinear interpolation inside the image."""
    return F.conv_transpose2d(x, _depthwise(kernel * 4, x), stride=2, padding=1, groups=x.shape[1])


def downsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """x2 downsampling (B, C, H, W) -> (B, C, H/2, W/2): FIR filter, every second pixel (padding [1, 1])."""
    return F.conv2d(x, _depthwise(kernel, x), stride=2, padding=1, groups=x.shape[1])


def blur(x: torch.Tensor, kernel: torch.Tensor, pad: int) -> torch.Tensor:
    """FIR filter at stride 1 with ``pad`` zeros on every side: (B, C, H, W) -> (B, C, H + 2 pad - K + 1, ...)."""
    return F.conv2d(F.pad(x, [pad] * 4), _depthwise(kernel, x), groups=x.shape[1])


# -- equalized-learning-rate layers ------------------------------------------------------------------------
class FullyConnected(nn.Module):
    """Equalized-LR linear layer: (B, in) -> (B, out).

    Stored weight ~N(0, 1) / lr_mul, used as weight * lr_mul / sqrt(in); stored bias ``bias_init``, used as
    bias * lr_mul (official). With Adam this multiplies the layer's effective learning rate by lr_mul while its
    initial run-time weights keep std 1 / sqrt(in).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_mul: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def runtime_weight(self) -> torch.Tensor:
        """The weight the layer multiplies by: (out, in)."""
        return self.weight * self.weight_gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias * self.bias_gain if self.bias is not None else None
        return activate(F.linear(x, self.runtime_weight(), b), self.activation)


class Conv2d(nn.Module):
    """Equalized-LR convolution (B, in, H, W) -> (B, out, H/down, W/down), 'same' padding, optional x2 FIR
    downsampling (``down=2``). ``forward(x, gain)`` multiplies the activated output by ``gain``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: int = 1, lr_mul: float = 1.0) -> None:
        super().__init__()
        if down not in (1, 2):
            raise ValueError(f"down must be 1 or 2, got {down}")
        self.activation, self.down, self.kernel_size = activation, down, kernel_size
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_channels * kernel_size**2)
        self.bias_gain = lr_mul
        self.register_buffer("resample_kernel", fir_kernel(), persistent=False)

    def runtime_weight(self) -> torch.Tensor:
        return self.weight * self.weight_gain

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.runtime_weight()
        b = self.bias * self.bias_gain if self.bias is not None else None
        if self.down == 1:
            x = F.conv2d(x, w, b, padding=self.kernel_size // 2)
        elif self.kernel_size == 1:
            x = F.conv2d(downsample2d(x, self.resample_kernel), w, b)
        else:  # filter with the FIR then a strided conv (official conv2d_resample's downsampling path)
            pad = (self.kernel_size - 1) // 2 + 1
            x = F.conv2d(blur(x, self.resample_kernel, pad), w, b, stride=2)
        return activate(x, self.activation, gain)


# -- mapping network -----------------------------------------------------------------------------------------
class MappingNetwork(nn.Module):
    """z (B, z_dim) -> w (B, w_dim): normalize_2nd_moment, then ``num_layers`` leaky-ReLU equalized-LR FC layers
    with learning-rate multiplier ``lr_mul`` (official 8 layers, 0.01). In training mode each call moves
    ``w_avg`` towards the batch mean of w: w_avg <- lerp(mean w, w_avg, w_avg_beta)."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int = 8, lr_mul: float = 0.01,
                 w_avg_beta: float = 0.995) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError("the mapping network needs at least one layer")
        self.z_dim, self.w_dim, self.w_avg_beta = z_dim, w_dim, w_avg_beta
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.Sequential(*[FullyConnected(a, b, activation="lrelu", lr_mul=lr_mul)
                                      for a, b in zip(dims[:-1], dims[1:])])
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, skip_w_avg_update: bool = False) -> torch.Tensor:
        w = self.layers(normalize_2nd_moment(z.float()))
        if self.training and not skip_w_avg_update:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        return w


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
    """Truncation trick: w_avg + psi (w - w_avg), for w (B, w_dim) or w+ (B, num_ws, w_dim); with ``cutoff`` only
    the first ``cutoff`` layers of a w+ code are truncated. psi=1 returns ``ws`` itself."""
    if psi == 1:
        return ws
    if cutoff is None or ws.ndim == 2:
        return w_avg.lerp(ws, psi)
    out = ws.clone()
    out[:, :cutoff] = w_avg.lerp(ws[:, :cutoff], psi)
    return out


# -- synthesis network ---------------------------------------------------------------------------------------
def conv_up2(x: torch.Tensor, weight: torch.Tensor, kernel: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """x2 upsampling convolution (B, I, H, W) -> (B, O, 2H, 2W): stride-2 transposed conv with ``weight``
    (O, I/groups, K, K) (K odd), then the FIR filter times 4 (official conv2d_resample, up=2). A quarter of the
    cost of a 'same' conv at the output resolution."""
    k = weight.shape[-1]
    if groups == 1:
        w = weight.transpose(0, 1)
    else:  # (G*O', I', K, K) -> (G*I', O', K, K): the transposed conv's weight layout per group
        o, i = weight.shape[0] // groups, weight.shape[1]
        w = weight.reshape(groups, o, i, k, k).transpose(1, 2).reshape(groups * i, o, k, k)
    y = F.conv_transpose2d(x, w, stride=2, groups=groups)          # (B, O, 2H + K - 2, ...)
    fw = kernel.shape[-1]
    pad0, pad1 = k // 2 + (fw + 1) // 2 - (k - 1), k // 2 + (fw - 2) // 2 - (k - 2)   # 1, 1 for K=3, [1,3,3,1]
    y = F.pad(y, [pad0, pad1, pad0, pad1])
    return F.conv2d(y, _depthwise(kernel * 4, y), groups=y.shape[1])


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     noise: torch.Tensor | None = None, fused: bool = False, up_kernel: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """Modulated 'same' convolution: x (B, I, H, W), weight (O, I, K, K), styles (B, I) -> (B, O, H, W), or with
    ``up_kernel`` (the FIR kernel) the x2 upsampling convolution ``conv_up2`` -> (B, O, 2H, 2W).

    Per-sample weights w'_oik = w_oik s_i; with ``demodulate`` divided by sqrt(sum_ik w'^2 + 1e-8), so each
    output channel has unit expected variance for unit-variance i.i.d. input. ``noise`` (broadcastable to the
    output) is added after demodulation. ``fused=False`` scales the activations before and after one shared
    convolution (official training path); ``fused=True`` builds the per-sample weights and runs one grouped
    convolution (official inference path). Both give the same result.
    """
    b, c_in = x.shape[:2]
    out_ch, _, k, _ = weight.shape
    pad = k // 2
    dcoefs = None
    if demodulate:  # sum_ik (w_oik s_i)^2 = (s^2) @ (sum_k w^2)^T: (B, O) without forming per-sample weights
        dcoefs = (styles.square() @ weight.square().sum(dim=(2, 3)).T + 1e-8).rsqrt()
    if fused:
        w = weight[None] * styles[:, None, :, None, None]
        if dcoefs is not None:
            w = w * dcoefs[:, :, None, None, None]
        x, w = x.reshape(1, b * c_in, *x.shape[2:]), w.reshape(b * out_ch, c_in, k, k)
        y = F.conv2d(x, w, padding=pad, groups=b) if up_kernel is None else conv_up2(x, w, up_kernel, groups=b)
        y = y.reshape(b, out_ch, *y.shape[2:])
    else:
        x = x * styles[:, :, None, None]
        y = F.conv2d(x, weight, padding=pad) if up_kernel is None else conv_up2(x, weight, up_kernel)
        if dcoefs is not None:
            y = y * dcoefs[:, :, None, None]
    return y + noise if noise is not None else y


class SynthesisLayer(nn.Module):
    """(B, c_in, R/up, R/up), w (B, w_dim) -> (B, c_out, R, R): modulated demodulated 3x3 conv (``up``: the x2
    upsampling conv) -> + noise * strength -> + bias -> leaky ReLU * sqrt(2).

    The style affine layer starts at bias 1 (styles ~1); the noise strength starts at 0; ``noise_const`` is a
    fixed per-pixel noise map (noise_mode "const", deterministic renders)."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int, up: bool = False,
                 kernel_size: int = 3) -> None:
        super().__init__()
        self.resolution, self.up = resolution, up
        self.affine = FullyConnected(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("resample_kernel", fir_kernel(), persistent=False)

    def noise(self, batch: int, mode: str, like: torch.Tensor) -> torch.Tensor | None:
        if mode == "random":
            return torch.randn(batch, 1, self.resolution, self.resolution, device=like.device,
                               dtype=like.dtype) * self.noise_strength
        if mode == "const":
            return self.noise_const * self.noise_strength
        if mode == "none":
            return None
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {mode!r}")

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused: bool = False
                ) -> torch.Tensor:
        styles = self.affine(w)
        up_kernel = self.resample_kernel if self.up else None
        x = modulated_conv2d(x, self.weight, styles, True, self.noise(x.shape[0], noise_mode, x), fused, up_kernel)
        return activate(x + self.bias[:, None, None], "lrelu")


class ToRGB(nn.Module):
    """(B, c_in, R, R), w (B, w_dim) -> RGB (B, 3, R, R): modulated 1x1 conv without demodulation (styles scaled
    by 1 / sqrt(c_in)), + bias, linear."""

    def __init__(self, c_in: int, w_dim: int, channels: int = 3) -> None:
        super().__init__()
        self.affine = FullyConnected(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, c_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.weight_gain = 1 / math.sqrt(c_in)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = False) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        return modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused) + self.bias[:, None, None]


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator. First block (c_in=0): constant 4x4 input, one conv. Others: conv0
    (x2 upsampling), conv1. Then ToRGB, added to the upsampled image of the block below.

    ``num_ws``: the codes it reads (conv layers + ToRGB); it advances the code index by ``num_conv`` only."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int) -> None:
        super().__init__()
        self.first = c_in == 0
        if self.first:
            self.const = nn.Parameter(torch.randn(c_out, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(c_in, c_out, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(c_out, c_out, w_dim, resolution)
        self.torgb = ToRGB(c_out, w_dim)
        self.num_conv = 1 if self.first else 2
        self.num_ws = self.num_conv + 1
        self.register_buffer("resample_kernel", fir_kernel(), persistent=False)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str,
                fused: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """ws (B, num_ws, w_dim); x features of the block below (None for the first); img (B, 3, R/2, R/2)."""
        if self.first:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode, fused)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, fused)
            x = self.conv1(x, ws[:, 1], noise_mode, fused)
        y = self.torgb(x, ws[:, self.num_conv], fused)
        img = y if img is None else upsample2d(img, self.resample_kernel) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """w+ (B, num_ws, w_dim) -> image (B, 3, R, R), linear output (trained towards [-1, 1]). Skip architecture:
    one block per resolution 4, 8, ..., R with widths ``min(channel_max, channel_base // res)``;
    ``num_ws = 2 log2(R) - 2`` (8 at 32 px, 14 at 256 px)."""

    def __init__(self, resolution: int, w_dim: int, channel_base: int = 16384, channel_max: int = 512) -> None:
        super().__init__()
        self.resolution, self.w_dim = resolution, w_dim
        blocks, c_prev = [], 0
        for res in block_resolutions(resolution):
            c = channels_at(res, channel_base, channel_max)
            blocks.append(SynthesisBlock(c_prev, c, w_dim, res))
            c_prev = c
        self.blocks = nn.ModuleList(blocks)
        self.num_ws = sum(b.num_conv for b in blocks) + 1

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", fused: bool = False) -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(f"expected w+ of shape (B, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        x = img = None
        idx = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, idx:idx + block.num_ws], noise_mode, fused)
            idx += block.num_conv
        return img


class Generator(nn.Module):
    """StyleGAN2 generator: mapping z -> w, broadcast to w+ (num_ws codes), synthesis.

    ``forward(z)`` samples images (B, 3, R, R); ``synthesize(w)`` renders w (B, w_dim) or w+ (B, num_ws, w_dim);
    ``noise_mode`` "random" (training), "const" (deterministic: edits, inversion) or "none".
    """

    def __init__(self, resolution: int, z_dim: int = 512, w_dim: int = 512, mapping_layers: int = 8,
                 channel_base: int = 16384, channel_max: int = 512, mapping_lr_mul: float = 0.01,
                 w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.resolution, self.z_dim, self.w_dim = resolution, z_dim, w_dim
        self.synthesis = SynthesisNetwork(resolution, w_dim, channel_base, channel_max)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_mul, w_avg_beta)

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """w (B, w_dim) -> w+ (B, num_ws, w_dim); w+ passes through."""
        return w if w.ndim == 3 else w[:, None].expand(-1, self.num_ws, -1)

    def map(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
            skip_w_avg_update: bool = False) -> torch.Tensor:
        """z (B, z_dim) -> w+ (B, num_ws, w_dim), truncated towards ``w_avg`` (first ``cutoff`` layers)."""
        ws = self.broadcast(self.mapping(z, skip_w_avg_update))
        return truncate(ws, self.mapping.w_avg, truncation_psi, truncation_cutoff)

    def synthesize(self, w: torch.Tensor, noise_mode: str = "random", fused: bool = False) -> torch.Tensor:
        return self.synthesis(self.broadcast(w), noise_mode, fused)

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "random") -> torch.Tensor:
        return self.synthesis(self.map(z, truncation_psi, truncation_cutoff), noise_mode)


# -- discriminator -------------------------------------------------------------------------------------------
class MinibatchStd(nn.Module):
    """Append ``num_channels`` features: the std over groups of ``group_size`` samples (strided, as official),
    averaged over channels and pixels. (B, C, H, W) -> (B, C + num_channels, H, W). The group is
    gcd(group_size, B) so any batch size works (official: min(group_size, B), which must divide B)."""

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g, f = math.gcd(self.group_size, n), self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()   # (n/g, F, c/F, H, W)
        y = y.mean(dim=(2, 3, 4)).reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block (B, c_tmp, R, R) -> (B, c_out, R/2, R/2); the first block also reads the image (fromRGB)."""

    def __init__(self, c_tmp: int, c_out: int, first: bool) -> None:
        super().__init__()
        self.fromrgb = Conv2d(3, c_tmp, 1, activation="lrelu") if first else None
        self.conv0 = Conv2d(c_tmp, c_tmp, 3, activation="lrelu")
        self.conv1 = Conv2d(c_tmp, c_out, 3, activation="lrelu", down=2)
        self.skip = Conv2d(c_tmp, c_out, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator: image (B, 3, R, R) in [-1, 1] -> logits (B, 1).

    ``features(x)`` returns the 4x4 features before the epilogue (B, C4, 4, 4) (a perceptual space for
    reconstruction losses). Widths ``min(channel_max, channel_base // res)``; minibatch std groups of
    ``mbstd_group_size``.
    """

    def __init__(self, resolution: int, channel_base: int = 16384, channel_max: int = 512,
                 mbstd_group_size: int = 4, mbstd_num_channels: int = 1) -> None:
        super().__init__()
        self.resolution = resolution
        res_list = block_resolutions(resolution)[::-1][:-1]   # R, R/2, ..., 8
        self.blocks = nn.ModuleList([
            DiscriminatorBlock(channels_at(r, channel_base, channel_max), channels_at(r // 2, channel_base,
                                                                                        channel_max), i == 0)
            for i, r in enumerate(res_list)])
        c4 = channels_at(4, channel_base, channel_max)
        self.fromrgb4 = Conv2d(3, c4, 1, activation="lrelu") if not res_list else None  # a 4-px discriminator
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_num_channels)
        self.conv = Conv2d(c4 + mbstd_num_channels, c4, 3, activation="lrelu")
        self.fc = FullyConnected(c4 * 16, c4, activation="lrelu")
        self.out = FullyConnected(c4, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.fromrgb4 is not None:
            return self.fromrgb4(x)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.mbstd(self.features(x)))
        return self.out(self.fc(x.flatten(1)))
