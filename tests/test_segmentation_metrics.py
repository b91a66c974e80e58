"""Tests of lecture 7's segmentation metrics: boundary band, boundary IoU, per-class IoU (cvcourse.train)."""

import math

import pytest
import torch
from scipy import ndimage

from cvcourse.train import BoundaryIoU, MeanIoU, boundary_band, iou_per_class


def _square(size=9, lo=2, hi=7):
    m = torch.zeros(size, size, dtype=torch.bool)
    m[lo:hi, lo:hi] = True
    return m


def test_band_of_a_square_by_hand():
    band = boundary_band(_square(), width=1)  # 5x5 square: its 16 outer pixels, not the 3x3 interior
    assert int(band.sum()) == 16
    assert not band[3:6, 3:6].any() and band[2, 2:7].all() and band[6, 2:7].all()
    assert int(boundary_band(_square(), width=2).sum()) == 24  # all but the centre pixel
    assert int(boundary_band(_square(), width=3).sum()) == 25


def test_band_matches_scipy_erosion_and_ignores_the_image_border():
    gen = torch.Generator().manual_seed(0)
    masks = torch.rand(4, 20, 24, generator=gen) > 0.4
    for width in (1, 2, 3):
        eroded = ndimage.binary_erosion(masks.numpy(), structure=ndimage.generate_binary_structure(2, 2)[None],
                                        iterations=width, border_value=1)
        expected = masks.numpy() & ~eroded
        assert torch.equal(boundary_band(masks, width), torch.from_numpy(expected))
    full = torch.ones(6, 6, dtype=torch.bool)
    assert not boundary_band(full, 2).any()  # the border of the image is not an edge
    assert not boundary_band(torch.zeros(6, 6, dtype=torch.bool), 1).any()


def test_boundary_iou_by_hand_on_a_shifted_square():
    truth = _square().long()  # class 1 inside, 0 outside
    pred = torch.roll(_square(), shifts=1, dims=1).long()  # one column to the right
    metric = BoundaryIoU(2, width=1)
    metric.update(pred[None], truth[None])
    # class 1: true band = columns 2..6 of rows 2, 6 plus columns 2, 6 of rows 3..5 (16 px); predicted band the
    # same shifted right (rows 2, 6 at columns 3..7, columns 3 and 7 of rows 3..5). Common: rows 2 and 6 at
    # columns 3..6 -> 8 px; the side columns never meet.
    assert metric.intersection[1].item() == 8 and metric.union[1].item() == 16 + 16 - 8
    # class 0: its band is the 1-px ring around the square (7x7 - 5x5 = 24 px), shifted likewise.
    ring = _square(lo=1, hi=8) & ~_square()
    ring_pred = torch.roll(ring, 1, dims=1)
    inter, union = int((ring & ring_pred).sum()), int((ring | ring_pred).sum())
    assert (metric.intersection[0].item(), metric.union[0].item()) == (inter, union)
    per = metric.per_class()
    assert per[1].item() == pytest.approx(8 / 24) and per[0].item() == pytest.approx(inter / union)
    assert metric.compute() == pytest.approx((8 / 24 + inter / union) / 2)


def test_boundary_iou_is_stricter_than_iou_for_a_blurred_outline():
    truth = _square(size=32, lo=4, hi=28).long()
    pred = _square(size=32, lo=6, hi=26).long()  # shrunk by 2 px on every side
    biou, miou = BoundaryIoU(2, width=2), MeanIoU(2)
    biou.update(pred[None], truth[None])
    miou.update(torch.nn.functional.one_hot(pred, 2).permute(2, 0, 1)[None].float(), truth[None])
    assert miou.per_class()[1].item() == pytest.approx(20 * 20 / (24 * 24))
    # class 1: true band 24^2 - 20^2 = 176 px, predicted band 20^2 - 16^2 = 144 px, disjoint -> 0
    assert biou.per_class()[1].item() == 0.0 and biou.union[1].item() == 176 + 144


def test_boundary_iou_perfect_absent_classes_logits_and_accumulation():
    gen = torch.Generator().manual_seed(1)
    targets = torch.randint(0, 3, (4, 16, 16), generator=gen)
    logits = torch.nn.functional.one_hot(targets, 4).permute(0, 3, 1, 2).float()  # 4 classes, class 3 absent
    metric = BoundaryIoU(4)
    metric.update(logits, targets)
    per = metric.per_class()
    assert torch.equal(per[:3], torch.ones(3, dtype=torch.float64)) and math.isnan(per[3].item())
    assert metric.compute() == 1.0
    whole, halves = BoundaryIoU(4), BoundaryIoU(4)
    noisy = torch.randn(4, 4, 16, 16, generator=gen)
    whole.update(noisy, targets)
    halves.update(noisy[:2], targets[:2])
    halves.update(noisy[2:], targets[2:])
    assert torch.equal(whole.intersection, halves.intersection) and torch.equal(whole.union, halves.union)
    halves.reset()
    assert int(halves.union.sum()) == 0 and math.isnan(halves.compute())


def test_boundary_iou_ignore_index():
    truth = _square().long()
    truth[0, :] = 255
    pred = _square().long()
    pred[0, :] = 1  # wrong, but on ignored pixels
    metric = BoundaryIoU(2, width=1, ignore_index=255)
    metric.update(pred[None], truth[None])
    assert metric.per_class()[1].item() == 1.0


def test_mean_iou_per_class_is_the_confusion_iou():
    targets = torch.tensor([[[0, 0, 1], [1, 2, 2]]])
    pred = torch.tensor([[[0, 1, 1], [1, 2, 0]]])
    metric = MeanIoU(3)
    metric.update(torch.nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).float(), targets)
    # by hand: class 0 TP 1, FP 1, FN 1 -> 1/3; class 1 TP 2, FP 1 -> 2/3; class 2 TP 1, FN 1 -> 1/2
    torch.testing.assert_close(metric.per_class(), torch.tensor([1 / 3, 2 / 3, 1 / 2], dtype=torch.float64))
    assert torch.equal(metric.per_class(), iou_per_class(metric.confusion))


def test_boundary_metric_errors():
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        BoundaryIoU(3, width=0)
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        boundary_band(torch.ones(3, 3, dtype=torch.bool), 1.5)
    with pytest.raises(ValueError, match="masks must have shape"):
        boundary_band(torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="targets"):
        BoundaryIoU(3).update(torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, 5, dtype=torch.long))
