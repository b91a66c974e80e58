"""MobileNet v1, MobileNet v2 and Xception's separable-convolution block (lecture 4: efficient CNNs).

- :class:`MobileNetV1`  a stem convolution and 13 :class:`~cvcourse.models.blocks.DepthwiseSeparableConv`
  (Howard et al., 2017; 4.2 M parameters at width 1.0).
- :class:`MobileNetV2`  a stem and 17 :class:`~cvcourse.models.blocks.InvertedResidual` blocks with linear
  bottlenecks (Sandler et al., 2018); same layers and parameter count as ``torchvision.models.mobilenet_v2``.
- :class:`SeparableConv2d`, :class:`XceptionBlock`  Xception's "extreme Inception" unit (Chollet, 2017).

Both MobileNets take ``width_mult`` (the paper's alpha, channels rounded to multiples of 8) and
``stem_stride`` (2 as in the papers; 1 for small images such as 32 x 32 digits or 64 x 64 shapes).

Letter legend: B batch, C channels, H, W height and width.
"""

from __future__ import annotations

from torch import Tensor, nn

from cvcourse.models.blocks import ConvBNAct, DepthwiseSeparableConv, InvertedResidual, make_divisible

__all__ = ["MobileNetV1", "MobileNetV2", "SeparableConv2d", "XceptionBlock"]

#: MobileNet v1 body: (out channels, stride) of the 13 depthwise separable blocks.
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))

#: MobileNet v2 body: (expansion t, out channels c, repeats n, first stride s), Table 2 of the paper.
V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class _Classifier(nn.Module):
    """Shared ``forward_features`` / ``forward_head`` / ``forward`` of the two MobileNets."""

    features: nn.Sequential
    classifier: nn.Sequential

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W) -> (B, out_channels, h, w)``."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must have shape (B, 3, H, W), got {tuple(x.shape)}")
        return self.features(x)

    def forward_head(self, features: Tensor) -> Tensor:
        """``(B, C, h, w) -> (B, num_classes)``: global average pool, dropout, linear."""
        return self.classifier(features.mean(dim=(2, 3)))  # (B, C, h, w) -> (B, C)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


class MobileNetV1(_Classifier):
    """MobileNet v1 (lecture 4): a 3x3 stem then 13 depthwise separable convolutions, ReLU throughout.

    No torchvision equivalent. At ``width_mult=1.0`` and 1000 classes it has 4.23 M parameters (the paper
    reports 4.2 M).

    Args:
        num_classes: classifier outputs.
        width_mult: alpha, multiplies every channel count.
        stem_stride: stride of the first convolution (2 for ImageNet, 1 for small images).
        dropout: dropout before the linear classifier.

    Attributes: ``features`` (stem + blocks), ``classifier`` (Dropout, Linear), ``out_channels``.
    Shape: ``(B, 3, H, W) -> (B, num_classes)``.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, stem_stride: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        cin = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvBNAct(3, cin, 3, stem_stride)]
        for c, s in V1_BLOCKS:
            cout = make_divisible(c * width_mult)
            layers.append(DepthwiseSeparableConv(cin, cout, 3, s))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, num_classes))
        self.out_channels = cin
        self._init_weights()


class MobileNetV2(_Classifier):
    """MobileNet v2 (lecture 4): stem, 17 inverted residuals with linear bottlenecks, 1x1 conv to 1280.

    Mirrors ``torchvision.models.mobilenet_v2`` layer for layer (3,504,872 parameters at width 1.0, 1000
    classes; the state dicts line up in order), but names the parts of each block (``expand``,
    ``depthwise``, ``project``).

    Args:
        num_classes: classifier outputs.
        width_mult: alpha; the last layer keeps ``max(1280, 1280 * alpha)`` channels as in the paper.
        stem_stride: stride of the first convolution (2 for ImageNet, 1 for small images).
        dropout: dropout before the linear classifier (0.2).

    Attributes: ``features`` (stem, blocks, last 1x1 conv), ``classifier`` (Dropout, Linear), ``out_channels``.
    Shape: ``(B, 3, H, W) -> (B, num_classes)``.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, stem_stride: int = 2,
                 dropout: float = 0.2) -> None:
        super().__init__()
        cin = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNAct(3, cin, 3, stem_stride, activation=nn.ReLU6)]
        for t, c, n, s in V2_STAGES:
            cout = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(ConvBNAct(cin, last, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        self.out_channels = last
        self._init_weights()


class SeparableConv2d(nn.Sequential):
    """Xception's separable convolution: depthwise k x k then pointwise 1x1, *no* activation in between
    (the paper found an intermediate ReLU hurts), followed by BatchNorm (lecture 4).

    Submodules ``depthwise``, ``pointwise``, ``bn``. Shape: ``(B, Cin, H, W) -> (B, Cout, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.add_module("depthwise", nn.Conv2d(in_channels, in_channels, kernel_size, padding=kernel_size // 2,
                                               groups=in_channels, bias=False))
        self.add_module("pointwise", nn.Conv2d(in_channels, out_channels, 1, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_channels))


class XceptionBlock(nn.Module):
    """One Xception block (lecture 4): ``reps`` x (ReLU -> SeparableConv2d), optional 3x3 max-pool with
    stride 2, plus a residual connection (identity, or a strided 1x1 conv + BN when the shape changes).

    With ``reps=3``, ``stride=1`` and equal channels it is a block of the paper's middle flow; with
    ``reps=2``, ``stride=2`` one of the entry flow.

    Args:
        in_channels, out_channels: Cin, Cout (the first separable conv changes the width).
        reps: number of separable convolutions.
        stride: 1 or 2 (2 adds the max-pool).
        start_with_relu: the very first entry-flow block starts without ReLU.

    Shape: ``(B, Cin, H, W) -> (B, Cout, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, reps: int = 3, stride: int = 1,
                 start_with_relu: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(reps):
            if i > 0 or start_with_relu:
                layers.append(nn.ReLU(inplace=i > 0))
            layers.append(SeparableConv2d(in_channels if i == 0 else out_channels, out_channels))
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, padding=1))
        self.body = nn.Sequential(*layers)
        if stride != 1 or in_channels != out_channels:
            self.skip: nn.Module = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                                 nn.BatchNorm2d(out_channels))
        else:
            self.skip = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.skip(x)
