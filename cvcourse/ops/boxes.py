"""Boxes: areas, format conversion, IoU and generalised IoU (lecture 8, object detection: R-CNN and IoU), clipping
and dropping small boxes (lecture 9, the proposal filter of Faster R-CNN).

Letters used in shapes: N, M = numbers of boxes.

Convention: a box is ``(x1, y1, x2, y2)`` in pixels, in continuous coordinates, with ``x2 >= x1`` and
``y2 >= y1``; its area is ``(x2 - x1) * (y2 - y1)``. Other formats (``xywh``, ``cxcywh``) exist only at
the edges of a program: convert with :func:`box_convert` and work in ``xyxy``.

Every function mirrors the function of the same name in ``torchvision.ops`` and returns the same values,
with one deliberate deviation: a pair of zero-area boxes has IoU (and GIoU) 0 here, where torchvision
returns NaN from 0 / 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cvcourse._checks import check_boxes, check_same_device, check_tensor

__all__ = ["box_area", "box_convert", "box_iou", "generalized_box_iou", "clip_boxes_to_image", "remove_small_boxes"]

_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_numeric(boxes: Tensor, name: str) -> None:
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{name} must hold real numbers (float or integer), got dtype {boxes.dtype}")


def _upcast(t: Tensor) -> Tensor:
    """Widen before multiplying, like torchvision: float16/bfloat16 -> float32, small integers -> int32."""
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def box_area(boxes: Tensor) -> Tensor:
    """Area of each box, ``(x2 - x1) * (y2 - y1)``.

    Introduced in lecture 8 (IoU). Mirrors ``torchvision.ops.box_area``.

    Args:
        boxes (Tensor[N, 4]): boxes in ``(x1, y1, x2, y2)`` format, float or integer.

    Returns:
        Tensor[N]: the areas; float16 is widened to float32 and int8/int16/uint8 to int32, like
        torchvision, so that the products do not overflow.

    Raises:
        TypeError: ``boxes`` is not a real-valued tensor.
        ValueError: wrong shape, NaN coordinates or ``x2 < x1`` / ``y2 < y1``.
    """
    check_tensor(boxes, "boxes")
    _check_numeric(boxes, "boxes")
    check_boxes(boxes, "boxes")
    boxes = _upcast(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between ``"xyxy"``, ``"xywh"`` (corner and size) and ``"cxcywh"`` (centre and size).

    Introduced in lecture 8 (bounding boxes). Mirrors ``torchvision.ops.box_convert``.

    Args:
        boxes (Tensor[N, 4]): boxes in ``in_fmt``; any leading shape ``(..., 4)`` is accepted.
        in_fmt (str): one of ``"xyxy"``, ``"xywh"``, ``"cxcywh"``.
        out_fmt (str): one of the same.

    Returns:
        Tensor[N, 4]: the boxes in ``out_fmt``. Conversions to or from ``cxcywh`` halve sizes, so
        integer boxes come back as float there (as in torchvision); otherwise the dtype is kept.

    Raises:
        ValueError: unknown format or last dimension not 4.
    """
    check_tensor(boxes, "boxes")
    _check_numeric(boxes, "boxes")
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in _FORMATS:
            raise ValueError(f"{name} must be one of {_FORMATS}, got {fmt!r}")
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    if in_fmt == out_fmt:
        return boxes.clone()

    a, b, c, d = boxes.unbind(-1)
    # First to xyxy ...
    if in_fmt == "xywh":  # (x1, y1, w, h)
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":  # (cx, cy, w, h)
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    # ... then from xyxy.
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), dim=-1)


