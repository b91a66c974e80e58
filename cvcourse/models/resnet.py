"""Lecture 3: residual networks (He et al. 2015) and their pre-activation variants (He et al. 2016).

* Blocks: :class:`BasicBlock` (two 3x3 convs + identity), :class:`Bottleneck` (1x1 down, 3x3, 1x1 up),
  :class:`PreActBasicBlock` / :class:`PreActBottleneck` (BN -> ReLU -> conv, a clean identity path),
  and :class:`PlainBlock` (a BasicBlock without its shortcut, for the degradation experiment).
* :class:`ResNet` and :func:`resnet18` / :func:`resnet34` / :func:`resnet50`: torchvision's ImageNet
  layout with the same module names (``conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc``), so
  torchvision state dicts load and later lectures can hook ``layer1..layer4``.
* :class:`CifarResNet`, :func:`plain_net`, :func:`resnet_cifar`, :func:`preact_resnet_cifar`: the
  paper's 6n+2-layer networks for 32x32 images (three stages of widths w, 2w, 4w), used to reproduce
  the degradation problem; the shortcut that changes shape is the paper's parameter-free option A,
  so a plain net and its residual twin have exactly the same parameters.
* :func:`conv_grad_norms`: gradient norm of every convolution, input side first.

Letter legend: B batch, C channels, H/W height/width, K classes, n blocks per stage.
"""

from __future__ import annotations

from typing import Callable, Sequence, Type

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "conv3x3",
    "conv1x1",
    "BasicBlock",
    "Bottleneck",
    "PlainBlock",
    "PreActBasicBlock",
    "PreActBottleneck",
    "ShortcutA",
    "ResNet",
    "resnet18",
    "resnet34",
    "resnet50",
    "CifarResNet",
    "plain_net",
    "resnet_cifar",
    "preact_resnet_cifar",
    "conv_grad_norms",
]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias: mixes channels, changes their number, keeps H and W (at stride 1)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Residual block of ResNet-18/34, lecture 3: ``relu(x + bn(conv(relu(bn(conv(x))))))``.

    Mirrors ``torchvision.models.resnet.BasicBlock`` (same attribute names).

    Args:
        inplanes: C_in.
        planes: C_out (``expansion = 1``).
        stride: stride of the first 3x3 conv (2 halves H and W).
        downsample: maps ``x`` to the output shape when it changes (``None``: identity).

    Shapes:
        ``(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)``.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class PlainBlock(BasicBlock):
    """A :class:`BasicBlock` without the shortcut, lecture 3: ``relu(bn(conv(relu(bn(conv(x))))))``.

    Stacking these gives the "plain" networks of the degradation experiment; ``downsample`` is
    accepted (and unused) so that the same builders make plain and residual nets.
    """

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))


class Bottleneck(nn.Module):
    """Bottleneck block of ResNet-50/101/152, lecture 3: 1x1 reduce, 3x3, 1x1 expand (x4) + shortcut.

    Mirrors ``torchvision.models.resnet.Bottleneck`` (stride on the 3x3 conv, "ResNet v1.5").

    Args:
        inplanes: C_in.
        planes: width of the 3x3 conv; the output has ``4 * planes`` channels.
        stride: stride of the 3x3 conv.
        downsample: maps ``x`` to the output shape when it changes.

    Shapes:
        ``(B, C_in, H, W) -> (B, 4 planes, H / stride, W / stride)``.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class PreActBasicBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016, "Identity mappings"), lecture 3.

    ``x + conv(relu(bn(conv(relu(bn(x))))))``: nothing is applied after the addition, so the identity
    path runs unchanged from the first block to the last and gradients reach early layers directly.
    When the shape changes, the shortcut is applied to the pre-activated input (as in the paper's code).

    Shapes:
        ``(B, C_in, H, W) -> (B, planes, H / stride, W / stride)``.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        identity = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (x4), plus identity; lecture 3.

    Shapes:
        ``(B, C_in, H, W) -> (B, 4 planes, H / stride, W / stride)``.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv1x1(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        identity = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + identity


Block = Type[nn.Module]


def _projection(inplanes: int, outplanes: int, stride: int, batch_norm: bool = True) -> nn.Module:
    """Option B shortcut: 1x1 conv with stride (+ BN), torchvision's ``downsample``."""
    if batch_norm:
        return nn.Sequential(conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes))
    return conv1x1(inplanes, outplanes, stride)


class ShortcutA(nn.Module):
    """Option A shortcut of the ResNet paper (CIFAR experiments): subsample by ``stride`` and pad the
    new channels with zeros. No parameters, so plain and residual nets have equal weight counts.

    Shapes:
        ``(B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride))``, ``C_out >= C_in``.
    """

    def __init__(self, inplanes: int, outplanes: int, stride: int) -> None:
        super().__init__()
        if outplanes < inplanes:
            raise ValueError(f"ShortcutA can only add channels: got {inplanes} -> {outplanes}")
        self.extra = outplanes - inplanes
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (B, C_in, h, w) -> (B, C_out, h, w)


def _make_stage(
    block: Block,
    inplanes: int,
    planes: int,
    blocks: int,
    stride: int,
    shortcut: Callable[[int, int, int], nn.Module],
) -> tuple[nn.Sequential, int]:
    outplanes = planes * block.expansion
    downsample = shortcut(inplanes, outplanes, stride) if (stride != 1 or inplanes != outplanes) else None
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(outplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), outplanes


