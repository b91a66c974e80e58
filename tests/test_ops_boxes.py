"""cvcourse.ops.boxes against torchvision.ops, crafted edge cases and IoU laws."""

import pytest
import torch
import torchvision.ops as tvo
from hypothesis import given, settings
from hypothesis import strategies as st

from cvcourse.ops import box_area, box_convert, box_iou, clip_boxes_to_image, generalized_box_iou, remove_small_boxes


def random_boxes(n, seed=0, size=100.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_iou_giou_area_match_torchvision(device, dtype):
    a, b = random_boxes(37, 0, dtype=dtype).to(device), random_boxes(23, 1, dtype=dtype).to(device)
    tol = dict(rtol=1e-3, atol=1e-3) if dtype == torch.float16 else {}
    expected = tvo.box_iou(a, b)
    got = box_iou(a, b)
    assert got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, **tol)
    torch.testing.assert_close(generalized_box_iou(a, b), tvo.generalized_box_iou(a, b), **tol)
    torch.testing.assert_close(box_area(a), tvo.box_area(a))


def test_integer_boxes_match_torchvision():
    a = (random_boxes(20, 2) * 3).round().long()
    b = (random_boxes(15, 3) * 3).round().long()
    assert box_area(a).dtype == torch.int64
    assert torch.equal(box_area(a), tvo.box_area(a))
    got = box_iou(a, b)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, tvo.box_iou(a, b))
    torch.testing.assert_close(generalized_box_iou(a, b), tvo.generalized_box_iou(a, b))


def test_crafted_values():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 4.0, 2.0], [0.0, 0.0, 2.0, 2.0], [4.0, 0.0, 6.0, 2.0]])
    # overlap 1, union 7; touching edge; identical; disjoint with enclosing box 6 x 2.
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[1 / 7, 0.0, 1.0, 0.0]]))
    torch.testing.assert_close(generalized_box_iou(a, b), torch.tensor([[1 / 7 - 2 / 9, 0.0, 1.0, -(12 - 8) / 12]]))


def test_zero_area_gives_zero_not_nan():
    pt = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    line = torch.tensor([[0.0, 1.0, 3.0, 1.0]])
    box = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    assert torch.isnan(tvo.box_iou(pt, pt)).all()  # the documented deviation
    for x, y in [(pt, pt), (pt, line), (line, line), (pt, box)]:
        assert torch.equal(box_iou(x, y), torch.zeros(1, 1))
        assert not torch.isnan(generalized_box_iou(x, y)).any()
    assert torch.equal(generalized_box_iou(pt, pt), torch.zeros(1, 1))


@pytest.mark.parametrize("n,m", [(0, 0), (0, 3), (4, 0)])
def test_empty(device, n, m):
    a, b = torch.zeros(n, 4, device=device), random_boxes(m).to(device)
    for f in (box_iou, generalized_box_iou):
        out = f(a, b)
        assert out.shape == (n, m) and out.dtype == torch.float32 and out.device.type == device.type
    assert box_area(torch.zeros(0, 4, dtype=torch.float64)).dtype == torch.float64
    assert box_convert(torch.zeros(0, 4), "xyxy", "cxcywh").shape == (0, 4)