def _inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Pairwise intersection and union areas, each ``Tensor[N, M]`` (widened with :func:`_upcast`).

    Works per coordinate axis (no ``(N, M, 2)`` intermediates), which is both easy to read and fast.
    """
    b1, b2 = _upcast(boxes1), _upcast(boxes2)
    if b1.dtype != b2.dtype:  # e.g. float32 vs float64: compute in the wider type
        common = torch.promote_types(b1.dtype, b2.dtype)
        b1, b2 = b1.to(common), b2.to(common)
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])  # (N,)
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])  # (M,)
    # Overlap of the x-intervals and of the y-intervals, clamped at 0 when they are disjoint.
    w = (torch.minimum(b1[:, None, 2], b2[None, :, 2]) - torch.maximum(b1[:, None, 0], b2[None, :, 0])).clamp_(min=0)  # (N, M)
    h = (torch.minimum(b1[:, None, 3], b2[None, :, 3]) - torch.maximum(b1[:, None, 1], b2[None, :, 1])).clamp_(min=0)  # (N, M)
    inter = w.mul_(h)
    union = (area1[:, None] + area2[None, :]) - inter  # same order of operations as torchvision
    return inter, union


def _check_pair(boxes1: Tensor, boxes2: Tensor) -> None:
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        check_tensor(b, name)
        _check_numeric(b, name)
        check_boxes(b, name)
    check_same_device("boxes1", boxes1, "boxes2", boxes2)


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` (true division, so integer areas give float32) with 0 where ``den == 0`` instead of NaN."""
    q = num / den
    return torch.where(den > 0, q, torch.zeros((), dtype=q.dtype, device=q.device))


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair of boxes: ``area(A & B) / area(A | B)``.

    Introduced in lecture 8 (IoU, used to match proposals to objects and in NMS). Mirrors
    ``torchvision.ops.box_iou``. Deviation: pairs whose union has zero area (two degenerate boxes)
    get IoU 0; torchvision returns NaN for them.

    Args:
        boxes1 (Tensor[N, 4]): boxes in ``(x1, y1, x2, y2)`` format.
        boxes2 (Tensor[M, 4]): boxes in ``(x1, y1, x2, y2)`` format, on the same device.

    Returns:
        Tensor[N, M]: IoU in ``[0, 1]``; float64 for float64 input, float32 otherwise (float16 and
        integer boxes are computed in float32, as in torchvision).

    Raises:
        TypeError: an argument is not a real-valued tensor.
        ValueError: wrong shape, NaN coordinates, ``x2 < x1`` or boxes on different devices.
    """
    _check_pair(boxes1, boxes2)
    inter, union = _inter_union(boxes1, boxes2)
    return _safe_div(inter, union)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Generalised IoU (Rezatofighi et al., 2019): ``IoU - area(C \\ (A | B)) / area(C)``, where C is the
    smallest box enclosing both A and B. Lies in ``[-1, 1]`` and, unlike IoU, still tells disjoint boxes
    apart by how far they are from each other, which makes ``1 - GIoU`` usable as a box regression loss.

    Introduced in lecture 8 (IoU). Mirrors ``torchvision.ops.generalized_box_iou``. Deviation: when the
    enclosing box has zero area (degenerate boxes on one line or point), the penalty term is 0 instead
    of NaN, so such pairs get GIoU equal to their IoU (0).

    Args:
        boxes1 (Tensor[N, 4]): boxes in ``(x1, y1, x2, y2)`` format.
        boxes2 (Tensor[M, 4]): boxes in ``(x1, y1, x2, y2)`` format, on the same device.

    Returns:
        Tensor[N, M]: GIoU in ``[-1, 1]`` (dtype as for :func:`box_iou`).
    """
    _check_pair(boxes1, boxes2)
    inter, union = _inter_union(boxes1, boxes2)
    iou = _safe_div(inter, union)
    b1, b2 = _upcast(boxes1).to(iou.dtype), _upcast(boxes2).to(iou.dtype)
    # Enclosing box C of each pair.
    w = torch.maximum(b1[:, None, 2], b2[None, :, 2]) - torch.minimum(b1[:, None, 0], b2[None, :, 0])  # (N, M)
    h = torch.maximum(b1[:, None, 3], b2[None, :, 3]) - torch.minimum(b1[:, None, 1], b2[None, :, 1])  # (N, M)
    area_c = w * h
    return iou - _safe_div(area_c - union, area_c)


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clamp boxes to the image: x to ``[0, W]``, y to ``[0, H]``.

    Introduced in lecture 9 (decoded proposals and detections may leave the image). Mirrors
    ``torchvision.ops.clip_boxes_to_image``, also for any leading dimensions.

    Args:
        boxes (Tensor[..., 4]): boxes in ``(x1, y1, x2, y2)`` format, e.g. ``(N, 4)`` or ``(N, K, 4)``.
        size (tuple[int, int]): ``(H, W)`` of the image.

    Returns:
        Tensor[..., 4]: the clamped boxes, same shape and dtype.

    Raises:
        TypeError: ``boxes`` is not a real-valued tensor.
        ValueError: the last dimension is not 4, or ``size`` is not two numbers.
    """
    check_tensor(boxes, "boxes")
    _check_numeric(boxes, "boxes")
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (..., 4) in (x1, y1, x2, y2) format, got {tuple(boxes.shape)}")
    if len(size) != 2:
        raise ValueError(f"size must be (H, W), got {size!r}")
    h, w = size
    x = boxes[..., 0::2].clamp(min=0, max=w)  # (..., 2): x1, x2
    y = boxes[..., 1::2].clamp(min=0, max=h)  # (..., 2): y1, y2
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)  # (..., 2, 2) -> (..., 4): x1, y1, x2, y2


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes whose width and height are both at least ``min_size``.

    Introduced in lecture 9 (the RPN's proposal filter). Mirrors ``torchvision.ops.remove_small_boxes``.

    Args:
        boxes (Tensor[N, 4]): boxes in ``(x1, y1, x2, y2)`` format.
        min_size (float): smallest width and height kept (pixels).

    Returns:
        Tensor[K] (int64): indices of the kept boxes, in increasing order.

    Raises:
        TypeError: ``boxes`` is not a real-valued tensor.
        ValueError: ``boxes`` is not ``(N, 4)``.
    """
    check_tensor(boxes, "boxes")
    _check_numeric(boxes, "boxes")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) in (x1, y1, x2, y2) format, got {tuple(boxes.shape)}")
    ws, hs = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.nonzero((ws >= min_size) & (hs >= min_size)).flatten()
