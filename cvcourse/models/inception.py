"""Lecture 3: Inception (GoogLeNet, Szegedy et al. 2014) and its factorised v2/v3 blocks (2015).

* :class:`NaiveInceptionBlock`: 1x1, 3x3 and 5x5 convolutions and a 3x3 max-pool side by side,
  concatenated. Expensive: every large kernel sees all input channels, and the pool branch keeps them.
* :class:`InceptionBlock`: the GoogLeNet block, with 1x1 "reduction" convolutions before the 3x3 and
  5x5 convolutions and after the pool.
* :class:`FactorisedInceptionBlock`: Inception-v3's block (its Figure 5) where the 5x5 branch is two
  3x3 convolutions; :class:`AsymmetricConv` replaces a k x k convolution by k x 1 followed by 1 x k.
* :class:`GridReduction`: Inception-v3's grid-size reduction (its Figure 10): a stride-2 convolution
  branch and a stride-2 pool side by side, so the grid halves without a representational bottleneck.
* :class:`AuxClassifier`: GoogLeNet's side head on an intermediate feature map.
* :class:`MiniGoogLeNet`: a small GoogLeNet for 32x32 images with one auxiliary head.
* :func:`label_smoothing_cross_entropy`: Inception-v3's label smoothing, written out.

Letter legend: B batch, C channels, H/W height/width, K classes, k kernel size, eps smoothing.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse.models.blocks import ConvBNAct

__all__ = [
    "conv_bn_relu",
    "NaiveInceptionBlock",
    "InceptionBlock",
    "FactorisedInceptionBlock",
    "AsymmetricConv",
    "GridReduction",
    "AuxClassifier",
    "MiniGoogLeNet",
    "label_smoothing_cross_entropy",
]


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int] = 1) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> ReLU with "same" padding, the unit of every Inception branch.

    Square kernels use the course's :class:`~cvcourse.models.blocks.ConvBNAct`; a ``(kh, kw)`` kernel
    (the asymmetric convolutions of Inception-v3) builds the same three layers with the same names.
    """
    if isinstance(kernel_size, int):
        return ConvBNAct(in_channels, out_channels, kernel_size, activation=nn.ReLU)
    kh, kw = kernel_size
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), bias=False)),
        ("bn", nn.BatchNorm2d(out_channels)),
        ("act", nn.ReLU(inplace=True)),
    ]))


