"""cvcourse.models.resnest: r-softmax, the split-attention convolution, bottleneck variants and their sizes."""

import pytest
import torch
from torch import nn
from torchvision.models.resnet import Bottleneck as TVBottleneck

from cvcourse.models.blocks import SqueezeExcite
from cvcourse.models.cost import count_macs, count_parameters
from cvcourse.models.resnest import ResNeStBottleneck, SplitAttention, TinySplitNet, rsoftmax


def test_rsoftmax_orders_groups_then_radix_and_sums_to_one():
    # K = 2 groups, R = 2 splits, W = 2 channels (one per group): logits come as (k0 r0, k0 r1, k1 r0, k1 r1)
    logits = torch.tensor([[0.0, 1.0, 2.0, 2.0]])
    a = rsoftmax(logits, radix=2, cardinality=2)
    e = torch.tensor(1.0).exp()
    expected = torch.tensor([[[1 / (1 + e), 0.5], [e / (1 + e), 0.5]]])  # (B, R, W)
    torch.testing.assert_close(a, expected)
    b = rsoftmax(torch.randn(5, 3 * 2 * 4), radix=3, cardinality=2)
    assert b.shape == (5, 3, 8)
    torch.testing.assert_close(b.sum(1), torch.ones(5, 8))
    g = torch.randn(4, 6)
    torch.testing.assert_close(rsoftmax(g, radix=1, cardinality=2), torch.sigmoid(g)[:, None])


def test_shapes_and_attention_weights():
    torch.manual_seed(0)
    sa = SplitAttention(16, 16, stride=2, cardinality=2, radix=4, min_inner=8)
    x = torch.randn(3, 16, 9, 9)
    assert sa(x).shape == (3, 16, 5, 5)
    torch.testing.assert_close(sa.last_attention.sum(1), torch.ones(3, 16))
    block = ResNeStBottleneck(16, 8, stride=2, cardinality=2, radix=2, min_inner=8)
    assert block(x).shape == (3, 32, 5, 5)
    net = TinySplitNet(7, planes=(4, 8), radix=2, min_inner=4)
    assert net(torch.rand(2, 3, 12, 12)).shape == (2, 7)


def test_radix_1_cardinality_1_is_a_squeeze_excitation_gate():
    torch.manual_seed(0)
    sa = SplitAttention(8, 8, radix=1, cardinality=1, reduction=4, min_inner=4).eval()
    with torch.no_grad():  # make the BN between the two FC layers the identity, SE has none
        sa.bn1.running_var.fill_(1.0 - sa.bn1.eps)
        sa.bn1.running_mean.zero_()
        sa.bn0.running_mean.normal_(); sa.bn0.weight.uniform_(0.5, 1.5)
    se = SqueezeExcite(8, 4, activation=nn.ReLU)
    se.reduce, se.expand = sa.fc1, sa.fc2
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        u = torch.relu(sa.bn0(sa.conv(x)))
        torch.testing.assert_close(sa(x), se(u))


def _bn(c):
    return 2 * c


def test_parameter_counts_match_hand_formulas_and_torchvision():
    cin, planes, K, R = 256, 64, 1, 2
    W, out = planes, 4 * planes
    inner = max(W * R // 4, 32)  # 32
    split = 9 * (W // (K * R)) * (W * R) + _bn(W * R) + (W // K) * inner + inner + _bn(inner) \
        + (inner // K) * (R * W) + R * W
    hand = cin * W + _bn(W) + split + W * out + _bn(out)  # no projection: 256 in, 256 out, stride 1
    assert count_parameters(ResNeStBottleneck(cin, planes, radix=R)) == hand
    assert count_parameters(ResNeStBottleneck(cin, planes, radix=R).conv2) == split
    # radix 0: ResNet's and ResNeXt's bottlenecks, exactly torchvision's (stride 1, no projection)
    assert count_parameters(ResNeStBottleneck(cin, planes, radix=0)) == count_parameters(TVBottleneck(cin, planes))
    rx = ResNeStBottleneck(cin, 64, radix=0, cardinality=32, bottleneck_width=4)
    assert rx.width == 128
    assert count_parameters(rx) == count_parameters(TVBottleneck(cin, 64, groups=32, base_width=4))


def test_macs_of_the_split_attention_stage_by_hand():
    W, R, K, H = 16, 2, 2, 8
    sa = SplitAttention(W, W, cardinality=K, radix=R, min_inner=8)
    inner = 8
    conv = 9 * (W // (K * R)) * (W * R) * H * H
    fcs = (W // K) * inner + (inner // K) * (R * W)  # on a 1x1 map
    assert count_macs(sa, (W, H, H)) == conv + fcs


def test_errors():
    with pytest.raises(ValueError, match="radix must be >= 1"):
        SplitAttention(8, 8, radix=0)
    with pytest.raises(ValueError, match="cardinality 3 must divide"):
        SplitAttention(8, 8, cardinality=3)
    with pytest.raises(ValueError, match="R \\* K"):
        rsoftmax(torch.randn(2, 6), radix=4, cardinality=1)
    with pytest.raises(ValueError, match="radix must be >= 0"):
        ResNeStBottleneck(8, 4, radix=-1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        rsoftmax([[1.0, 2.0]], radix=2, cardinality=1)
