"""cvcourse.ops.upsample against torch.nn.functional, with gradcheck and error paths."""

import pytest
import torch
import torch.nn.functional as F

from cvcourse.ops import conv_transpose2d, max_unpool2d, nearest_unpool2d


@pytest.mark.parametrize("scale", [1, 2, 3, (2, 3)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_nearest_unpool_matches_interpolate(device, scale, dtype):
    x = torch.randn(2, 3, 5, 7, device=device).to(dtype)  # odd sizes
    sf = scale if isinstance(scale, tuple) else (scale, scale)
    expected = F.interpolate(x.float(), scale_factor=sf, mode="nearest").to(dtype)
    got = nearest_unpool2d(x, scale)
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_nearest_unpool_values():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert nearest_unpool2d(x, 2)[0, 0].tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]


@pytest.mark.parametrize("kernel,stride,size", [(2, 2, (8, 10)), (2, 2, (7, 9)), (3, 2, (9, 11)), (3, 3, (9, 12))])
def test_max_unpool_matches_torch(device, kernel, stride, size):
    g = torch.Generator().manual_seed(0)
    img = torch.randn(2, 3, *size, generator=g).to(device)
    pooled, idx = F.max_pool2d(img, kernel, stride, return_indices=True)
    expected = F.max_unpool2d(pooled, idx, kernel, stride, output_size=size)
    torch.testing.assert_close(max_unpool2d(pooled, idx, size), expected, rtol=0, atol=0)
    torch.testing.assert_close(max_unpool2d(pooled, idx, img.shape), expected, rtol=0, atol=0)


def test_max_unpool_puts_values_back():
    img = torch.tensor([[[[1.0, 5.0], [2.0, 3.0]]]])
    pooled, idx = F.max_pool2d(img, 2, return_indices=True)
    assert max_unpool2d(pooled, idx, (2, 2))[0, 0].tolist() == [[0, 5], [0, 0]]


@pytest.mark.parametrize("stride,padding,k", [(1, 0, 3), (2, 0, 2), (2, 1, 3), (3, 1, 4), ((2, 1), (0, 1), 3)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv_transpose_matches_torch(device, stride, padding, k, with_bias):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 5, 6, generator=g).to(device)
    w = torch.randn(4, 3, k, k + 1, generator=g).to(device)  # non-square kernel
    b = torch.randn(3, generator=g).to(device) if with_bias else None
    expected = F.conv_transpose2d(x, w, b, stride=stride, padding=padding)
    got = conv_transpose2d(x, w, b, stride=stride, padding=padding)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_conv_transpose_float64_and_paint_picture():
    # One input pixel of value 2 paints 2 * kernel; two pixels at stride 2 with a 3x3 kernel overlap in a column.
    x = torch.tensor([[[[2.0, 1.0]]]], dtype=torch.float64)
    w = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    out = conv_transpose2d(x, w, stride=2)
    assert out[0, 0].tolist() == [[2, 2, 3, 1, 1]] * 3
    torch.testing.assert_close(out, F.conv_transpose2d(x, w, stride=2))


def test_gradcheck():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: conv_transpose2d(x, w, b, stride=2, padding=1), (x, w, b))
    assert torch.autograd.gradcheck(lambda x: nearest_unpool2d(x, (2, 3)), (x,))
    img = torch.randn(1, 2, 6, 8, generator=g, dtype=torch.float64)
    pooled, idx = F.max_pool2d(img, 2, return_indices=True)
    pooled.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: max_unpool2d(p, idx, (6, 8)), (pooled,))
    # and the gradient equals torch's
    p1 = pooled.detach().clone().requires_grad_(True)
    p2 = pooled.detach().clone().requires_grad_(True)
    up = torch.randn(1, 2, 6, 8, generator=g, dtype=torch.float64)
    (max_unpool2d(p1, idx, (6, 8)) * up).sum().backward()
    (F.max_unpool2d(p2, idx, 2, output_size=(6, 8)) * up).sum().backward()
    torch.testing.assert_close(p1.grad, p2.grad)


def test_errors():
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"x must have shape \(N, N, N, N\) as \(B, C, H, W\), got \(2, 4, 4\)"):
        nearest_unpool2d(x[0])
    with pytest.raises(ValueError, match="scale_factor must be an int >= 1"):
        nearest_unpool2d(x, 1.5)
    with pytest.raises(TypeError, match="floating point"):
        nearest_unpool2d(x.long())
    pooled, idx = F.max_pool2d(x, 2, return_indices=True)
    with pytest.raises(TypeError, match="indices must be int64"):
        max_unpool2d(pooled, idx.int(), (4, 4))
    with pytest.raises(ValueError, match="same shape as x"):
        max_unpool2d(pooled, idx[:, :1], (4, 4))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 4\)"):
        max_unpool2d(pooled, idx, (2, 2))
    with pytest.raises(ValueError, match=r"weight must have shape \(C_in=2"):
        conv_transpose2d(x, torch.randn(3, 1, 2, 2))
    with pytest.raises(ValueError, match=r"bias must have shape \(1\)"):
        conv_transpose2d(x, torch.randn(2, 1, 2, 2), torch.randn(2))
    with pytest.raises(ValueError, match="leaves no output"):
        conv_transpose2d(torch.randn(1, 2, 1, 1), torch.randn(2, 1, 2, 2), padding=1)
    with pytest.raises(ValueError, match="stride must be"):
        conv_transpose2d(x, torch.randn(2, 1, 2, 2), stride=0)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            conv_transpose2d(x, torch.randn(2, 1, 2, 2).cuda())
