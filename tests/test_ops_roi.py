"""cvcourse.ops.roi against torchvision.ops.roi_align / roi_pool, with gradcheck and error paths."""

import pytest
import torch
import torchvision.ops as tvo

from cvcourse.ops import roi_align, roi_pool


def random_rois(k, batch, h, w, scale, seed=0, dtype=torch.float64):
    """RoIs in image pixels, some reaching past the border, some tiny, on a map of size (h, w) / scale."""
    g = torch.Generator().manual_seed(seed)
    size = torch.tensor([w, h, w, h], dtype=dtype) / scale
    corners = torch.rand(k, 4, generator=g, dtype=dtype) * size * 1.2 - size * 0.1
    boxes = torch.cat([corners[:, :2].minimum(corners[:, 2:]), corners[:, :2].maximum(corners[:, 2:])], dim=1)
    idx = torch.randint(0, batch, (k, 1), generator=g).to(dtype)
    return torch.cat([idx, boxes], dim=1)


@pytest.mark.parametrize("sampling_ratio", [-1, 2])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("output_size", [(7, 7), (3, 5), 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roi_align_matches_torchvision(device, sampling_ratio, aligned, output_size, dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 13, 17, generator=g, dtype=dtype).to(device)  # odd sizes
    rois = random_rois(30, 2, 13, 17, 0.25, dtype=dtype).to(device)
    expected = tvo.roi_align(x, rois, output_size, 0.25, sampling_ratio, aligned)
    got = roi_align(x, rois, output_size, spatial_scale=0.25, sampling_ratio=sampling_ratio, aligned=aligned)
    assert got.dtype == dtype and got.shape == expected.shape
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("output_size", [(7, 7), (2, 3)])
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25])
def test_roi_pool_matches_torchvision(device, output_size, scale):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 11, 14, generator=g).to(device)
    rois = random_rois(25, 2, 11, 14, scale, seed=3, dtype=torch.float32).to(device)
    torch.testing.assert_close(roi_pool(x, rois, output_size, scale), tvo.roi_pool(x, rois, output_size, scale))


def test_list_of_boxes_and_crafted_rois():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    boxes = [torch.tensor([[0.0, 0.0, 5.0, 5.0], [2.5, 2.5, 2.5, 2.5]]), torch.tensor([[1.0, 1.0, 3.0, 4.0]])]
    for f in (roi_align, roi_pool):
        torch.testing.assert_close(f(x, boxes, 2), getattr(tvo, f.__name__)(x, boxes, 2))
    # RoI Pool of the whole map with 1 bin is the max of the map; RoI Align of a point samples that point.
    assert roi_pool(x, torch.tensor([[1.0, 0, 0, 5, 5]]), 1).item() == x[1].max().item()
    point = roi_align(x, torch.tensor([[0.0, 2.5, 1.5, 2.5, 1.5]]), 1, aligned=True, sampling_ratio=1)
    assert point.item() == pytest.approx(float(x[0, 0, 1, 2]))  # aligned: pixel centre (2, 1) is at (2.5, 1.5)
    # A RoI entirely outside the map gives zeros.
    far = torch.tensor([[0.0, 100.0, 100.0, 120.0, 120.0]])
    assert roi_align(x, far, 2).abs().sum() == 0 and roi_pool(x, far, 2).abs().sum() == 0


def test_half_precision_close_to_float32():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 4, 9, 9, generator=g)
    rois = random_rois(10, 1, 9, 9, 1.0, dtype=torch.float32)
    expected = tvo.roi_align(x, rois, 3, 1.0, 2, True)
    torch.testing.assert_close(roi_align(x.half(), rois.half(), 3, 1.0, 2, True).float(), expected, atol=2e-2, rtol=2e-2)


def test_empty(device):
    x = torch.randn(1, 3, 8, 8, device=device)
    for f in (roi_align, roi_pool):
        out = f(x, torch.zeros(0, 5, device=device), (2, 3))
        assert out.shape == (0, 3, 2, 3) and out.dtype == x.dtype and out.device == x.device
        assert f(x, [torch.zeros(0, 4, device=device)], 2).shape == (0, 3, 2, 2)


