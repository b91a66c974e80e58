"""Play with boxes: two slider boxes and their IoU; an NMS threshold slider over detections (lectures 8–9).

Letters: N boxes.
Convention: boxes are ``(x1, y1, x2, y2)`` in pixels; the slider boxes are given as ``(x, y, w, h)`` —
top-left corner and size — as in the lecture's bounding-box slide.

:func:`intersection_box` and :func:`nms_keep` are the tested logic; :func:`iou_widget` and
:func:`nms_widget` wire sliders to plots (``ipywidgets.interact``; they render once when run headless).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle
from torch import Tensor

from cvcourse._checks import check_boxes, check_shape
from cvcourse.detection._ops import batched_nms, box_convert, box_iou


def intersection_box(a: Tensor, b: Tensor) -> Tensor | None:
    """The overlap of two xyxy boxes (Tensor[4] each), or None when they do not overlap."""
    x1, y1 = torch.maximum(a[0], b[0]), torch.maximum(a[1], b[1])
    x2, y2 = torch.minimum(a[2], b[2]), torch.minimum(a[3], b[3])
    if x2 <= x1 or y2 <= y1:
        return None
    return torch.stack([x1, y1, x2, y2])


def nms_keep(
    boxes: Tensor, scores: Tensor, labels: Tensor | None = None, iou_threshold: float = 0.5, score_threshold: float = 0.0
) -> Tensor:
    """Indices of the detections that survive a score threshold, then (per-class) NMS, best first.

    Args:
        boxes (Tensor[N, 4]); scores (Tensor[N]); labels (Tensor[N], optional: NMS within each class);
        iou_threshold (float): suppress a box whose IoU with a better one exceeds this;
        score_threshold (float): drop boxes scoring at or below this first.

    Returns:
        Tensor[K] (int64): indices into ``boxes``.
    """
    check_boxes(boxes)
    check_shape(scores, "scores", (boxes.shape[0],), hint="(one score per box)")
    labels = torch.zeros_like(scores, dtype=torch.int64) if labels is None else labels
    idx = torch.nonzero(scores > score_threshold).flatten()
    keep = batched_nms(boxes[idx].float(), scores[idx].float(), labels[idx], iou_threshold)
    return idx[keep]


def _xywh(x: float, y: float, w: float, h: float) -> Tensor:
    return box_convert(torch.tensor([[x, y, w, h]], dtype=torch.float32), "xywh", "xyxy")[0]


def plot_iou(a: Tensor, b: Tensor, size: int = 100, ax=None):
    """Draw boxes ``a`` and ``b`` (xyxy), shade their intersection and title the axis with their IoU."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    for box, colour in ((a, "tab:blue"), (b, "tab:orange")):
        ax.add_patch(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False, lw=2, ec=colour))
    inter = intersection_box(a, b)
    if inter is not None:
        ax.add_patch(Rectangle((inter[0], inter[1]), inter[2] - inter[0], inter[3] - inter[1], color="tab:green", alpha=0.4))
    iou = float(box_iou(a[None], b[None])[0, 0])
    ax.set(xlim=(0, size), ylim=(size, 0), aspect="equal", title=f"IoU = {iou:.3f}")
    return ax


def iou_widget(size: int = 100):
    """Two boxes on sliders ``(x, y, w, h)`` and their IoU (lecture 8)."""
    from ipywidgets import IntSlider, interact

    def s(v):
        return IntSlider(value=v, min=0, max=size, step=1, continuous_update=False)

    def show(x1=10, y1=10, w1=40, h1=40, x2=30, y2=25, w2=40, h2=50):
        plot_iou(_xywh(x1, y1, w1, h1), _xywh(x2, y2, w2, h2), size)
        plt.show()

    return interact(show, x1=s(10), y1=s(10), w1=s(40), h1=s(40), x2=s(30), y2=s(25), w2=s(40), h2=s(50))


def nms_widget(image, boxes: Tensor, scores: Tensor, labels: Tensor | None = None, class_names=None):
    """Raw detections on the left, what NMS keeps on the right, with IoU and score threshold sliders (lecture 8)."""
    from ipywidgets import FloatSlider, interact

    from cvcourse.viz import show_detections

    def show(iou_threshold=0.5, score_threshold=0.05):
        keep = nms_keep(boxes, scores, labels, iou_threshold, score_threshold)
        fig, axes = plt.subplots(1, 2, figsize=(8, 4))
        show_detections(image, boxes, labels, None, class_names, ax=axes[0])
        axes[0].set_title(f"before NMS: {len(boxes)} boxes")
        lab = labels[keep] if labels is not None else None
        show_detections(image, boxes[keep], lab, scores[keep], class_names, ax=axes[1])
        axes[1].set_title(f"after NMS: {len(keep)} boxes")
        plt.show()

    return interact(
        show,
        iou_threshold=FloatSlider(value=0.5, min=0.05, max=1.0, step=0.05, continuous_update=False),
        score_threshold=FloatSlider(value=0.05, min=0.0, max=0.95, step=0.05, continuous_update=False),
    )
