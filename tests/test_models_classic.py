"""Lecture 2 models (AlexNet, VGG), ten-crop test-time augmentation and receptive-field arithmetic."""

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import functional as TF

from cvcourse.models.classic import (
    SmallAlexNet,
    alexnet,
    alexnet_2012,
    make_vgg_features,
    random_crop_flip,
    ten_crop,
    tta_predict,
    vgg11,
    vgg16,
    vgg_small,
)
from cvcourse.models.cost import conv_macs, conv_params, count_macs, count_parameters
from cvcourse.models.receptive_field import (
    LayerSpec,
    empirical_receptive_field,
    layer_specs,
    receptive_field,
    receptive_field_mask,
    conv_stack,
    layer_output,
)


def _n(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- parameter counts

def test_alexnet_matches_torchvision_layout_and_count():
    ours, ref = alexnet(), torchvision.models.alexnet(weights=None)
    assert _n(ours) == _n(ref) == 61_100_840
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval(), ref.eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


def test_alexnet_2012_is_the_papers_60_million_and_227_input_gives_6x6():
    # 60,965,224: the usual count of the two-GPU (grouped) AlexNet, e.g. Caffe's bvlc_alexnet.
    assert count_parameters(alexnet_2012()) == 60_965_224
    ungrouped = alexnet_2012(grouped=False)
    assert count_parameters(ungrouped) == 62_378_344
    with torch.no_grad():
        f = ungrouped.features(torch.zeros(1, 3, 227, 227))
    assert f.shape == (1, 256, 6, 6)  # 227 -> 55 -> 27 -> 13 -> 6 without any adaptive pooling


@pytest.mark.parametrize("name,batch_norm", [("vgg16", False), ("vgg11", True)])
def test_vgg_matches_torchvision(name, batch_norm):
    ours = (vgg16 if name == "vgg16" else vgg11)(batch_norm=batch_norm)
    ref = getattr(torchvision.models, name + ("_bn" if batch_norm else ""))(weights=None)
    assert count_parameters(ours) == _n(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    if name == "vgg16":
        assert count_parameters(ours) == 138_357_544


def test_make_vgg_features_rejects_bad_config():
    with pytest.raises(ValueError, match="positive ints or 'M'"):
        make_vgg_features([64, "pool"])


def test_small_models_shapes_and_gradient_flow():
    torch.manual_seed(0)
    for model in (SmallAlexNet(num_classes=4), SmallAlexNet(num_classes=4, activation=nn.Tanh, dropout=0.0),
                  vgg_small(num_classes=4)):
        x = torch.rand(6, 3, 32, 32)
        y = torch.arange(6) % 4
        out = model(x)
        assert out.shape == (6, 4)
        nn.functional.cross_entropy(out, y).backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"
    assert SmallAlexNet(activation=nn.Tanh).features[1].__class__ is nn.Tanh
    assert SmallAlexNet(num_classes=4)(torch.rand(2, 3, 64, 64)).shape == (2, 4)


# ----------------------------------------------------------------------------- test-time augmentation

@pytest.mark.parametrize("hw,size", [((40, 40), 32), ((37, 45), (30, 33)), ((32, 32), 32)])
def test_ten_crop_matches_torchvision(hw, size, device):
    images = torch.rand(2, 3, *hw, device=device)
    ours = ten_crop(images, size)
    ref = torch.stack(TF.ten_crop(images, list(size) if isinstance(size, tuple) else [size, size]))
    torch.testing.assert_close(ours, ref)
    assert ours.shape[:3] == (10, 2, 3)


def test_ten_crop_errors():
    with pytest.raises(ValueError, match="fit in the image size"):
        ten_crop(torch.rand(1, 3, 20, 20), 24)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        ten_crop(torch.rand(3, 20, 20), 16)
    with pytest.raises(TypeError, match="torch.Tensor"):
        ten_crop([[0.0]], 1)


def test_random_crop_flip_returns_a_crop_or_its_mirror(device):
    images = torch.rand(16, 3, 11, 13, device=device)
    out = random_crop_flip(images, 8, generator=torch.Generator().manual_seed(0))
    assert out.shape == (16, 3, 8, 8)
    flipped = 0
    for img, crop in zip(images, out):
        windows = img.unfold(1, 8, 1).unfold(2, 8, 1)  # (C, 4, 6, 8, 8): every 8x8 window
        plain = (windows == crop[:, None, None]).flatten(3).all(-1).all(0)
        mirror = (windows == crop.flip(-1)[:, None, None]).flatten(3).all(-1).all(0)
        assert plain.any() or mirror.any()
        flipped += int(mirror.any() and not plain.any())
    assert 0 < flipped < 16  # both outcomes occur (fixed seed)
    with pytest.raises(ValueError, match="fit in the image size"):
        random_crop_flip(images, 12)
    unflipped = random_crop_flip(images, 8, generator=torch.Generator().manual_seed(0), flip=False)
    for img, crop in zip(images, unflipped):
        windows = img.unfold(1, 8, 1).unfold(2, 8, 1)
        assert (windows == crop[:, None, None]).flatten(3).all(-1).all(0).any()


def test_tta_predict_is_the_mean_of_per_view_softmax():
    torch.manual_seed(0)
    model = SmallAlexNet(num_classes=5).eval()
    images = torch.rand(3, 3, 40, 40)
    probs = tta_predict(model, images, 32)
    views = ten_crop(images, 32)
    with torch.no_grad():
        expected = torch.stack([model(v).softmax(-1) for v in views]).mean(0)
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3))
    with torch.no_grad():
        five = torch.stack([model(v).softmax(-1) for v in views[:5]]).mean(0)
    torch.testing.assert_close(tta_predict(model, images, 32, flip=False), five)