class NaiveInceptionBlock(nn.Module):
    """The "naive" Inception module of the GoogLeNet paper (its Figure 2a), lecture 3.

    Branches: 1x1, 3x3 and 5x5 convolutions on the full input, and a 3x3/1 max-pool that passes all
    input channels through. Outputs are concatenated along channels.

    Shapes:
        ``(B, C_in, H, W) -> (B, ch1x1 + ch3x3 + ch5x5 + C_in, H, W)``.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3: int, ch5x5: int) -> None:
        super().__init__()
        self.branch1 = conv_bn_relu(in_channels, ch1x1, 1)
        self.branch2 = conv_bn_relu(in_channels, ch3x3, 3)
        self.branch3 = conv_bn_relu(in_channels, ch5x5, 5)
        self.branch4 = nn.MaxPool2d(3, stride=1, padding=1)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionBlock(nn.Module):
    """GoogLeNet's Inception module with 1x1 reductions (its Figure 2b), lecture 3.

    Branches: 1x1; 1x1 (reduce to ``ch3x3red``) -> 3x3; 1x1 (reduce to ``ch5x5red``) -> 5x5;
    3x3/1 max-pool -> 1x1 (``pool_proj``). The names follow the paper's Table 1, e.g. inception (3a) is
    ``InceptionBlock(192, 64, 96, 128, 16, 32, 32)`` with 256 output channels. (torchvision's
    ``googlenet`` uses a 3x3 where the paper has the 5x5; this block follows the paper.)

    Shapes:
        ``(B, C_in, H, W) -> (B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)``.
    """

    def __init__(
        self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int
    ) -> None:
        super().__init__()
        self.branch1 = conv_bn_relu(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(conv_bn_relu(in_channels, ch3x3red, 1), conv_bn_relu(ch3x3red, ch3x3, 3))
        self.branch3 = nn.Sequential(conv_bn_relu(in_channels, ch5x5red, 1), conv_bn_relu(ch5x5red, ch5x5, 5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_bn_relu(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class AsymmetricConv(nn.Sequential):
    """A k x k convolution factorised into k x 1 then 1 x k (Inception-v3, Section 3.2), lecture 3.

    Costs ``2 k C_mid C`` instead of ``k^2 C_in C_out`` weights. Without the non-linearity in between
    (``activation=False``) it computes exactly a k x k convolution whose kernel has rank 1 per
    channel pair; with it (the default), it is a deeper, cheaper layer with the same receptive field.

    Shapes:
        ``(B, C_in, H, W) -> (B, C_out, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, k: int = 3, mid_channels: int | None = None,
                 activation: bool = True) -> None:
        mid = out_channels if mid_channels is None else mid_channels
        if activation:
            super().__init__(conv_bn_relu(in_channels, mid, (k, 1)), conv_bn_relu(mid, out_channels, (1, k)))
        else:
            super().__init__(
                nn.Conv2d(in_channels, mid, (k, 1), padding=(k // 2, 0), bias=False),
                nn.Conv2d(mid, out_channels, (1, k), padding=(0, k // 2), bias=False),
            )


class FactorisedInceptionBlock(nn.Module):
    """Inception-v3's block with the 5x5 branch replaced by two 3x3 convolutions (its Figure 5), lecture 3.

    Branches: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (same 5x5 receptive field, 18/25 of the weights);
    3x3/1 average pool -> 1x1. Argument names follow :class:`InceptionBlock` with ``ch5x5red``/
    ``ch5x5`` for the double-3x3 branch. ``asymmetric=True`` further splits every 3x3 into 3x1 + 1x3.

    Shapes:
        ``(B, C_in, H, W) -> (B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)``.
    """

    def __init__(
        self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int,
        asymmetric: bool = False,
    ) -> None:
        super().__init__()

        def conv3(cin: int, cout: int) -> nn.Module:
            return AsymmetricConv(cin, cout, 3) if asymmetric else conv_bn_relu(cin, cout, 3)

        self.branch1 = conv_bn_relu(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(conv_bn_relu(in_channels, ch3x3red, 1), conv3(ch3x3red, ch3x3))
        self.branch3 = nn.Sequential(conv_bn_relu(in_channels, ch5x5red, 1), conv3(ch5x5red, ch5x5), conv3(ch5x5, ch5x5))
        self.branch4 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), conv_bn_relu(in_channels, pool_proj, 1)
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GridReduction(nn.Module):
    """Inception-v3's grid-size reduction (its Figure 10; torchvision's ``InceptionB``), lecture 3.

    Halving the grid of a ``C``-channel map, the two plain ways are a max-pool followed by a convolution
    (cheap, but the pool first squeezes the representation through ``C`` channels at the smaller size: a
    representational bottleneck) or a convolution followed by a pool (no bottleneck, but the convolution
    runs on the full grid: about four times the compute). This block runs strided branches *in
    parallel* and concatenates them: a 3x3/2 convolution, 1x1 -> 3x3 -> 3x3/2 convolutions, and a 3x3/2
    max-pool that passes the ``C`` input channels through. All stride-2 layers use no padding.

    Args:
        in_channels: C_in.
        ch3x3: output channels of the single strided 3x3 branch (384 in Inception-v3).
        ch_dbl_red, ch_dbl: channels of the double-3x3 branch (64 -> 96 -> 96).

    Shapes:
        ``(B, C_in, H, W) -> (B, C_in + ch3x3 + ch_dbl, (H - 3) // 2 + 1, (W - 3) // 2 + 1)``,
        e.g. ``(B, 288, 35, 35) -> (B, 768, 17, 17)``.
    """

    def __init__(self, in_channels: int, ch3x3: int = 384, ch_dbl_red: int = 64, ch_dbl: int = 96) -> None:
        super().__init__()

        def strided(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(OrderedDict([
                ("conv", nn.Conv2d(cin, cout, 3, stride=2, bias=False)),
                ("bn", nn.BatchNorm2d(cout)),
                ("act", nn.ReLU(inplace=True)),
            ]))

        self.branch3x3 = strided(in_channels, ch3x3)
        self.branch3x3dbl = nn.Sequential(conv_bn_relu(in_channels, ch_dbl_red, 1), conv_bn_relu(ch_dbl_red, ch_dbl, 3),
                                          strided(ch_dbl, ch_dbl))
        self.branch_pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = in_channels + ch3x3 + ch_dbl

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)], 1)


class AuxClassifier(nn.Module):
    """GoogLeNet's auxiliary classifier (attached after inception 4a and 4d), lecture 3.

    Average-pool to ``pool_size`` x ``pool_size`` (4x4 in the paper), 1x1 conv to 128 channels, a
    hidden linear layer, dropout 0.7 and the class scores. Its loss (weight 0.3 in the paper) sends
    gradient straight into the middle of a deep network; at test time the head is ignored.

    Shapes:
        ``(B, C, H, W) -> (B, K)``.
    """

    def __init__(self, in_channels: int, num_classes: int, pool_size: int = 4, hidden: int = 1024,
                 dropout: float = 0.7) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.conv = conv_bn_relu(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * pool_size * pool_size, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)  # (B, 128, p, p) -> (B, 128 p p)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


class MiniGoogLeNet(nn.Module):
    """A small GoogLeNet for 32x32 images: stem, four Inception blocks, one auxiliary head, lecture 3.

    Stem 3x3 conv (``width`` channels) -> inception a, b -> max-pool -> inception c (aux head here),
    d -> global average pool -> dropout -> linear. Block widths are the paper's (3a, 3b, 4a, 4b)
    divided by ``shrink``.

    In training mode with ``aux_logits=True`` ``forward`` returns ``(logits, aux_logits)``; in eval
    mode (or without the head) only ``logits``.

    Shapes:
        ``(B, C, H, W) -> (B, K)``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, aux_logits: bool = True, shrink: int = 4,
                 dropout: float = 0.4) -> None:
        super().__init__()

        def s(c: int) -> int:
            return max(1, c // shrink)

        self.stem = conv_bn_relu(in_channels, s(192), 3)
        self.inception_a = InceptionBlock(s(192), s(64), s(96), s(128), s(16), s(32), s(32))
        c = self.inception_a.out_channels
        self.inception_b = InceptionBlock(c, s(128), s(128), s(192), s(32), s(96), s(64))
        c = self.inception_b.out_channels
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.inception_c = InceptionBlock(c, s(192), s(96), s(208), s(16), s(48), s(64))
        c_aux = c = self.inception_c.out_channels
        self.inception_d = InceptionBlock(c, s(160), s(112), s(224), s(24), s(64), s(64))
        c = self.inception_d.out_channels
        self.aux = AuxClassifier(c_aux, num_classes, pool_size=2, hidden=s(1024)) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        x = self.maxpool(self.inception_b(self.inception_a(self.stem(x))))
        x = self.inception_c(x)
        aux = self.aux(x) if (self.aux is not None and self.training) else None
        x = self.inception_d(x)
        logits = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))  # (B, C, 1, 1) -> (B, C)
        return (logits, aux) if aux is not None else logits


def label_smoothing_cross_entropy(logits: Tensor, target: Tensor, smoothing: float = 0.1) -> Tensor:
    """Cross-entropy against smoothed one-hot targets (Inception-v3, Section 7), lecture 3.

    The target distribution is ``q = (1 - eps) * one_hot(y) + eps / K``: the network is no longer pushed
    to make the true logit infinitely larger than the others. Equals
    ``F.cross_entropy(logits, target, label_smoothing=eps)`` (tested).

    Args:
        logits (Tensor[B, K]): raw class scores.
        target (Tensor[B]): int64 class indices in ``[0, K)``.
        smoothing: eps in ``[0, 1]``.

    Returns:
        The mean loss over the batch (a scalar tensor).
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (B, K), got {tuple(logits.shape)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target must have shape ({logits.shape[0]},) to match logits, got {tuple(target.shape)}")
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must lie in [0, 1], got {smoothing}")
    K = logits.shape[1]
    logp = logits.log_softmax(-1)
    q = F.one_hot(target, K).to(logp.dtype) * (1.0 - smoothing) + smoothing / K
    return -(q * logp).sum(-1).mean()
