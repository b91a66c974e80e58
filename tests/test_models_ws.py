"""cvcourse.models.ws: Weight Standardization against a batch-norm reference, its invariances and gradients."""

import pytest
import torch
import torch.nn.functional as F

from cvcourse.models.ws import NormConvNet, WSConv2d, standardize_weight


def _reference(w, eps):
    # timm's StdConv2d trick: batch norm over each filter's entries is exactly weight standardisation
    return F.batch_norm(w.reshape(1, w.shape[0], -1), None, None, training=True, momentum=0.0, eps=eps).reshape_as(w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_standardize_weight_matches_batch_norm_reference_and_has_unit_variance(dtype):
    w = torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(0), dtype=dtype) * 0.05 + 0.3
    out = standardize_weight(w, eps=1e-5)
    torch.testing.assert_close(out, _reference(w, 1e-5))
    flat = standardize_weight(w, eps=0.0).reshape(6, -1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(6, dtype=dtype), atol=1e-6, rtol=0)
    torch.testing.assert_close(flat.var(1, unbiased=False), torch.ones(6, dtype=dtype))


def test_standardize_weight_hand_case():
    # one filter [1, 3]: mean 2, population variance 1 -> [-1, 1]
    w = torch.tensor([[[[1.0, 3.0]]]])
    torch.testing.assert_close(standardize_weight(w, eps=0.0), torch.tensor([[[[-1.0, 1.0]]]]))


def test_ws_conv_ignores_filter_scale_and_shift():
    torch.manual_seed(0)
    conv = WSConv2d(3, 5, 3, padding=1, bias=False, eps=0.0)  # eps would make the scale matter slightly
    x = torch.randn(2, 3, 8, 8)
    y = conv(x)
    with torch.no_grad():
        scale = torch.rand(5, 1, 1, 1) * 4 + 0.5
        conv.weight.mul_(scale).add_(torch.randn(5, 1, 1, 1))
    torch.testing.assert_close(conv(x), y, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(y, F.conv2d(x, _reference(conv.weight, 1e-12), padding=1), atol=1e-5, rtol=1e-4)


def test_gradients_flow_through_the_standardisation():
    w = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: standardize_weight(t, eps=1e-5), (w,))
    conv = WSConv2d(2, 4, 3, eps=1e-12).double()
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64)
    (conv(x) * torch.randn(3, 4, 4, 4, dtype=torch.float64)).sum().backward()
    g = conv.weight.grad.reshape(4, -1)
    w_hat = standardize_weight(conv.weight.detach(), eps=0.0).reshape(4, -1)
    assert g.abs().sum() > 0
    # the gradient is projected: it sums to zero over each filter and is orthogonal to the standardised filter
    torch.testing.assert_close(g.sum(1), torch.zeros(4, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close((g * w_hat).sum(1), torch.zeros(4, dtype=torch.float64), atol=1e-7, rtol=0)
    plain = torch.nn.Conv2d(2, 4, 3).double()
    (plain(x)).sum().backward()
    assert plain.weight.grad.reshape(4, -1).sum(1).abs().max() > 1e-3  # a plain conv's gradient is not projected


def test_errors():
    with pytest.raises(ValueError, match="at least 2 entries"):
        standardize_weight(torch.ones(3, 1, 1, 1))
    with pytest.raises(ValueError, match="eps"):
        standardize_weight(torch.randn(3, 2), eps=-1.0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        standardize_weight([[1.0, 2.0]])
    with pytest.raises(ValueError, match="norm must be one of"):
        NormConvNet(norm="layer")


def test_norm_conv_net_group_norm_is_independent_of_the_batch_and_batch_norm_is_not():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16)
    for norm, ws, independent in [("group", True, True), ("group", False, True), ("batch", False, False)]:
        net = NormConvNet(10, norm=norm, ws=ws, width=8, groups=4).train()
        assert net(x).shape == (4, 10)
        assert any(isinstance(m, WSConv2d) for m in net.modules()) == ws
        same = torch.allclose(net(x[:1]), net(x)[:1], atol=1e-5)
        assert same == independent, (norm, ws)
