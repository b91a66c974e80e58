"""Models of the course, built from small named blocks (one module per lecture topic).

Each module's own docstring names the lecture it belongs to. Re-exports below are the public API.
"""
from cvcourse.models.segmentation import FCN, UNet  # noqa: E402,F401  (lecture 7)
from cvcourse.models.blocks import ConvBNAct, DepthwiseSeparableConv, FusedMBConv, MBConv, SqueezeExcite  # noqa: E402,F401  (lecture 4)
from cvcourse.models.efficientnet import EfficientNetLite, EfficientNetLite0Weights, efficientnet_lite0  # noqa: E402,F401  (lecture 4)
from cvcourse.models.mobilenet import MobileNetV1, MobileNetV2, XceptionBlock  # noqa: E402,F401  (lecture 4)
from cvcourse.models.vit import ViT, PatchEmbed, Attention, TransformerBlock  # noqa: E402,F401  (lecture 5)
from cvcourse.models.visual_transformer import VisualTokenHead, VisualTransformer, VTResNet  # noqa: E402,F401  (lecture 5)
from cvcourse.models.classic import AlexNet, SmallAlexNet, VGG, alexnet, alexnet_2012, ten_crop, tta_predict, vgg16, vgg_small  # noqa: E402,F401  (lecture 2)
from cvcourse.models.inception import AuxClassifier, FactorisedInceptionBlock, GridReduction, InceptionBlock, MiniGoogLeNet, label_smoothing_cross_entropy  # noqa: E402,F401  (lecture 3)
from cvcourse.models.resnet import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ResNet, plain_net, preact_resnet_cifar, resnet18, resnet34, resnet50, resnet_cifar  # noqa: E402,F401  (lecture 3)
from cvcourse.models.cost import conv_macs, conv_params, count_macs, count_parameters  # noqa: E402,F401  (lecture 2)
