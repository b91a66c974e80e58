"""Small named building blocks of efficient CNNs (lecture 4: Xception, MobileNet v1/v2, EfficientNet).

Every block here is one box of a lecture figure:

- :class:`ConvBNAct`               convolution -> batch norm -> activation (the unit every network repeats)
- :class:`DepthwiseSeparableConv`  depthwise k x k + pointwise 1 x 1 (Xception, MobileNet v1)
- :class:`SqueezeExcite`           channel attention from a global average (SENet, used inside MBConv)
- :class:`InvertedResidual`        MobileNet v2: expand 1 x 1 -> depthwise -> linear project, skip if shapes match
- :class:`MBConv`                  EfficientNet's inverted residual with optional squeeze-excite and stochastic depth
- :class:`FusedMBConv`             EfficientNetV2: expand and depthwise fused into one full k x k convolution
- :class:`Conv2dSame`              a convolution with TensorFlow's ``padding="SAME"`` (pads right/bottom more)

Letter legend: B batch, C channels (``Cin``/``Cout``/``Ch`` hidden), H, W height and width.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "make_divisible",
    "Conv2dSame",
    "ConvBNAct",
    "DepthwiseSeparableConv",
    "SqueezeExcite",
    "InvertedResidual",
    "MBConv",
    "FusedMBConv",
    "drop_path",
]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never going more than 10% below ``value``.

    MobileNet v2 and EfficientNet use it when a width multiplier scales the channels (lecture 4,
    compound scaling). Same rule as torchvision's ``torchvision.models._utils._make_divisible``.
    """
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's ``"SAME"`` padding: output size ``ceil(H / stride)``.

    TensorFlow pads ``total = max((ceil(H / s) - 1) * s + k - H, 0)`` pixels, putting the extra one at the
    bottom/right; PyTorch's symmetric ``padding=k // 2`` shifts the sampling grid by one pixel for stride 2.
    Weights trained in TensorFlow (EfficientNet-Lite0 in lecture 4) need this padding to match. The
    padding is computed from the input size at every call, so any image size works.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):  # W first, then H
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class ConvBNAct(nn.Sequential):
    """Convolution -> BatchNorm -> activation, the repeated unit of every CNN in lectures 2-5.

    Submodules are named ``conv``, ``bn``, ``act`` so that hooks and weight mappings can address them.

    Args:
        in_channels: Cin.
        out_channels: Cout.
        kernel_size: k (odd).
        stride: convolution stride.
        groups: 1 for a full convolution, ``in_channels`` for a depthwise one.
        activation: a module class (``nn.ReLU``, ``nn.ReLU6``, ``nn.SiLU``) or ``None`` for a linear
            output (the "linear bottleneck" of MobileNet v2).
        padding: ``"symmetric"`` (``k // 2`` on each side, PyTorch style) or ``"same"`` (TensorFlow style,
            :class:`Conv2dSame`).
        bn_eps: BatchNorm epsilon (1e-5 in PyTorch, 1e-3 for TensorFlow-trained weights).

    Shape: ``(B, Cin, H, W) -> (B, Cout, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation: Callable[..., nn.Module] | None = nn.ReLU,
                 padding: str = "symmetric", bn_eps: float = 1e-5) -> None:
        if padding == "symmetric":
            conv: nn.Conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                                        groups=groups, bias=False)
        elif padding == "same":
            conv = Conv2dSame(in_channels, out_channels, kernel_size, stride, groups=groups)
        else:
            raise ValueError(f"padding must be 'symmetric' or 'same', got {padding!r}")
        layers = [("conv", conv), ("bn", nn.BatchNorm2d(out_channels, eps=bn_eps))]
        if activation is not None:
            layers.append(("act", activation(inplace=True) if _takes_inplace(activation) else activation()))
        super().__init__(OrderedDict(layers))
        self.out_channels = out_channels


def _takes_inplace(activation: Callable[..., nn.Module]) -> bool:
    return activation in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.LeakyReLU)


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``p`` and rescale.

    Mirrors ``torchvision.ops.stochastic_depth(x, p, "row", training)``. ``x (Tensor[B, ...])``.
    """
    if not training or p == 0.0:
        return x
    keep = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(1 - p)
    return x * keep / (1 - p)