# ----------------------------------------------------------------------------- receptive field

def test_two_3x3_see_what_one_5x5_sees_with_fewer_weights():
    assert receptive_field([(3, 1, 1)] * 2).size == receptive_field([(5, 1, 1)]).size == 5
    assert receptive_field([(3, 1, 1)] * 3).size == 7
    C = 64
    assert 2 * conv_params(C, C, 3, bias=False) == 18 * C * C < conv_params(C, C, 5, bias=False) == 25 * C * C


def test_known_receptive_fields_of_imagenet_nets():
    # Published values: AlexNet pool5 sees 195 pixels, VGG-16 pool5 sees 212 pixels; both jump 32.
    assert receptive_field(layer_specs(alexnet().features)) == (195, 32)
    assert receptive_field(layer_specs(vgg16().features)) == (212, 32)


stack = st.lists(st.tuples(st.integers(1, 5), st.integers(1, 2), st.integers(1, 2)), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None)
@given(stack)
def test_formula_matches_brute_force_gradient(layers):
    modules: list[nn.Module] = []
    for i, (k, s, d) in enumerate(layers):
        if i % 2 and d == 1:
            modules += [nn.MaxPool2d(k, s), nn.ReLU()]  # max-pool and ReLU are linearised by the brute force
        else:
            modules.append(nn.Conv2d(2, 2, k, stride=s, dilation=d))
    net = nn.Sequential(*modules)
    rf = receptive_field(layer_specs(net))
    size = 2 * rf.size + 4 * rf.jump + 8
    assert empirical_receptive_field(net, 2, size) == rf.size


def test_receptive_field_mask_of_dilated_conv_has_gaps():
    mask = receptive_field_mask(nn.Conv2d(1, 1, 3, dilation=2), 1, 9)
    assert mask.sum() == 9 and empirical_receptive_field(nn.Conv2d(1, 1, 3, dilation=2), 1, 9) == 5
    assert mask[2:7, 2:7][::2, ::2].all()


def test_receptive_field_errors():
    with pytest.raises(ValueError, match="positive integers"):
        receptive_field([(3, 0, 1)])
    with pytest.raises(ValueError, match="feature map"):
        receptive_field_mask(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Flatten()), 1, 9)
    assert receptive_field([]) == (1, 1)
    assert LayerSpec(3) == (3, 1, 1)


# ----------------------------------------------------------------------------- cost counting

@pytest.mark.parametrize("cin,cout,k,groups,bias", [(3, 8, 3, 1, True), (16, 32, (3, 1), 1, False), (8, 8, 3, 8, False)])
def test_conv_params_and_macs_match_torch(cin, cout, k, groups, bias):
    conv = nn.Conv2d(cin, cout, k, groups=groups, bias=bias)
    assert conv_params(cin, cout, k, bias=bias, groups=groups) == _n(conv)
    out = conv(torch.zeros(1, cin, 12, 12))
    assert conv_macs(cin, cout, k, tuple(out.shape[-2:]), groups=groups) == count_macs(conv, (cin, 12, 12))
    assert count_macs(conv, (cin, 12, 12)) == conv.weight.numel() * out.shape[-2] * out.shape[-1]


