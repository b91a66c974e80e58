"""Models of the course, built from small named blocks (one module per lecture topic).

Each module's own docstring names the lecture it belongs to. Re-exports below are the public API.
"""
from cvcourse.models.segmentation import FCN, UNet  # noqa: E402,F401  (lecture 7)
from cvcourse.models.blocks import ConvBNAct, DepthwiseSeparableConv, FusedMBConv, MBConv, SqueezeExcite  # noqa: E402,F401  (lecture 4)
from cvcourse.models.efficientnet import EfficientNetLite, EfficientNetLite0Weights, efficientnet_lite0  # noqa: E402,F401  (lecture 4)
from cvcourse.models.mobilenet import MobileNetV1, MobileNetV2, XceptionBlock  # noqa: E402,F401  (lecture 4)
from cvcourse.models.vit import ViT, PatchEmbed, Attention, TransformerBlock  # noqa: E402,F401  (lecture 5)
from cvcourse.models.visual_transformer import VisualTransformer, VTResNet  # noqa: E402,F401  (lecture 5)
