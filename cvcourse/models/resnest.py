"""ResNeSt (Zhang et al., 2020): split-attention blocks, a soft choice between the splits of each cardinal group.

Paper notebook ``lectures/papers/resnest.ipynb`` (extends lecture 3, where ResNet's bottleneck and ResNeXt's grouped
convolutions are taught). A ResNeXt bottleneck splits its 3x3 convolution into ``K`` *cardinal groups*. ResNeSt
splits every cardinal group once more into ``R`` *radix* splits (``G = K R`` convolution groups in all), sums the
splits, pools the sum globally, and lets two small fully connected layers decide, per channel, how much of each
split to keep: a softmax over the ``R`` splits ("r-softmax"; a sigmoid gate when ``R = 1``, which is
squeeze-and-excitation). The weighted sum replaces the 3x3 convolution's output in the bottleneck.

- :func:`rsoftmax`           softmax over the radix splits within each cardinal group (sigmoid for ``R = 1``)
- :class:`SplitAttention`    the split-attention convolution (the paper's Fig. 2 right, ``SplAtConv2d`` in its code)
- :class:`ResNeStBottleneck` 1x1 reduce -> split attention (or a plain grouped 3x3 for ``radix=0``) -> 1x1 expand +
  shortcut; ``radix=0, cardinality=1`` is ResNet's bottleneck, ``radix=0, cardinality=K`` ResNeXt's
- :class:`TinySplitNet`      a small network of those blocks for the notebook's experiment

``radix=0`` meaning "no split attention" is the paper's own ablation convention (radix 0 to 4).

Letter legend: B batch, C channels (``C_in`` of the block input, ``W`` the 3x3 width), H, W height and width,
K cardinality, R radix, I the attention's inner width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cvcourse._checks import check_tensor

__all__ = ["rsoftmax", "SplitAttention", "ResNeStBottleneck", "TinySplitNet", "attention_inner_channels"]


def attention_inner_channels(width: int, radix: int, reduction: int = 4, min_inner: int = 32) -> int:
    """Inner width ``I = max(W R / reduction, min_inner)`` of the split-attention MLP (the official code's rule)."""
    return max(width * radix // reduction, min_inner)


def rsoftmax(logits: Tensor, radix: int, cardinality: int) -> Tensor:
    """r-softmax: normalise attention logits over the radix splits, separately for every channel and cardinal group.

    Args:
        logits (Tensor[B, R * W]): the output of the attention MLP, ordered as its grouped 1x1 convolution emits them:
            cardinal group first, then radix split, then channel within the group, ``(K, R, W / K)``.
        radix: R; for ``R = 1`` the result is ``sigmoid(logits)`` (a gate, as in squeeze-and-excitation).
        cardinality: K.

    Returns:
        Tensor[B, R, W]: weights for split ``r`` and channel ``c`` (channels in the convolution's order, cardinal group
        first); for ``R > 1`` they sum to one over ``R``.

    Raises:
        ValueError: when ``logits`` is not ``(B, N)`` with ``N`` divisible by ``R * K``, or ``R, K < 1``.
    """
    check_tensor(logits, "logits")
    if radix < 1 or cardinality < 1:
        raise ValueError(f"radix and cardinality must be >= 1, got radix={radix}, cardinality={cardinality}")
    if logits.dim() != 2 or logits.shape[1] % (radix * cardinality):
        raise ValueError(f"logits must have shape (B, R * W) with R * K = {radix * cardinality} dividing its second "
                         f"dimension, got {tuple(logits.shape)}")
    B = logits.shape[0]
    if radix == 1:
        return torch.sigmoid(logits).reshape(B, 1, -1)
    x = logits.reshape(B, cardinality, radix, -1).transpose(1, 2)  # (B, K, R, W/K) -> (B, R, K, W/K)
    return x.softmax(dim=1).reshape(B, radix, -1)  # -> (B, R, W)


class SplitAttention(nn.Module):
    """Split-attention convolution (ResNeSt's Fig. 2, right; the official ``SplAtConv2d``).

    1. One ``k x k`` convolution with ``K R`` groups makes ``R`` splits of ``W`` channels each (BN, ReLU).
    2. Their sum is pooled globally: ``s = mean_hw(sum_r U_r)``, ``(B, W)``.
    3. Two grouped (``K`` groups) 1x1 layers ``W -> I -> R W`` with BN and ReLU between them give attention logits,
       normalised by :func:`rsoftmax`.
    4. Output ``V = sum_r a_r * U_r`` (channel-wise weights).

    Args:
        in_channels: C_in.
        channels: W, the output width (the bottleneck's 3x3 width).
        kernel_size, stride, padding: of the split convolution (padding default ``kernel_size // 2``).
        cardinality: K; must divide ``in_channels`` and ``channels``.
        radix: R >= 1.
        reduction, min_inner: inner width ``I = max(W R / reduction, min_inner)`` (official defaults 4 and 32).

    Shape: ``(B, C_in, H, W) -> (B, channels, H / stride, W / stride)``.
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, cardinality: int = 1, radix: int = 2, reduction: int = 4,
                 min_inner: int = 32) -> None:
        super().__init__()
        if radix < 1:
            raise ValueError(f"radix must be >= 1 for split attention (use a plain conv for radix 0), got {radix}")
        if cardinality < 1 or in_channels % cardinality or channels % cardinality:
            raise ValueError(f"cardinality {cardinality} must divide in_channels ({in_channels}) and channels "
                             f"({channels})")
        if in_channels % (cardinality * radix):
            raise ValueError(f"cardinality * radix = {cardinality * radix} convolution groups must divide in_channels "
                             f"({in_channels})")
        inner = attention_inner_channels(channels, radix, reduction, min_inner)
        if inner % cardinality:
            raise ValueError(f"cardinality {cardinality} must divide the attention's inner width {inner}; change "
                             f"min_inner or reduction")
        self.radix, self.cardinality, self.channels = radix, cardinality, channels
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, channels * radix, kernel_size, stride, padding, groups=cardinality * radix,
                              bias=False)
        self.bn0 = nn.BatchNorm2d(channels * radix)
        self.relu = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(channels, inner, 1, groups=cardinality)
        self.bn1 = nn.BatchNorm2d(inner)
        self.fc2 = nn.Conv2d(inner, channels * radix, 1, groups=cardinality)
        self.last_attention: Tensor | None = None  # (B, R, W) of the last forward pass, for plots

    def forward(self, x: Tensor) -> Tensor:
        check_tensor(x, "x")
        u = self.relu(self.bn0(self.conv(x)))  # (B, C_in, H, W) -> (B, R W, H', W')
        B = u.shape[0]
        splits = u.reshape(B, self.radix, self.channels, *u.shape[2:])  # -> (B, R, W, H', W')
        gap = splits.sum(1).mean(dim=(2, 3), keepdim=True)  # (B, W, 1, 1)
        logits = self.fc2(self.relu(self.bn1(self.fc1(gap)))).flatten(1)  # (B, W, 1, 1) -> (B, R W)
        a = rsoftmax(logits, self.radix, self.cardinality)  # (B, R, W)
        self.last_attention = a.detach()
        return (splits * a[..., None, None]).sum(1)  # (B, R, W, H', W') -> (B, W, H', W')


class ResNeStBottleneck(nn.Module):
    """Bottleneck block with a split-attention 3x3 stage: 1x1 reduce -> 3x3 -> 1x1 expand (x4) + shortcut.

    The 3x3 stage is :class:`SplitAttention` for ``radix >= 1`` and a plain ``cardinality``-grouped convolution with
    BN and ReLU for ``radix = 0`` (ResNet's bottleneck for ``cardinality=1``, ResNeXt's for more). The 3x3 width is
    ``W = int(planes * bottleneck_width / 64) * cardinality`` as in torchvision's ``Bottleneck`` (so ResNet-50 is
    ``bottleneck_width=64``, ResNeXt-50 32x4d ``cardinality=32, bottleneck_width=4``, ResNeSt-50 2s1x64d ``radix=2``).

    Deviations from the official ResNeSt: the stride sits on the 3x3 convolution (torchvision's "ResNet v1.5"), not in
    an extra average pooling after it, and the projection shortcut is a strided 1x1 convolution + BN for every variant,
    so that the three blocks differ only in their 3x3 stage.

    Args:
        inplanes: C_in.
        planes: the output has ``4 * planes`` channels.
        stride: of the 3x3 stage.
        cardinality, radix, bottleneck_width: see above.
        reduction, min_inner: of the split attention.

    Shape: ``(B, C_in, H, W) -> (B, 4 planes, H / stride, W / stride)``.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, cardinality: int = 1, radix: int = 2,
                 bottleneck_width: int = 64, reduction: int = 4, min_inner: int = 32) -> None:
        super().__init__()
        if radix < 0:
            raise ValueError(f"radix must be >= 0 (0: no split attention), got {radix}")
        width = int(planes * bottleneck_width / 64) * cardinality
        if width < 1:
            raise ValueError(f"planes * bottleneck_width / 64 must be >= 1, got planes={planes}, "
                             f"bottleneck_width={bottleneck_width}")
        self.width, self.radix, self.cardinality = width, radix, cardinality
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        if radix >= 1:
            self.conv2 = SplitAttention(width, width, 3, stride, cardinality=cardinality, radix=radix,
                                        reduction=reduction, min_inner=min_inner)
        else:
            if width % cardinality:
                raise ValueError(f"cardinality {cardinality} must divide the width {width}")
            self.conv2 = nn.Sequential(nn.Conv2d(width, width, 3, stride, 1, groups=cardinality, bias=False),
                                       nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                           if stride != 1 or inplanes != out else None)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))  # (B, C_in, H, W) -> (B, W, H, W)
        y = self.conv2(y)                         # -> (B, W, H / s, W / s)
        y = self.bn3(self.conv3(y))               # -> (B, 4 planes, H / s, W / s)
        return self.relu(y + identity)


