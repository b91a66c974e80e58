"""Lecture 4 blocks and efficient CNNs, checked against torchvision's implementations of the same layers."""

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models._utils import _make_divisible
from torchvision.models.efficientnet import FusedMBConvConfig, MBConvConfig
from torchvision.models.efficientnet import FusedMBConv as TVFusedMBConv
from torchvision.models.efficientnet import MBConv as TVMBConv
from torchvision.ops import SqueezeExcitation

from cvcourse.models.blocks import (Conv2dSame, ConvBNAct, DepthwiseSeparableConv, FusedMBConv, MBConv,
                                    SqueezeExcite, drop_path, make_divisible)
from cvcourse.models.efficientnet import EfficientNetLite
from cvcourse.models.cost import count_parameters
from cvcourse.models.mobilenet import MobileNetV1, MobileNetV2, XceptionBlock


def _copy_by_order(dst: nn.Module, src: nn.Module) -> None:
    """Load ``src``'s state dict into ``dst`` by position, checking every shape lines up."""
    d, s = dst.state_dict(), src.state_dict()
    assert len(d) == len(s)
    for (kd, vd), (ks, vs) in zip(d.items(), s.items()):
        assert vd.shape == vs.shape, (kd, ks)
    dst.load_state_dict(dict(zip(d.keys(), s.values())))


def _randomise_bn(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


@pytest.mark.parametrize("v", [3, 8, 11.2, 16 * 0.35, 32 * 0.75, 96, 100, 1280 * 1.4])
def test_make_divisible_matches_torchvision(v):
    assert make_divisible(v) == _make_divisible(v, 8)


@pytest.mark.parametrize("size", [7, 8, 15, 16, 33])
@pytest.mark.parametrize("k, s", [(3, 1), (3, 2), (5, 2), (1, 1)])
def test_conv2d_same_is_tensorflow_same(size, k, s):
    torch.manual_seed(0)
    conv = Conv2dSame(2, 3, k, s)
    x = torch.randn(1, 2, size, size + 1)
    y = conv(x)
    assert y.shape[-2:] == (math.ceil(size / s), math.ceil((size + 1) / s))
    # TensorFlow: total padding (out - 1) * s + k - in, the odd pixel on the bottom/right
    pads = []
    for n in (size + 1, size):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    torch.testing.assert_close(y, F.conv2d(F.pad(x, pads), conv.weight, stride=s))


def test_conv2d_same_differs_from_symmetric_for_stride_2():
    torch.manual_seed(0)
    same = ConvBNAct(3, 4, 3, 2, padding="same").eval()
    sym = ConvBNAct(3, 4, 3, 2, padding="symmetric").eval()
    sym.load_state_dict(same.state_dict())
    x = torch.randn(1, 3, 16, 16)
    assert same(x).shape == sym(x).shape
    assert not torch.allclose(same(x), sym(x))


def test_conv_bn_act_rejects_unknown_padding():
    with pytest.raises(ValueError, match="padding must be 'symmetric' or 'same'"):
        ConvBNAct(3, 4, padding="valid")


def test_conv_bn_act_linear_has_no_activation():
    assert [n for n, _ in ConvBNAct(3, 4, activation=None).named_children()] == ["conv", "bn"]
    assert isinstance(ConvBNAct(3, 4, activation=nn.ReLU6).act, nn.ReLU6)


@pytest.mark.parametrize("cin, cout, k", [(32, 64, 3), (64, 128, 3), (16, 256, 5)])
def test_depthwise_separable_cost(cin, cout, k):
    block = DepthwiseSeparableConv(cin, cout, k)
    conv_params = sum(p.numel() for n, p in block.named_parameters() if "conv" in n)
    assert conv_params == k * k * cin + cin * cout
    x = torch.randn(1, cin, 14, 14)
    with FlopCounterMode(display=False) as fc:
        block(x)
    sep = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)(x)
    full = fc.get_total_flops()
    assert full / sep == pytest.approx(1 / (1 / cout + 1 / k ** 2))


def test_squeeze_excite_matches_torchvision():
    torch.manual_seed(0)
    tv = SqueezeExcitation(24, 6, activation=nn.SiLU)
    ours = SqueezeExcite(24, 6)
    _copy_by_order(ours, tv)
    x = torch.randn(2, 24, 5, 7)
    torch.testing.assert_close(ours(x), tv(x))