class DepthwiseSeparableConv(nn.Module):
    """Depthwise k x k convolution (one filter per channel) followed by a pointwise 1 x 1 convolution.

    The factorisation behind Xception and MobileNet v1 (lecture 4). A full k x k convolution costs
    ``k^2 Cin Cout H W`` multiply-adds; this costs ``(k^2 Cin + Cin Cout) H W``, a saving of
    ``1 / (1 / Cout + 1 / k^2)``, close to ``k^2 = 9`` for 3 x 3 and many output channels.

    Args:
        in_channels: Cin.
        out_channels: Cout.
        kernel_size: k of the depthwise convolution.
        stride: stride of the depthwise convolution.
        activation: activation after each of the two convolutions (MobileNet v1: ReLU).
        act_between: apply the activation between depthwise and pointwise (MobileNet v1 does; Xception's
            ``SeparableConv`` does not and is ReLU -> separable conv -> BN instead).

    Submodules: ``depthwise`` and ``pointwise`` (both :class:`ConvBNAct`).
    Shape: ``(B, Cin, H, W) -> (B, Cout, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 activation: Callable[..., nn.Module] | None = nn.ReLU, act_between: bool = True) -> None:
        super().__init__()
        self.depthwise = ConvBNAct(in_channels, in_channels, kernel_size, stride, groups=in_channels,
                                   activation=activation if act_between else None)
        self.pointwise = ConvBNAct(in_channels, out_channels, 1, activation=activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: rescale each channel by a gate computed from the global average.

    ``s = sigmoid(W2 act(W1 mean_hw(x)))``, ``y = x * s``. EfficientNet-B0 uses it in every MBConv with
    ``squeeze_channels = Cin_of_block / 4`` and SiLU; EfficientNet-Lite drops it (lecture 4). Mirrors
    ``torchvision.ops.SqueezeExcitation``.

    Args:
        channels: C of the input.
        squeeze_channels: width of the bottleneck.
        activation: activation of the bottleneck.

    Shape: ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, channels: int, squeeze_channels: int,
                 activation: Callable[..., nn.Module] = nn.SiLU) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = activation()
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)  # (B, C, H, W) -> (B, C, 1, 1)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


class MBConv(nn.Module):
    """Mobile inverted bottleneck (MobileNet v2's inverted residual, EfficientNet's MBConv; lecture 4).

    ``1x1 expand (x expand_ratio) -> k x k depthwise -> [squeeze-excite] -> 1x1 linear project``, with an
    identity skip when ``stride == 1`` and ``in_channels == out_channels``. The projection has no
    activation: ReLU in the narrow space would destroy information (the linear-bottleneck argument).

    Args:
        in_channels: Cin.
        out_channels: Cout.
        kernel_size: k of the depthwise convolution (3 or 5 in EfficientNet).
        stride: 1 or 2.
        expand_ratio: hidden width ``Ch = Cin * expand_ratio``; with 1 there is no expansion convolution.
        se_ratio: squeeze-excite bottleneck as a fraction of ``Cin`` (0.25 in EfficientNet-B0), or
            ``None`` for no squeeze-excite (MobileNet v2, EfficientNet-Lite).
        activation: ``nn.SiLU`` (EfficientNet), ``nn.ReLU6`` (MobileNet v2, EfficientNet-Lite).
        drop_path_rate: stochastic-depth probability for the residual branch during training.
        padding, bn_eps: see :class:`ConvBNAct`.

    Submodules: ``expand`` (``nn.Identity`` when ``expand_ratio == 1``), ``depthwise``, ``se``
    (``nn.Identity`` when off), ``project``. Mirrors ``torchvision.models.efficientnet.MBConv``.
    Shape: ``(B, Cin, H, W) -> (B, Cout, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 expand_ratio: float = 6, se_ratio: float | None = 0.25,
                 activation: Callable[..., nn.Module] = nn.SiLU, drop_path_rate: float = 0.0,
                 padding: str = "symmetric", bn_eps: float = 1e-5) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = make_divisible(in_channels * expand_ratio) if expand_ratio != 1 else in_channels
        kw = dict(padding=padding, bn_eps=bn_eps)
        self.expand = (nn.Identity() if expand_ratio == 1
                       else ConvBNAct(in_channels, hidden, 1, activation=activation, **kw))
        self.depthwise = ConvBNAct(hidden, hidden, kernel_size, stride, groups=hidden, activation=activation, **kw)
        self.se = (SqueezeExcite(hidden, max(1, int(in_channels * se_ratio)), activation)
                   if se_ratio else nn.Identity())
        self.project = ConvBNAct(hidden, out_channels, 1, activation=None, **kw)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.drop_path_rate = drop_path_rate

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        if self.use_residual:
            y = x + drop_path(y, self.drop_path_rate, self.training)
        return y


class InvertedResidual(MBConv):
    """MobileNet v2's inverted residual with linear bottleneck: an :class:`MBConv` with ReLU6, no
    squeeze-excite and PyTorch padding (lecture 4). Mirrors ``torchvision.models.mobilenetv2.InvertedResidual``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand_ratio: float = 6) -> None:
        super().__init__(in_channels, out_channels, 3, stride, expand_ratio, se_ratio=None, activation=nn.ReLU6)


class FusedMBConv(nn.Module):
    """Fused-MBConv of EfficientNetV2 (lecture 4): the 1x1 expansion and the k x k depthwise convolution
    of :class:`MBConv` are replaced by one full k x k convolution, which runs faster on accelerators in
    the early, high-resolution stages where channels are few.

    ``k x k conv (Cin -> Ch, stride) -> [squeeze-excite] -> 1x1 linear project (Ch -> Cout)``; with
    ``expand_ratio == 1`` the single k x k convolution goes straight to ``Cout`` (with activation).
    Identity skip when ``stride == 1`` and ``Cin == Cout``. Mirrors ``torchvision.models.efficientnet.FusedMBConv``.

    Submodules: ``fused``, ``se``, ``project`` (``nn.Identity`` when ``expand_ratio == 1``).
    Shape: ``(B, Cin, H, W) -> (B, Cout, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 expand_ratio: float = 4, se_ratio: float | None = None,
                 activation: Callable[..., nn.Module] = nn.SiLU, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if expand_ratio == 1:
            self.fused = ConvBNAct(in_channels, out_channels, kernel_size, stride, activation=activation)
            self.se = nn.Identity()
            self.project = nn.Identity()
        else:
            hidden = make_divisible(in_channels * expand_ratio)
            self.fused = ConvBNAct(in_channels, hidden, kernel_size, stride, activation=activation)
            self.se = (SqueezeExcite(hidden, max(1, int(in_channels * se_ratio)), activation)
                       if se_ratio else nn.Identity())
            self.project = ConvBNAct(hidden, out_channels, 1, activation=None)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.drop_path_rate = drop_path_rate

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.se(self.fused(x)))
        if self.use_residual:
            y = x + drop_path(y, self.drop_path_rate, self.training)
        return y