class TinySplitNet(nn.Module):
    """A small network of :class:`ResNeStBottleneck` blocks: 3x3 stem -> one block per stage (strides 1, 2, 2 ...)
    -> global average pooling -> linear.

    Args:
        num_classes: outputs.
        planes: ``planes`` of each stage's block (the output of stage ``i`` has ``4 planes[i]`` channels).
        cardinality, radix, bottleneck_width, min_inner: of every block (ResNet: ``radix=0``; ResNeXt:
            ``radix=0, cardinality=K``; ResNeSt: ``radix >= 1``).
        stem: channels of the stem convolution.
        in_channels: C of the input.

    Attributes: ``features`` (stem + stages) and ``head`` (pool + linear), for hooks.

    Shape: ``(B, in_channels, H, W) -> (B, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, planes: tuple[int, ...] = (8, 16, 32), cardinality: int = 1,
                 radix: int = 2, bottleneck_width: int = 64, min_inner: int = 8, stem: int = 16,
                 in_channels: int = 3) -> None:
        super().__init__()
        if not planes:
            raise ValueError("planes must list at least one stage")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem),
                                   nn.ReLU(inplace=True)]
        c = stem
        for i, p in enumerate(planes):
            layers.append(ResNeStBottleneck(c, p, stride=1 if i == 0 else 2, cardinality=cardinality, radix=radix,
                                            bottleneck_width=bottleneck_width, min_inner=min_inner))
            c = p * ResNeStBottleneck.expansion
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, C, H, W) -> (B, 4 planes[-1], h, w) -> (B, num_classes)
