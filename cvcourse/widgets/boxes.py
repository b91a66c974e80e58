"""Play with boxes: two slider boxes and their IoU; an NMS threshold slider over detections (lectures 8–9).

Letters: N boxes.
Convention: boxes are ``(x1, y1, x2, y2)`` in pixels, the top-left and the bottom-right corner; the sliders
of :func:`iou_widget` set these four numbers of each box.

:func:`intersection_box` and :func:`nms_keep` are the tested logic; :func:`iou_widget` and
:func:`nms_widget` wire sliders to plots with :func:`cvcourse.widgets.figure.plot_widget` (an ``Image`` widget,
not ``interact``'s ``Output``). Like ``interact``, which lecture 8 used first, they display the widget themselves
(lecture 8 ends their lines with ``;``) and return it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle
from torch import Tensor

from cvcourse._checks import check_boxes, check_shape
from cvcourse.ops import batched_nms, box_iou


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


def _slider_style() -> dict:
    """Slider style whose description is shown whole (the default width cuts labels such as "IoU threshold")."""
    return {"description_width": "initial"}


def _show(box):
    from IPython.display import display  # noqa: PLC0415

    display(box)
    return box


def plot_iou_figure(a: Tensor, b: Tensor, size: int = 100):
    """:func:`plot_iou` on a new 4x4 figure; returns the Figure."""
    fig, ax = plt.subplots(figsize=(4, 4))
    plot_iou(a, b, size, ax=ax)
    return fig


def iou_widget(size: int = 100):
    """Two boxes on sliders, each given by its corners ``(x1, y1, x2, y2)`` as everywhere in the course, and their
    IoU (lecture 8). A corner dragged past the other one is swapped with it, so the box stays valid.

    Displays the widget and returns it (``.controls`` named ``a_x1 ... b_y2``, ``.image`` the figure).
    """
    import ipywidgets as widgets  # noqa: PLC0415

    from cvcourse.widgets.figure import plot_widget  # noqa: PLC0415

    if not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be an integer of at least 2 (pixels), got {size!r}")

    def s(box: str, coord: str, v: int):
        return widgets.IntSlider(value=v, min=0, max=size, step=1, continuous_update=False,
                                 description=f"box {box}: {coord}", style=_slider_style())

    def corners(x1, y1, x2, y2) -> Tensor:
        return torch.tensor([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], dtype=torch.float32)

    def draw(a_x1, a_y1, a_x2, a_y2, b_x1, b_y1, b_x2, b_y2):
        return plot_iou_figure(corners(a_x1, a_y1, a_x2, a_y2), corners(b_x1, b_y1, b_x2, b_y2), size)

    f = size / 100
    controls = {"a_x1": s("A", "x1", round(10 * f)), "a_y1": s("A", "y1", round(10 * f)),
                "a_x2": s("A", "x2", round(50 * f)), "a_y2": s("A", "y2", round(50 * f)),
                "b_x1": s("B", "x1", round(30 * f)), "b_y1": s("B", "y1", round(25 * f)),
                "b_x2": s("B", "x2", round(70 * f)), "b_y2": s("B", "y2", round(75 * f))}
    return _show(plot_widget(draw, controls))


def plot_nms(image, boxes: Tensor, scores: Tensor, labels: Tensor | None = None, class_names=None,
             iou_threshold: float = 0.5, score_threshold: float = 0.05):
    """Raw detections on the left, what :func:`nms_keep` keeps on the right; returns the Figure."""
    from cvcourse.viz import show_detections  # noqa: PLC0415

    keep = nms_keep(boxes, scores, labels, iou_threshold, score_threshold)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    show_detections(image, boxes, labels, None, class_names, ax=axes[0])
    axes[0].set_title(f"before NMS: {len(boxes)} boxes")
    lab = labels[keep] if labels is not None else None
    show_detections(image, boxes[keep], lab, scores[keep], class_names, ax=axes[1])
    axes[1].set_title(f"after NMS (IoU {iou_threshold:.2f}, score > {score_threshold:.2f}): {len(keep)} boxes",
                      fontsize=9)
    return fig


def nms_widget(image, boxes: Tensor, scores: Tensor, labels: Tensor | None = None, class_names=None):
    """:func:`plot_nms` with IoU and score threshold sliders (lecture 8). Displays the widget and returns it."""
    import ipywidgets as widgets  # noqa: PLC0415

    from cvcourse.widgets.figure import plot_widget  # noqa: PLC0415

    check_boxes(boxes)
    check_shape(scores, "scores", (boxes.shape[0],), hint="(one score per box)")
    controls = {
        "iou_threshold": widgets.FloatSlider(value=0.5, min=0.05, max=1.0, step=0.05, continuous_update=False,
                                             description="IoU threshold", style=_slider_style()),
        "score_threshold": widgets.FloatSlider(value=0.05, min=0.0, max=0.95, step=0.05, continuous_update=False,
                                               description="score threshold", style=_slider_style()),
    }
    return _show(plot_widget(lambda **t: plot_nms(image, boxes, scores, labels, class_names, **t), controls))