@pytest.mark.parametrize("expand, k, s, cin, cout", [(1, 3, 1, 32, 16), (6, 5, 2, 24, 40), (6, 3, 1, 80, 80)])
def test_mbconv_matches_torchvision(expand, k, s, cin, cout):
    torch.manual_seed(0)
    tv = TVMBConv(MBConvConfig(expand, k, s, cin, cout, 1), 0.0, nn.BatchNorm2d).eval()
    ours = MBConv(cin, cout, k, s, expand, se_ratio=0.25).eval()
    _randomise_bn(tv)
    _copy_by_order(ours, tv)
    x = torch.randn(2, cin, 16, 16)
    torch.testing.assert_close(ours(x), tv(x))
    assert ours.use_residual == (s == 1 and cin == cout)


@pytest.mark.parametrize("expand, s, cin, cout", [(1, 1, 24, 24), (4, 2, 24, 48), (4, 1, 48, 48)])
def test_fused_mbconv_matches_torchvision(expand, s, cin, cout):
    torch.manual_seed(0)
    tv = TVFusedMBConv(FusedMBConvConfig(expand, 3, s, cin, cout, 1), 0.0, nn.BatchNorm2d).eval()
    ours = FusedMBConv(cin, cout, 3, s, expand).eval()
    _randomise_bn(tv)
    _copy_by_order(ours, tv)
    x = torch.randn(2, cin, 12, 12)
    torch.testing.assert_close(ours(x), tv(x))


def test_block_errors():
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        MBConv(8, 8, stride=3)
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        FusedMBConv(8, 8, stride=3)


def test_drop_path():
    x = torch.randn(1000, 3)
    assert drop_path(x, 0.3, training=False) is x
    torch.manual_seed(0)
    y = drop_path(x, 0.3, training=True)
    kept = (y != 0).all(dim=1)
    torch.testing.assert_close(y[kept], x[kept] / 0.7)
    assert (y[~kept] == 0).all()
    assert 0.6 < kept.float().mean() < 0.8


def test_mobilenet_v2_is_torchvision_mobilenet_v2():
    torch.manual_seed(0)
    tv = torchvision.models.mobilenet_v2().eval()
    ours = MobileNetV2().eval()
    assert count_parameters(ours) == count_parameters(tv) == 3_504_872
    _randomise_bn(tv)
    _copy_by_order(ours, tv)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x))


def test_mobilenet_v1_param_count():
    # Howard et al. (2017), Table 4: 1.0 MobileNet-224 has 4.2 million parameters
    n = count_parameters(MobileNetV1())
    assert round(n / 1e6, 1) == 4.2
    # every weight layer accounted for: stem, 13 x (depthwise + pointwise), BN scales/shifts, classifier
    from cvcourse.models.mobilenet import V1_BLOCKS
    cin, expect = 32, 3 * 9 * 32 + 2 * 32
    for c, _ in V1_BLOCKS:
        expect += 9 * cin + 2 * cin + cin * c + 2 * c
        cin = c
    assert n == expect + 1024 * 1000 + 1000


@pytest.mark.parametrize("model, size, out", [
    (MobileNetV1(num_classes=10, width_mult=0.25, stem_stride=1), 32, 10),
    (MobileNetV2(num_classes=4, width_mult=0.35, stem_stride=1), 32, 4),
    (EfficientNetLite(num_classes=5), 64, 5),
])
def test_small_models_shapes_and_gradient_flow(model, size, out):
    x = torch.randn(2, 3, size, size)
    y = model(x)
    assert y.shape == (2, out)
    y.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad.abs().sum() > 0


def test_model_input_errors():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        MobileNetV2()(torch.randn(3, 32, 32))


@pytest.mark.parametrize("cin, cout, reps, stride, hw_out", [(728, 728, 3, 1, 9), (64, 128, 2, 2, 5)])
def test_xception_block(cin, cout, reps, stride, hw_out):
    block = XceptionBlock(cin, cout, reps, stride)
    y = block(torch.randn(1, cin, 9, 9))
    assert y.shape == (1, cout, hw_out, hw_out)
    sep = sum(9 * (cin if i == 0 else cout) + (cin if i == 0 else cout) * cout + 2 * cout for i in range(reps))
    skip = 0 if (stride == 1 and cin == cout) else cin * cout + 2 * cout
    assert count_parameters(block) == sep + skip


def test_xception_middle_block_is_identity_plus_residual():
    block = XceptionBlock(16, 16, 3, 1).eval()
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.zeros_(m.weight)
    x = torch.randn(1, 16, 6, 6)
    torch.testing.assert_close(block(x), x)