class ResNet(nn.Module):
    """ResNet for ImageNet-sized inputs, lecture 3 (mirrors ``torchvision.models.ResNet``).

    Stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool), four stages ``layer1..layer4`` of widths
    ``width * (1, 2, 4, 8)`` (times the block's expansion), global average pool and ``fc``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck` (or a pre-activation variant).
        layers: number of blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        num_classes: K.
        in_channels: C of the input.
        width: channels of the stem and of ``layer1``'s 3x3 convs (64 in the paper).

    Shapes:
        ``(B, C, H, W) -> (B, K)``; ``layer_i`` outputs ``(B, width 2^(i-1) expansion, H / 2^(i+1), W / 2^(i+1))``.
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        width: int = 64,
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"layers must give the number of blocks of 4 stages, got {list(layers)}")
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        c = width
        self.layer1, c = _make_stage(block, c, width, layers[0], 1, _projection)
        self.layer2, c = _make_stage(block, c, width * 2, layers[1], 2, _projection)
        self.layer3, c = _make_stage(block, c, width * 4, layers[2], 2, _projection)
        self.layer4, c = _make_stage(block, c, width * 8, layers[3], 2, _projection)
        self.num_features = c
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c, num_classes)
        _init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, num_features, H / 32, W / 32)``: the output of ``layer4``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, f: Tensor) -> Tensor:
        """``(B, num_features, h, w) -> (B, K)``."""
        return self.fc(torch.flatten(self.avgpool(f), 1))  # (B, C, 1, 1) -> (B, C)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _init_weights(model: nn.Module) -> None:
    """He (Kaiming) normal init for convs, BN to identity; torchvision's default ResNet init."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet18(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-18 (mirrors ``torchvision.models.resnet18(weights=None)``: 11,689,512 weights), lecture 3."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels)


def resnet34(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-34 (mirrors ``torchvision.models.resnet34(weights=None)``), lecture 3."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_channels)


def resnet50(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-50 (mirrors ``torchvision.models.resnet50(weights=None)``: 25,557,032 weights), lecture 3."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels)


class CifarResNet(nn.Module):
    """The ResNet paper's network for 32x32 images (Section 4.2), lecture 3.

    A 3x3 stem conv, three stages of ``n`` blocks at widths ``w, 2w, 4w`` (stride 2 at stages 2 and 3),
    global average pooling and a linear classifier: ``depth = 6 n + 2`` weighted layers for two-conv
    blocks. With :class:`PlainBlock` it is the paper's plain baseline; with a pre-activation block a
    final BN-ReLU is added before pooling.

    Args:
        block: :class:`PlainBlock`, :class:`BasicBlock` or :class:`PreActBasicBlock`.
        depth: ``6 n + 2`` (8, 14, 20, 32, 44, 56, 110 ...).
        num_classes: K.
        in_channels: C of the input.
        width: ``w``, channels of the first stage (16 in the paper).

    Shapes:
        ``(B, C, H, W) -> (B, K)``; ``forward_features`` gives ``(B, 4 w, H / 4, W / 4)``.
    """

    def __init__(self, block: Block, depth: int, num_classes: int = 10, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, ...), got {depth}")
        n = (depth - 2) // 6
        preact = block in (PreActBasicBlock, PreActBottleneck)
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = nn.Identity() if preact else nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        c = width
        self.layer1, c = _make_stage(block, c, width, n, 1, ShortcutA)
        self.layer2, c = _make_stage(block, c, width * 2, n, 2, ShortcutA)
        self.layer3, c = _make_stage(block, c, width * 4, n, 2, ShortcutA)
        self.final = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True)) if preact else nn.Identity()
        self.num_features = c
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c, num_classes)
        _init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, 4 w, H / 4, W / 4)``."""
        x = self.conv1(x)
        x = x if isinstance(self.bn1, nn.Identity) else self.relu(self.bn1(x))
        return self.final(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, f: Tensor) -> Tensor:
        """``(B, 4 w, h, w) -> (B, K)``."""
        return self.fc(torch.flatten(self.avgpool(f), 1))  # (B, C, 1, 1) -> (B, C)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def plain_net(depth: int, num_classes: int = 10, in_channels: int = 3, width: int = 16) -> CifarResNet:
    """Plain ``depth``-layer network without shortcuts (the degradation baseline), lecture 3."""
    return CifarResNet(PlainBlock, depth, num_classes, in_channels, width)


def resnet_cifar(depth: int, num_classes: int = 10, in_channels: int = 3, width: int = 16) -> CifarResNet:
    """ResNet-``depth`` for 32x32 images (ResNet-20/32/44/56/110 of the paper), lecture 3."""
    return CifarResNet(BasicBlock, depth, num_classes, in_channels, width)


def preact_resnet_cifar(depth: int, num_classes: int = 10, in_channels: int = 3, width: int = 16) -> CifarResNet:
    """Pre-activation ResNet-``depth`` for 32x32 images (He et al. 2016), lecture 3."""
    return CifarResNet(PreActBasicBlock, depth, num_classes, in_channels, width)


def conv_grad_norms(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
) -> list[float]:
    """L2 norm of the loss gradient w.r.t. each ``Conv2d`` weight, input side first, lecture 3.

    One forward/backward pass on ``images`` (Tensor[B, C, H, W]) and ``labels`` (Tensor[B]); existing
    gradients are cleared before and after, and the model's train/eval mode is kept.

    Returns:
        One float per convolution, in registration order (the stem first).
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    model.zero_grad(set_to_none=True)
    loss_fn(model(images), labels).backward()
    norms = [float(c.weight.grad.norm()) if c.weight.grad is not None else 0.0 for c in convs]
    model.zero_grad(set_to_none=True)
    return norms
