"""Box coding: turning a box into regression targets relative to a reference box and back (lecture 8).

R-CNN does not regress raw corner coordinates. It regresses the *offset* of a ground-truth box relative to
a proposal (or anchor), measured in units of the proposal's size, and the *log* of the size ratio:

    dx = wx * (gx - px) / pw        dy = wy * (gy - py) / ph
    dw = ww * log(gw / pw)          dh = wh * log(gh / ph)

where ``(px, py, pw, ph)`` is the reference box as centre/size and ``(gx, gy, gw, gh)`` the target. The
weights ``(wx, wy, ww, wh)`` rescale the targets to roughly unit variance (Fast R-CNN's RoI head uses
``(10, 10, 5, 5)``, the RPN uses ``(1, 1, 1, 1)``). Decoding inverts this; ``dw``/``dh`` are clamped at
``log(1000 / 16)`` before ``exp`` so that an untrained network cannot produce infinite boxes.

Letters: N boxes, K classes (per-class deltas are laid out as ``(N, 4K)``).
Convention: boxes are ``(x1, y1, x2, y2)`` in pixels; width is ``x2 - x1``.

Mirrors ``torchvision.models.detection._utils.BoxCoder`` (``encode_single`` / ``decode_single``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from cvcourse._checks import check_boxes, check_same_device, check_shape, check_tensor

#: Default clamp for ``dw``/``dh`` before ``exp``: a box may grow at most 1000/16 times per decode.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h, w, h


def encode_boxes(
    reference_boxes: Tensor, proposals: Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)
) -> Tensor:
    """Regression targets that move each proposal onto its reference (ground-truth) box.

    Introduced in lecture 8 (R-CNN's box regression). Mirrors torchvision's ``BoxCoder.encode_single``.

    Args:
        reference_boxes (Tensor[N, 4]): the boxes to reach (ground truth), xyxy.
        proposals (Tensor[N, 4]): the boxes we start from (proposals or anchors), xyxy, positive size.
        weights (sequence of 4 floats): ``(wx, wy, ww, wh)`` multipliers of the four targets.

    Returns:
        Tensor[N, 4]: ``(dx, dy, dw, dh)`` per box.
    """
    check_boxes(reference_boxes, "reference_boxes")
    check_boxes(proposals, "proposals")
    check_same_device("reference_boxes", reference_boxes, "proposals", proposals)
    if reference_boxes.shape[0] != proposals.shape[0]:
        raise ValueError(
            f"reference_boxes and proposals must pair up one to one, got {reference_boxes.shape[0]} and "
            f"{proposals.shape[0]} boxes"
        )
    if len(weights) != 4:
        raise ValueError(f"weights must have 4 entries (wx, wy, ww, wh), got {len(weights)}")
    wx, wy, ww, wh = weights
    px, py, pw, ph = _centre_size(proposals.to(reference_boxes.dtype))
    gx, gy, gw, gh = _centre_size(reference_boxes)
    dx = wx * (gx - px) / pw
    dy = wy * (gy - py) / ph
    dw = ww * torch.log(gw / pw)
    dh = wh * torch.log(gh / ph)
    return torch.stack((dx, dy, dw, dh), dim=1)


def decode_boxes(
    deltas: Tensor,
    boxes: Tensor,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    clip: float = BBOX_XFORM_CLIP,
) -> Tensor:
    """Apply regression deltas to reference boxes; the inverse of :func:`encode_boxes`.

    Introduced in lecture 8. Mirrors torchvision's ``BoxCoder.decode_single`` (including the clamp of
    ``dw``/``dh`` at ``clip`` before ``exp``).

    Args:
        deltas (Tensor[N, 4K]): ``(dx, dy, dw, dh)`` for each box, optionally repeated for K classes.
        boxes (Tensor[N, 4]): reference boxes (proposals or anchors), xyxy.
        weights (sequence of 4 floats): the same weights that were used to encode.
        clip (float): upper bound on ``dw / ww`` and ``dh / wh`` before exponentiation.

    Returns:
        Tensor[N, 4K]: decoded xyxy boxes, one per class when ``K > 1``.
    """
    check_tensor(deltas, "deltas")
    check_boxes(boxes, "boxes")
    check_same_device("deltas", deltas, "boxes", boxes)
    if deltas.dim() != 2 or deltas.shape[1] % 4 != 0 or deltas.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"deltas must have shape (N, 4K) with N = {boxes.shape[0]} (one row per box), got {tuple(deltas.shape)}"
        )
    wx, wy, ww, wh = weights
    px, py, pw, ph = (t[:, None] for t in _centre_size(boxes.to(deltas.dtype)))  # (N,) -> (N, 1)
    dx = deltas[:, 0::4] / wx  # (N, K)
    dy = deltas[:, 1::4] / wy
    dw = (deltas[:, 2::4] / ww).clamp(max=clip)
    dh = (deltas[:, 3::4] / wh).clamp(max=clip)
    cx, cy = dx * pw + px, dy * ph + py
    w, h = torch.exp(dw) * pw, torch.exp(dh) * ph
    out = torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=2)  # (N, K, 4)
    return out.flatten(1)  # (N, K, 4) -> (N, 4K)


class BoxCoder:
    """Encode/decode with fixed weights, as a small object the RPN and RoI heads each hold one of.

    Args:
        weights (sequence of 4 floats): ``(wx, wy, ww, wh)``; ``(1, 1, 1, 1)`` for the RPN,
            ``(10, 10, 5, 5)`` for the Fast R-CNN head (torchvision's defaults).
        clip (float): clamp on ``dw``/``dh`` before ``exp`` when decoding.
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), clip: float = BBOX_XFORM_CLIP):
        if len(weights) != 4:
            raise ValueError(f"weights must have 4 entries (wx, wy, ww, wh), got {len(weights)}")
        self.weights = tuple(float(w) for w in weights)
        self.clip = clip

    def encode(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """See :func:`encode_boxes`: ``Tensor[N, 4], Tensor[N, 4] -> Tensor[N, 4]``."""
        return encode_boxes(reference_boxes, proposals, self.weights)

    def decode(self, deltas: Tensor, boxes: Tensor) -> Tensor:
        """See :func:`decode_boxes`: ``Tensor[N, 4K], Tensor[N, 4] -> Tensor[N, 4K]``."""
        return decode_boxes(deltas, boxes, self.weights, self.clip)

    def __repr__(self) -> str:
        return f"BoxCoder(weights={self.weights}, clip={self.clip:.3f})"
