"""Lecture 3 models: Inception blocks, auxiliary classifier, label smoothing, ResNets."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cvcourse.models.inception import (
    AsymmetricConv,
    AuxClassifier,
    FactorisedInceptionBlock,
    InceptionBlock,
    MiniGoogLeNet,
    NaiveInceptionBlock,
    label_smoothing_cross_entropy,
)
from cvcourse.models.cost import conv_params, count_parameters
from cvcourse.models.resnet import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    ShortcutA,
    conv_grad_norms,
    plain_net,
    preact_resnet_cifar,
    resnet18,
    resnet34,
    resnet50,
    resnet_cifar,
)


def _assert_every_param_gets_gradient(model: nn.Module, loss: torch.Tensor) -> None:
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"


# ----------------------------------------------------------------------------- Inception

def test_inception_3a_shape_and_difference_to_torchvision():
    block = InceptionBlock(192, 64, 96, 128, 16, 32, 32)
    assert block(torch.rand(2, 192, 28, 28)).shape == (2, 256, 28, 28) and block.out_channels == 256
    # torchvision's googlenet has a 3x3 where the paper's 5x5 branch is; everything else is identical.
    ref = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).inception3a
    assert count_parameters(block) - count_parameters(ref) == (25 - 9) * 16 * 32


def test_reductions_cut_parameters_of_inception_3a():
    naive = NaiveInceptionBlock(192, 64, 128, 32)
    reduced = InceptionBlock(192, 64, 96, 128, 16, 32, 32)
    bn = 2 * (64 + 128 + 32)  # BatchNorm weight and bias per output channel
    assert count_parameters(naive) == conv_params(192, 64, 1, False) + conv_params(192, 128, 3, False) + \
        conv_params(192, 32, 5, False) + bn
    assert naive(torch.rand(1, 192, 8, 8)).shape == (1, 64 + 128 + 32 + 192, 8, 8)
    assert count_parameters(reduced) < count_parameters(naive)


def test_asymmetric_conv_equals_a_rank_one_kxk_conv():
    torch.manual_seed(0)
    k = 5
    layer = AsymmetricConv(3, 4, k, mid_channels=2, activation=False).double()
    x = torch.randn(2, 3, 11, 9, dtype=torch.float64)
    w1, w2 = layer[0].weight, layer[1].weight  # (M, C_in, k, 1), (C_out, M, 1, k)
    full = torch.einsum("omb,mia->oiab", w2[:, :, 0, :], w1[:, :, :, 0])  # -> (C_out, C_in, k, k)
    torch.testing.assert_close(layer(x), F.conv2d(x, full, padding=k // 2))
    assert count_parameters(layer) == (3 * 2 + 2 * 4) * k


def test_factorised_block_shapes_and_savings():
    x = torch.rand(2, 32, 9, 9)
    for asym in (False, True):
        block = FactorisedInceptionBlock(32, 8, 8, 16, 8, 16, 8, asymmetric=asym)
        assert block(x).shape == (2, 48, 9, 9)
    two3 = FactorisedInceptionBlock(32, 8, 8, 16, 16, 16, 8).branch3
    one5 = InceptionBlock(32, 8, 8, 16, 16, 16, 8).branch3
    conv_weights = lambda m: sum(c.weight.numel() for c in m.modules() if isinstance(c, nn.Conv2d))  # noqa: E731
    assert conv_weights(two3) - 32 * 16 == 18 * 16 * 16 and conv_weights(one5) - 32 * 16 == 25 * 16 * 16


def test_aux_classifier_and_mini_googlenet():
    torch.manual_seed(0)
    assert AuxClassifier(64, 7)(torch.rand(3, 64, 10, 10)).shape == (3, 7)
    net = MiniGoogLeNet(num_classes=4, shrink=8)
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    logits, aux = net(x)
    assert logits.shape == aux.shape == (4, 4)
    _assert_every_param_gets_gradient(net, F.cross_entropy(logits, y) + 0.3 * F.cross_entropy(aux, y))
    net.eval()
    assert net(x).shape == (4, 4)
    assert MiniGoogLeNet(aux_logits=False).train()(x).shape == (4, 10)
    # The auxiliary loss alone reaches the stem (that is its purpose) but not the last block.
    net.train().zero_grad()
    F.cross_entropy(net(x)[1], y).backward()
    assert net.stem[0].weight.grad.abs().sum() > 0
    assert net.inception_d.branch1[0].weight.grad is None


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(2, 9), st.integers(1, 6), st.integers(0, 2**16))
def test_label_smoothing_matches_torch(eps, K, B, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, K, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, K, (B,), generator=g)
    torch.testing.assert_close(label_smoothing_cross_entropy(logits, target, eps),
                               F.cross_entropy(logits, target, label_smoothing=eps))


def test_label_smoothing_errors_and_extremes():
    logits, target = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    torch.testing.assert_close(label_smoothing_cross_entropy(logits, target, 0.0), F.cross_entropy(logits, target))
    # eps = 1: the target is uniform, the loss is the mean negative log-probability.
    torch.testing.assert_close(label_smoothing_cross_entropy(logits, target, 1.0), -logits.log_softmax(-1).mean())
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        label_smoothing_cross_entropy(logits, target, 1.5)
    with pytest.raises(ValueError, match=r"shape \(B, K\)"):
        label_smoothing_cross_entropy(logits[0], target)
    with pytest.raises(ValueError, match="target must have shape"):
        label_smoothing_cross_entropy(logits, torch.tensor([0, 1]))


# ----------------------------------------------------------------------------- ImageNet ResNets

@pytest.mark.parametrize("ours,ref,count", [(resnet18, torchvision.models.resnet18, 11_689_512),
                                            (resnet34, torchvision.models.resnet34, 21_797_672),
                                            (resnet50, torchvision.models.resnet50, 25_557_032)])
def test_resnets_match_torchvision(ours, ref, count):
    torch.manual_seed(0)
    a, b = ours(), ref(weights=None)
    assert count_parameters(a) == count_parameters(b) == count
    a.load_state_dict(b.state_dict(), strict=True)
    if ours is not resnet34:
        a.eval(), b.eval()
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(a(x), b(x))


def test_resnet_stage_shapes(device):
    net = resnet18(num_classes=3).to(device).eval()
    x = torch.rand(1, 3, 64, 64, device=device)
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    for i, (layer, c) in enumerate(zip([net.layer1, net.layer2, net.layer3, net.layer4], [64, 128, 256, 512])):
        x = layer(x)
        assert x.shape == (1, c, 16 >> i, 16 >> i)
    assert net.num_features == 512 and resnet50().num_features == 2048


# ----------------------------------------------------------------------------- blocks

def test_residual_blocks_reduce_to_identity_when_the_residual_branch_is_zero():
    x = torch.randn(2, 8, 6, 6)
    basic = BasicBlock(8, 8).eval()
    nn.init.zeros_(basic.bn2.weight)
    torch.testing.assert_close(basic(x), F.relu(x))
    for block in (PreActBasicBlock(8, 8), PreActBottleneck(8, 2)):
        last = block.conv2 if isinstance(block, PreActBasicBlock) else block.conv3
        nn.init.zeros_(last.weight)
        torch.testing.assert_close(block.eval()(x), x)  # the pre-activation identity path is untouched
    bott = Bottleneck(8, 2).eval()
    nn.init.zeros_(bott.bn3.weight)
    torch.testing.assert_close(bott(x), F.relu(x))


def test_shortcut_a_subsamples_and_pads_with_zeros():
    x = torch.randn(2, 3, 7, 7)
    y = ShortcutA(3, 5, 2)(x)
    assert y.shape == (2, 5, 4, 4)
    torch.testing.assert_close(y[:, :3], x[:, :, ::2, ::2])
    assert (y[:, 3:] == 0).all()
    with pytest.raises(ValueError, match="only add channels"):
        ShortcutA(4, 2, 1)


# ----------------------------------------------------------------------------- CIFAR ResNets

@pytest.mark.parametrize("depth,millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85)])
def test_cifar_resnet_sizes_match_the_paper(depth, millions):
    # He et al. 2015, Table 6: ResNet-20/32/44/56 have 0.27M/0.46M/0.66M/0.85M parameters.
    n = count_parameters(resnet_cifar(depth))
    assert round(n / 1e6, 2) == millions
    assert count_parameters(plain_net(depth)) == n  # option-A shortcuts add no weights
    assert sum(isinstance(m, nn.Conv2d) for m in resnet_cifar(depth).modules()) == depth - 1  # + the fc layer


@pytest.mark.parametrize("builder", [plain_net, resnet_cifar, preact_resnet_cifar])
def test_cifar_nets_shapes_and_gradient_flow(builder, device):
    torch.manual_seed(0)
    net = builder(14, num_classes=4, width=8).to(device)
    x, y = torch.rand(4, 3, 32, 32, device=device), torch.tensor([0, 1, 2, 3], device=device)
    assert net.forward_features(x).shape == (4, 32, 8, 8)
    _assert_every_param_gets_gradient(net, F.cross_entropy(net(x), y))


def test_cifar_depth_must_be_6n_plus_2():
    with pytest.raises(ValueError, match="6n \\+ 2"):
        resnet_cifar(21)


def test_conv_grad_norms_match_manual_backward():
    torch.manual_seed(0)
    net = resnet_cifar(8, num_classes=3, width=4)
    x, y = torch.rand(5, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1])
    norms = conv_grad_norms(net, x, y)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(norms) == len(convs) == 7
    F.cross_entropy(net(x), y).backward()
    assert norms == pytest.approx([float(c.weight.grad.norm()) for c in convs], rel=1e-5)


def test_grid_reduction_matches_torchvision_inception_b():
    from torchvision.models.inception import InceptionB

    from cvcourse.models.inception import GridReduction

    ours, ref = GridReduction(288), InceptionB(288)
    assert count_parameters(ours) == count_parameters(ref)
    x = torch.randn(1, 288, 35, 35)
    assert ours(x).shape == ref(x).shape == (1, 768, 17, 17)
    # the pool branch passes the input through: its channels are the input's max-pool
    torch.testing.assert_close(ours(x)[:, 384 + 96:], F.max_pool2d(x, 3, 2))
