"""Small input checks shared by the library, so that bad input fails with a message that says
what was expected, what arrived and how to fix it."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def check_tensor(x: object, name: str) -> Tensor:
    """Raise ``TypeError`` unless ``x`` is a tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_shape(x: Tensor, name: str, shape: Sequence[int | None], hint: str = "") -> Tensor:
    """Raise ``ValueError`` unless ``x.shape`` matches ``shape``, where ``None`` matches any size.

    >>> check_shape(torch.zeros(3, 4), "boxes", (None, 4))  # passes
    """
    check_tensor(x, name)
    ok = x.dim() == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape))
    if not ok:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        extra = f" {hint}" if hint else ""
        raise ValueError(f"{name} must have shape {want}{extra}, got {tuple(x.shape)}")
    return x


def check_boxes(boxes: Tensor, name: str = "boxes") -> Tensor:
    """Check ``boxes`` is ``Tensor[N, 4]`` in ``(x1, y1, x2, y2)`` with ``x2 >= x1``, ``y2 >= y1``."""
    check_shape(boxes, name, (None, 4), hint="in (x1, y1, x2, y2) format")
    if boxes.is_floating_point() and boxes.numel() and not bool(torch.isfinite(boxes).all()):
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    if boxes.numel():
        bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"{name}[{i}] = {boxes[i].tolist()} has x2 < x1 or y2 < y1; boxes must be (x1, y1, x2, y2) "
                "(use box_convert(boxes, in_fmt, 'xyxy') if they are in another format)"
            )
    return boxes


def check_same_device(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise ``ValueError`` when two tensors live on different devices."""
    if a.device != b.device:
        raise ValueError(f"{name_a} is on {a.device} but {name_b} is on {b.device}; move both to one device")