def test_count_macs_of_alexnet_and_errors():
    # torchvision documents AlexNet at 0.71 GFLOPS (multiply-adds of convs and linear layers).
    assert round(count_macs(alexnet(), (3, 224, 224)) / 1e9, 2) == 0.71
    with pytest.raises(ValueError, match="must be positive"):
        receptive_field([(0, 1, 1)])
    with pytest.raises(ValueError, match="divisible by groups"):
        conv_params(3, 8, 3, groups=2)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        count_macs(alexnet(), (224, 224))


@pytest.mark.parametrize("n,k,s,d", [(1, 3, 1, 1), (3, 3, 2, 1), (2, 5, 1, 3), (4, 2, 2, 1)])
def test_conv_stack_field_matches_formula_and_brute_force(n, k, s, d):
    net = conv_stack(n, k, s, d)
    rf = receptive_field([(k, s, d)] * n)
    assert receptive_field(layer_specs(net)) == rf
    assert empirical_receptive_field(net, 1, rf.size + 2 * rf.jump * 3 + 4) == rf.size
    with pytest.raises(ValueError, match="at least 1"):
        conv_stack(0, 3)


def test_layer_output_captures_the_named_layer():
    torch.manual_seed(0)
    model = SmallAlexNet(num_classes=3).train()
    x = torch.rand(2, 3, 32, 32)
    out = layer_output(model, x, "features.0")
    torch.testing.assert_close(out, model.features[0](x))
    assert model.training  # mode restored
    with pytest.raises(ValueError, match="no submodule 'nope'"):
        layer_output(model, x, "nope")


def test_receptive_field_widget_plot_reports_formula_and_brute_force():
    import matplotlib

    matplotlib.use("Agg")
    from cvcourse.widgets.receptive_field import plot_receptive_field

    fig = plot_receptive_field(num_layers=3, kernel_size=3, stride=2, dilation=2)
    rf = receptive_field([(3, 2, 2)] * 3).size
    assert f"formula: {rf} px, back-prop: {rf} px" in fig.axes[0].get_title()


def test_vgg_small_starts_learning_at_once():
    """A narrow VGG with VGG's N(0, 0.01) classifier weights barely moves for its first steps (the signal shrinks
    about tenfold per fully connected layer); vgg_small's He-normal classifier must memorise a small batch quickly."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    model = vgg_small(num_classes=10, widths=(8, 16, 32), hidden=64, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc >= 0.9, f"vgg_small fitted only {acc:.0%} of 32 examples in 40 steps"


# ----------------------------------------------------------------------------- local response normalisation

@pytest.mark.parametrize("size", [1, 2, 5, 6])
def test_local_response_norm_matches_torch(size):
    from cvcourse.models.classic import LocalResponseNorm, local_response_norm

    x = torch.randn(2, 9, 5, 4, dtype=torch.float64).relu() * 3
    ref = F.local_response_norm(x, size, alpha=5e-4, beta=0.75, k=2.0)
    torch.testing.assert_close(local_response_norm(x, size, alpha=5e-4, beta=0.75, k=2.0), ref)
    torch.testing.assert_close(LocalResponseNorm(size)(x), nn.LocalResponseNorm(size)(x))


def test_local_response_norm_inhibits_neighbours_and_errors():
    from cvcourse.models.classic import local_response_norm

    x = torch.zeros(1, 5, 1, 1)
    x[0, 2] = 10.0
    alone = local_response_norm(x, 5, alpha=1.0, k=1.0)[0, 2]
    x[0, 1] = x[0, 3] = 10.0
    crowded = local_response_norm(x, 5, alpha=1.0, k=1.0)[0, 2]
    assert crowded < alone
    with pytest.raises(ValueError, match="size"):
        local_response_norm(x, 0)
    with pytest.raises(ValueError, match="at least 3"):
        local_response_norm(torch.zeros(3, 4), 5)


def test_alexnet_2012_has_lrn_after_conv1_and_conv2():
    from cvcourse.models.classic import LocalResponseNorm

    kinds = [type(m).__name__ for m in alexnet_2012().features]
    assert kinds[:8] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d", "Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert not any(isinstance(m, LocalResponseNorm) for m in alexnet().modules())


def test_alexnet_init_follows_the_paper():
    from cvcourse.models.classic import SmallAlexNet, alexnet_init_

    torch.manual_seed(0)
    net = alexnet_init_(SmallAlexNet(10, widths=(32, 64, 128), hidden=256))
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    w = torch.cat([m.weight.flatten() for m in layers])
    assert abs(w.std().item() - 0.01) < 5e-4 and abs(w.mean().item()) < 5e-4
    assert [float(m.bias.detach().unique()) for m in layers] == [0.0, 1.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="no Conv2d"):
        alexnet_init_(nn.ReLU())
