"""Lecture 8's box widgets on plot_widget: IoU of two slider boxes, NMS with threshold sliders (issue 10)."""

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

from cvcourse.widgets.boxes import iou_widget, nms_keep, nms_widget, plot_iou_figure, plot_nms  # noqa: E402


def test_iou_widget_sliders_name_the_corners_xyxy_and_show_whole_labels():
    w = iou_widget(size=100)
    names = {k: c.description for k, c in w.controls.items()}
    assert names == {"a_x1": "box A: x1", "a_y1": "box A: y1", "a_x2": "box A: x2", "a_y2": "box A: y2",
                     "b_x1": "box B: x1", "b_y1": "box B: y1", "b_x2": "box B: x2", "b_y2": "box B: y2"}
    assert all(c.style.description_width == "initial" and c.max == 100 for c in w.controls.values())


def test_iou_widget_redraws_when_a_slider_moves():
    w = iou_widget(size=100)
    before = w.image.value
    w.controls["b_x2"].value = 95
    assert bytes(w.image.value).startswith(b"\x89PNG") and w.image.value != before
    assert w.children[-2].layout.display == "none"  # no error under the controls


@pytest.mark.parametrize("a, b", [([10, 10, 50, 50], [30, 25, 70, 75]), ([0, 0, 10, 10], [20, 20, 30, 30]),
                                  ([5, 5, 60, 40], [5, 5, 60, 40])])
def test_iou_title_matches_torchvision(a, b):
    a, b = torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    expected = float(torchvision.ops.box_iou(a[None], b[None])[0, 0])
    assert plot_iou_figure(a, b).axes[0].get_title() == f"IoU = {expected:.3f}"


def test_iou_widget_rejects_a_bad_size():
    with pytest.raises(ValueError, match="size must be an integer"):
        iou_widget(size=0)


def _detections():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(12, 2, generator=g) * 40
    boxes = torch.cat([xy, xy + 10 + torch.rand(12, 2, generator=g) * 14], 1)
    return boxes, torch.rand(12, generator=g), torch.randint(1, 3, (12,), generator=g)


def test_nms_widget_redraws_and_keeps_what_torchvision_keeps():
    boxes, scores, labels = _detections()
    image = torch.rand(3, 64, 64)
    w = nms_widget(image, boxes, scores, labels, ("background", "a", "b"))
    assert [c.description for c in w.controls.values()] == ["IoU threshold", "score threshold"]
    before = w.image.value
    w.controls["iou_threshold"].value = 0.1
    assert w.image.value != before and w.children[-2].layout.display == "none"
    for iou, score in [(0.1, 0.0), (0.5, 0.3), (0.9, 0.6)]:
        idx = torch.nonzero(scores > score).flatten()
        ref = idx[torchvision.ops.batched_nms(boxes[idx], scores[idx], labels[idx], iou)]
        assert torch.equal(nms_keep(boxes, scores, labels, iou, score), ref)
        title = plot_nms(image, boxes, scores, labels, None, iou, score).axes[1].get_title()
        assert title.endswith(f": {len(ref)} boxes"), title


def test_nms_widget_rejects_mismatched_scores():
    boxes, scores, labels = _detections()
    with pytest.raises(ValueError, match="scores"):
        nms_widget(torch.rand(3, 64, 64), boxes, scores[:5], labels)
