"""Grad-CAM, guided backpropagation and guided Grad-CAM (cvcourse.explain) against known answers."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cvcourse.explain import grad_cam, guided_backprop, guided_grad_cam, normalize_map


class CamNet(nn.Module):
    """features -> global average pool -> linear: Grad-CAM must equal CAM, ReLU(sum_k w_ck A_k) / (h w)."""

    def __init__(self, in_channels=3, k=5, classes=4):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, k, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(k, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_grad_cam_equals_cam_on_a_gap_linear_network(sign):
    torch.manual_seed(0)
    net = CamNet().double()
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    target = torch.tensor([1, 3])
    cam = grad_cam(net, net.features, x, target, sign=sign, upsample=False)
    a = net.features(x)  # (B, K, h, w)
    w = net.fc.weight[target]  # (B, K)
    expected = F.relu(sign * torch.einsum("bk,bkhw->bhw", w, a)) / (7 * 9)
    torch.testing.assert_close(cam, expected.detach())
    assert cam.shape == (2, 7, 9)


def test_grad_cam_finds_an_object_pasted_at_a_known_place():
    # A bright 6x6 square on a plain background; the one feature is a local mean of brightness, the score
    # of class 1 is its average: evidence lies exactly where the square is.
    net = CamNet(in_channels=1, k=1, classes=2)
    with torch.no_grad():
        net.features[0].weight.fill_(1 / 9)
        net.features[0].bias.zero_()
        net.fc.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        net.fc.bias.zero_()
    x = torch.zeros(1, 1, 32, 32)
    x[:, :, 10:16, 20:26] = 1.0
    cam = grad_cam(net, net.features, x, 1)[0]
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[9:17, 19:27] = True  # the square grown by the 3x3 kernel's reach
    assert cam[~inside].max() == 0
    assert cam[10:16, 20:26].min() > 0
    # class 0 says "not bright": its map is empty, and its counterfactual map is the square again
    assert grad_cam(net, net.features, x, 0).max() == 0
    torch.testing.assert_close(grad_cam(net, net.features, x, 0, sign=-1), cam[None])


def test_grad_cam_upsampling_is_bilinear_of_the_small_map():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(1, 3, 33, 33)
    small = grad_cam(net, net[1], x, 2, upsample=False)
    big = grad_cam(net, net[1], x, 2)
    assert big.shape == (1, 33, 33)
    torch.testing.assert_close(big, F.interpolate(small[:, None], size=(33, 33), mode="bilinear")[:, 0])


def test_guided_backprop_matches_the_formula_for_one_relu_layer():
    torch.manual_seed(2)
    lin1, lin2 = nn.Linear(6, 5).double(), nn.Linear(5, 3).double()
    with torch.no_grad():
        lin2.weight[2] = torch.tensor([0.5, -0.4, 0.3, -0.2, 0.1])  # mixed signs: the guide matters
    net = nn.Sequential(nn.Flatten(), lin1, nn.ReLU(), lin2)
    x = torch.randn(4, 1, 2, 3, dtype=torch.float64)
    got = guided_backprop(net, x, 2)
    pre = lin1(x.flatten(1))  # (B, 5)
    upstream = lin2.weight[2].expand_as(pre)  # d y_2 / d relu-output
    expected = ((pre > 0) * upstream.clamp(min=0)) @ lin1.weight
    torch.testing.assert_close(got, expected.reshape(x.shape).detach())
    # without the guide it is the plain gradient, which differs here (some upstream weights are negative)
    assert bool((lin2.weight[2] < 0).any())
    x_req = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(net(x_req)[:, 2].sum(), x_req)
    assert not torch.allclose(plain, got)
    # and the hooks are gone afterwards: the model back-propagates normally again
    x_req = x.clone().requires_grad_(True)
    (again,) = torch.autograd.grad(net(x_req)[:, 2].sum(), x_req)
    torch.testing.assert_close(again, plain)


def test_guided_backprop_handles_inplace_relu6_as_relu6():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 3, bias=False), nn.ReLU6(inplace=True), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.eye(3))
        net[3].weight.copy_(torch.tensor([[1.0, 1.0, -1.0]]))
    x = torch.tensor([-1.0, 7.0, 2.0]).reshape(1, 1, 1, 3)  # below 0, above 6, inside with a negative gradient
    assert guided_backprop(net, x, 0).flatten().tolist() == [0.0, 0.0, 0.0]
    x = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    assert guided_backprop(net, x, 0).flatten().tolist() == [1.0, 1.0, 0.0]


def test_guided_grad_cam_is_the_product():
    torch.manual_seed(3)
    net = CamNet()
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(guided_grad_cam(net, net.features, x, 0),
                               guided_backprop(net, x, 0) * grad_cam(net, net.features, x, 0)[:, None])


@pytest.mark.parametrize("top, left", [(0, 0), (112, 112), (96, 8)])
def test_grad_cam_on_pretrained_lite0_follows_a_pasted_cat(top, left):
    from cvcourse.data import photo_tensor
    from cvcourse.models import EfficientNetLite0Weights, efficientnet_lite0

    weights = EfficientNetLite0Weights.IMAGENET1K_V1
    model = efficientnet_lite0(weights=weights).eval()
    cat = F.interpolate(photo_tensor("chelsea")[None, :, 40:260, 90:330], size=(112, 112), mode="bilinear")
    canvas = torch.full((1, 3, 224, 224), 0.5)
    canvas[:, :, top:top + 112, left:left + 112] = cat  # the cat's face in one quarter of a grey image
    x = (canvas - 127 / 255) / (128 / 255)
    with torch.no_grad():
        label = model(x).argmax(1).item()
    assert "cat" in weights.meta["categories"][label].lower()
    cam = grad_cam(model, model.features[-1], x, label)[0]
    row, col = divmod(cam.argmax().item(), 224)
    assert top <= row < top + 112 and left <= col < left + 112
    centre = torch.arange(224.0) + 0.5
    com_row = (cam.sum(1) * centre).sum() / cam.sum()
    com_col = (cam.sum(0) * centre).sum() / cam.sum()
    # the centre of mass lies within a quarter of the square's side of the square's centre
    assert abs(com_row - (top + 56)) < 28 and abs(com_col - (left + 56)) < 28, (com_row, com_col)


def test_errors_are_clear():
    net = CamNet()
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="submodule"):
        grad_cam(net, nn.ReLU(), x, 0)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        grad_cam(net, net.features, x, 4)
    with pytest.raises(ValueError, match="Tensor\\[B, C, H, W\\]"):
        guided_backprop(net, torch.randn(3, 8, 8), 0)
    with pytest.raises(ValueError, match="one class per image"):
        guided_backprop(net, torch.randn(2, 3, 8, 8), [0, 1, 2])
    with pytest.raises(TypeError, match="torch.Tensor"):
        grad_cam(net, net.features, [[0.0]], 0)
    with pytest.raises(ValueError, match="feature map"):
        grad_cam(net, net.fc, x, 0)


def test_normalize_map():
    m = torch.tensor([[[1.0, 3.0]], [[2.0, 2.0]]])
    torch.testing.assert_close(normalize_map(m), torch.tensor([[[0.0, 1.0]], [[0.0, 0.0]]]))