@pytest.mark.parametrize("in_fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("out_fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
def test_box_convert_matches_torchvision(in_fmt, out_fmt, dtype):
    b = (random_boxes(11, 4) * 2).to(dtype)
    got, expected = box_convert(b, in_fmt, out_fmt), tvo.box_convert(b, in_fmt, out_fmt)
    assert got.dtype == expected.dtype
    torch.testing.assert_close(got, expected)


def test_box_convert_round_trip_and_values():
    b = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert box_convert(b, "xyxy", "xywh").tolist() == [[10.0, 20.0, 20.0, 40.0]]
    assert box_convert(b, "xyxy", "cxcywh").tolist() == [[20.0, 40.0, 20.0, 40.0]]
    for fmt in ("xywh", "cxcywh"):
        torch.testing.assert_close(box_convert(box_convert(b, "xyxy", fmt), fmt, "xyxy"), b)


def test_errors():
    good = torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"boxes1 must have shape \(N, 4\).*got \(3, 5\)"):
        box_iou(torch.zeros(3, 5), good)
    with pytest.raises(ValueError, match="x2 < x1"):
        box_iou(good, torch.tensor([[2.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        generalized_box_iou(torch.tensor([[0.0, 0.0, float("nan"), 1.0]]), good)
    with pytest.raises(TypeError, match="torch.Tensor"):
        box_area([[0, 0, 1, 1]])
    with pytest.raises(TypeError, match="dtype torch.bool"):
        box_area(torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="in_fmt must be one of"):
        box_convert(good, "xyzw", "xyxy")
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        box_convert(torch.zeros(3), "xyxy", "xywh")
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            box_iou(good, good.cuda())


# Multiples of 1/8 are exact in float64, so translating boxes does not change their sizes.
coord = st.integers(-8000, 8000).map(lambda v: v / 8)
size = st.integers(0, 8000).map(lambda v: v / 8)
box_st = st.tuples(coord, coord, size, size).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=60, deadline=None)
@given(st.lists(box_st, min_size=1, max_size=8), st.lists(box_st, min_size=1, max_size=8), coord, coord)
def test_iou_laws(l1, l2, dx, dy):
    a, b = torch.tensor(l1, dtype=torch.float64), torch.tensor(l2, dtype=torch.float64)
    iou = box_iou(a, b)
    assert not torch.isnan(iou).any()
    assert ((iou >= 0) & (iou <= 1)).all()
    torch.testing.assert_close(iou, box_iou(b, a).T)  # symmetric
    shift = torch.tensor([dx, dy, dx, dy], dtype=torch.float64)
    torch.testing.assert_close(box_iou(a + shift, b + shift), iou, atol=1e-6, rtol=1e-6)  # translation invariant
    diag = box_iou(a, a).diagonal()
    positive = box_area(a) > 0
    assert torch.allclose(diag[positive], torch.ones_like(diag[positive]))  # 1 on the diagonal (for boxes with an area)
    assert (diag[~positive] == 0).all()
    giou = generalized_box_iou(a, b)
    assert ((giou >= -1 - 1e-9) & (giou <= iou + 1e-9)).all()  # GIoU in [-1, IoU]


@pytest.mark.parametrize("shape", [(40, 4), (10, 3, 4)])
def test_clip_boxes_to_image_matches_torchvision(shape):
    boxes = (random_boxes(40 * 3, size=120) - 20)[: torch.Size(shape).numel() // 4].reshape(shape)
    torch.testing.assert_close(clip_boxes_to_image(boxes, (60, 80)), tvo.clip_boxes_to_image(boxes, (60, 80)))
    inside = random_boxes(20, size=40)
    torch.testing.assert_close(clip_boxes_to_image(inside, (100, 100)), inside)  # nothing to clip


def test_remove_small_boxes_matches_torchvision():
    boxes = random_boxes(200, seed=3)
    for min_size in (0.0, 5.0, 20.0, 1e9):
        keep = remove_small_boxes(boxes, min_size)
        assert keep.dtype == torch.int64
        assert torch.equal(keep, tvo.remove_small_boxes(boxes, min_size))
    edge = torch.tensor([[0.0, 0.0, 2.0, 5.0], [0.0, 0.0, 1.99, 5.0]])
    assert remove_small_boxes(edge, 2.0).tolist() == [0]  # exactly min_size is kept


def test_clip_and_remove_small_boxes_reject_bad_input():
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        clip_boxes_to_image(torch.zeros(3, 5), (10, 10))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        clip_boxes_to_image(torch.zeros(3, 4), (10,))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        remove_small_boxes(torch.zeros(2, 3, 4), 1.0)
    with pytest.raises(TypeError):
        remove_small_boxes([[0, 0, 1, 1]], 1.0)
