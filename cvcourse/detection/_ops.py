"""Box and RoI operations used by the detectors.

The course's own ``cvcourse.ops`` (lectures 8–9) provides these with torchvision's signatures; until it is
importable (or if it lacks a function) we fall back to ``torchvision.ops``, which has the same semantics.
"""

from __future__ import annotations

import torchvision.ops as _tv

try:  # pragma: no cover - depends on which parts of the course are installed
    import cvcourse.ops as _course
except ImportError:  # pragma: no cover
    _course = None


def _pick(name: str):
    fn = getattr(_course, name, None) if _course is not None else None
    return fn if callable(fn) else getattr(_tv, name)


box_area = _pick("box_area")
box_iou = _pick("box_iou")
box_convert = _pick("box_convert")
nms = _pick("nms")
batched_nms = _pick("batched_nms")
roi_align = _pick("roi_align")
roi_pool = _pick("roi_pool")

__all__ = ["box_area", "box_iou", "box_convert", "nms", "batched_nms", "roi_align", "roi_pool"]
