"""cvcourse.style: Gram matrix, Gatys losses, thin-plate spline and warping (Deformable Style Transfer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import RBFInterpolator
from torch.testing import assert_close

from cvcourse.style import (
    content_loss,
    gram_matrix,
    style_loss,
    stylize,
    tps_fit,
    tps_grid,
    tps_transform,
    warp_image,
    warp_smoothness,
)


def _points(n, seed=0, scale=50.0):
    return torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


# ----------------------------------------------------------------------------------------- Gram and losses

def test_gram_matrix_by_hand():
    # two channels over two positions: F = [[1, 2], [3, 4]]; F F^T = [[5, 11], [11, 25]], divided by H*W = 2
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    assert_close(gram_matrix(f), torch.tensor([[[2.5, 5.5], [5.5, 12.5]]]))


def test_gram_matrix_ignores_where_features_are():
    f = torch.randn(2, 5, 4, 6, generator=torch.Generator().manual_seed(0))
    shuffled = f.flatten(2)[:, :, torch.randperm(24, generator=torch.Generator().manual_seed(1))].reshape(2, 5, 4, 6)
    assert_close(gram_matrix(shuffled), gram_matrix(f))


def test_style_and_content_losses_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    target = torch.zeros(1, 2, 2)
    # mean of squared Gram entries: (6.25 + 2 * 30.25 + 156.25) / 4 = 55.75; weight 2 -> 111.5
    assert style_loss([f], [target], weights=[2.0]).item() == pytest.approx(111.5)
    assert content_loss(f, torch.zeros_like(f)).item() == pytest.approx(7.5)  # (1 + 4 + 9 + 16) / 4


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        gram_matrix(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="one target Gram"):
        style_loss([torch.zeros(1, 2, 2, 2)], [])
    with pytest.raises(ValueError, match="at least 3"):
        tps_fit(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="same number"):
        tps_fit(torch.rand(4, 2), torch.rand(5, 2))
    with pytest.raises(ValueError, match="one line"):
        line = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
        tps_fit(line, line)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        tps_fit(torch.rand(4, 3), torch.rand(4, 3))
    with pytest.raises(ValueError, match="src and dst"):
        warp_image(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="both src and dst"):
        stylize(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), lambda x: [x], steps=1, src=torch.zeros(3, 2))


# ------------------------------------------------------------------------------------- thin-plate spline

def test_tps_interpolates_its_control_points():
    src, dst = _points(7, 0), _points(7, 1)
    coef = tps_fit(src, dst)
    assert_close(tps_transform(src, src, coef), dst)


def test_tps_is_the_identity_when_source_equals_target():
    src = _points(6, 2)
    coef = tps_fit(src, src)
    queries = _points(40, 3, scale=80.0)
    assert_close(tps_transform(queries, src, coef), queries)
    assert_close(coef[:6], torch.zeros(6, 2, dtype=torch.float64), atol=1e-9, rtol=0)  # no bending


def test_tps_reproduces_an_affine_map_exactly():
    src = _points(8, 4)
    a = torch.tensor([[1.2, -0.3], [0.4, 0.9]], dtype=torch.float64)
    b = torch.tensor([5.0, -2.0], dtype=torch.float64)
    coef = tps_fit(src, src @ a.T + b)
    queries = _points(30, 5, scale=100.0)
    assert_close(tps_transform(queries, src, coef), queries @ a.T + b)


def test_tps_matches_scipy_rbf_interpolator():
    # the independent reference: scipy's thin-plate RBF with a degree-1 polynomial is the same spline
    src, dst = _points(9, 6), _points(9, 7)
    queries = _points(25, 8, scale=60.0)
    ref = RBFInterpolator(src.numpy(), dst.numpy(), kernel="thin_plate_spline", degree=1)(queries.numpy())
    ours = tps_transform(queries, src, tps_fit(src, dst))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-7, atol=1e-7)


def test_tps_is_differentiable_in_the_targets():
    src = _points(5, 9)
    dst = (src + _points(5, 10, scale=3.0)).requires_grad_(True)
    queries = _points(6, 11)
    torch.autograd.gradcheck(lambda d: tps_transform(queries, src, tps_fit(src, d)), (dst,))


# -------------------------------------------------------------------------------------------------- warps

def test_warp_by_a_pure_translation_shifts_the_image():
    img = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    src = torch.tensor([[3.0, 4.0], [15.0, 5.0], [8.0, 16.0], [20.0, 12.0]])
    out = warp_image(img, src, src + torch.tensor([3.0, -2.0]))  # content moves 3 px right and 2 px up
    assert_close(out[:, :, :-2, 3:], img[:, :, 2:, :-3], atol=1e-5, rtol=0)
    # uncovered pixels read from outside the image: the nearest border pixel is repeated
    assert_close(out[:, :, :-2, :3], img[:, :, 2:, :1].expand(-1, -1, -1, 3), atol=1e-5, rtol=0)
    assert_close(out[:, :, -2:, 3:], img[:, :, -1:, :-3].expand(-1, -1, 2, -1), atol=1e-5, rtol=0)


def test_warp_moves_content_from_src_to_dst():
    img = torch.zeros(1, 1, 32, 32)
    img[0, 0, 10, 8] = 1.0  # a bright pixel at (x, y) = (8, 10)
    src = torch.tensor([[8.0, 10.0], [0.0, 0.0], [31.0, 0.0], [0.0, 31.0], [31.0, 31.0]])
    dst = src.clone()
    dst[0] = torch.tensor([20.0, 14.0])
    out = warp_image(img, src, dst)
    assert out[0, 0, 14, 20].item() == pytest.approx(1.0, abs=1e-4)
    assert tps_grid(src, dst, (32, 32))[14, 20].tolist() == pytest.approx([8.0, 10.0], abs=1e-4)


def test_warp_smoothness_is_zero_for_a_translation_and_positive_for_a_bend():
    src = torch.tensor([[2.0, 2.0], [13.0, 2.0], [2.0, 13.0], [13.0, 13.0], [8.0, 8.0]])
    shifted = tps_grid(src, src + torch.tensor([1.5, -0.5]), (16, 16))
    assert warp_smoothness(shifted).item() == pytest.approx(0.0, abs=1e-5)
    bent_dst = src.clone()
    bent_dst[4] += torch.tensor([3.0, 0.0])
    assert warp_smoothness(tps_grid(src, bent_dst, (16, 16))).item() > 0.05


def test_stylize_gatys_lowers_the_style_loss_with_a_tiny_network():
    # a fixed random conv as feature extractor keeps the test fast and offline
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    class Tiny(torch.nn.Module):
        layers = (0,)

        def forward(self, x):
            return [torch.relu(conv(x))]

    content = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    style = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 0.3
    out, hist = stylize(content, style, Tiny(), steps=30, lr=0.05, content_layers=(0,), content_weight=0.0,
                        style_weight=1.0)
    assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
    assert hist["style"][-1] < 0.2 * hist["style"][0]