def test_gradcheck_and_gradients_match_torchvision():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 2, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    rois = random_rois(4, 2, 6, 7, 0.5, seed=6)
    assert torch.autograd.gradcheck(lambda x: roi_align(x, rois, (2, 3), 0.5, -1, True), (x,))
    assert torch.autograd.gradcheck(lambda x: roi_pool(x, rois, (2, 3), 0.5), (x,))
    up = torch.randn(4, 2, 2, 3, generator=g, dtype=torch.float64)
    for ours, ref in [(lambda x: roi_align(x, rois, (2, 3), 0.5, 2, False), lambda x: tvo.roi_align(x, rois, (2, 3), 0.5, 2, False)),
                      (lambda x: roi_pool(x, rois, (2, 3), 0.5), lambda x: tvo.roi_pool(x, rois, (2, 3), 0.5))]:
        (g1,) = torch.autograd.grad((ours(x) * up).sum(), x)
        (g2,) = torch.autograd.grad((ref(x) * up).sum(), x)
        torch.testing.assert_close(g1, g2)


def test_errors():
    x = torch.randn(2, 3, 8, 8)
    good = torch.tensor([[0.0, 1, 1, 4, 4]])
    with pytest.raises(ValueError, match=r"input must have shape \(N, N, N, N\) as \(B, C, H, W\)"):
        roi_align(x[0], good, 2)
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 5\)"):
        roi_align(x, good[:, 1:], 2)
    with pytest.raises(ValueError, match="batch indices"):
        roi_pool(x, torch.tensor([[2.0, 1, 1, 4, 4]]), 2)
    with pytest.raises(ValueError, match="x2 >= x1"):
        roi_align(x, torch.tensor([[0.0, 4, 1, 1, 4]]), 2)
    with pytest.raises(ValueError, match="NaN"):
        roi_align(x, torch.tensor([[0.0, float("nan"), 1, 4, 4]]), 2)
    with pytest.raises(TypeError, match="boxes must be a floating point"):
        roi_align(x, good.long(), 2)
    with pytest.raises(TypeError, match="input must be a floating point"):
        roi_pool(x.long(), good, 2)
    with pytest.raises(ValueError, match="output_size must be"):
        roi_align(x, good, (2, 0))
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            roi_align(x, good.cuda(), 2)


def test_many_groups_without_autograd_equal_one_group_with_it():
    """Without autograd the RoIs are split into many small groups (cache-sized windows); the result must not
    depend on the grouping, and must match torchvision."""
    from cvcourse.ops import roi as roi_module

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 64, 20, 24, generator=g)
    k = 120
    xy = torch.rand(k, 2, generator=g) * torch.tensor([300.0, 250.0])
    wh = 8 + torch.rand(k, 2, generator=g) * 150
    rois = torch.cat([torch.randint(0, 2, (k, 1), generator=g).float(), xy, xy + wh], 1)
    sizes = [32 * 32] * k
    assert len(roi_module._chunks(sizes, 64, roi_module._chunk_limit(x))) > 10  # many groups in this no-grad call
    with torch.no_grad():
        small = roi_align(x, rois, 7, 1 / 16, 2, True), roi_pool(x, rois, 7, 1 / 16)
    leaf = x.clone().requires_grad_(True)
    assert len(roi_module._chunks(sizes, 64, roi_module._chunk_limit(leaf))) == 1  # one group when a backward pass will follow
    large = roi_align(leaf, rois, 7, 1 / 16, 2, True), roi_pool(leaf, rois, 7, 1 / 16)
    for ours, big in zip(small, large):
        torch.testing.assert_close(ours, big.detach())
    torch.testing.assert_close(small[0], tvo.roi_align(x, rois, 7, 1 / 16, 2, True), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(small[1], tvo.roi_pool(x, rois, 7, 1 / 16))
