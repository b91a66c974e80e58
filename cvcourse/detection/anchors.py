"""Anchor boxes for the Region Proposal Network (lecture 9, Faster R-CNN).

An anchor is a fixed reference box placed at every position of the feature map. For each position the
RPN predicts "is there an object in this anchor?" and "how should this anchor move to fit it?" (deltas,
see :mod:`cvcourse.detection.box_coder`). With ``S`` sizes and ``R`` aspect ratios there are
``A = S * R`` anchors per position and ``h * w * A`` in all.

Letters: A anchors per position, h, w feature-map height/width, H, W image height/width.
Convention: boxes are ``(x1, y1, x2, y2)`` in image pixels. An anchor of size ``s`` and ratio ``r = h / w``
has width ``s / sqrt(r)`` and height ``s * sqrt(r)`` (same area ``s**2``), rounded to whole pixels, and is
centred on ``(x * stride_w, y * stride_h)`` — the top-left corner of the feature-map cell, exactly as in
``torchvision.models.detection.anchor_utils.AnchorGenerator``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class AnchorGenerator(nn.Module):
    """Place ``A = len(sizes) * len(aspect_ratios)`` anchors at every cell of one feature map.

    Introduced in lecture 9. Mirrors ``torchvision.models.detection.anchor_utils.AnchorGenerator`` for a
    single feature map (torchvision takes one tuple of sizes per map of a feature pyramid); the anchor
    order is the same, so the two agree element for element.

    Args:
        sizes (sequence of float): anchor side lengths in image pixels (square root of the area).
        aspect_ratios (sequence of float): height / width ratios.

    Example:
        >>> gen = AnchorGenerator(sizes=(16, 32), aspect_ratios=(0.5, 1.0, 2.0))
        >>> gen((64, 64), (8, 8)).shape  # 8 * 8 positions * 6 anchors
        torch.Size([384, 4])
    """

    def __init__(self, sizes: Sequence[float] = (32, 64, 128), aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)):
        super().__init__()
        if len(sizes) == 0 or len(aspect_ratios) == 0:
            raise ValueError("sizes and aspect_ratios must each list at least one value")
        if min(sizes) <= 0 or min(aspect_ratios) <= 0:
            raise ValueError(f"sizes and aspect_ratios must be positive, got {tuple(sizes)} and {tuple(aspect_ratios)}")
        self.sizes = tuple(float(s) for s in sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)

    @property
    def num_anchors_per_location(self) -> int:
        """``A``: how many anchors sit at each feature-map position."""
        return len(self.sizes) * len(self.aspect_ratios)

    def cell_anchors(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
        """The ``A`` anchors centred on ``(0, 0)``, ratios outer and sizes inner.

        Returns:
            Tensor[A, 4]: xyxy boxes centred on the origin.
        """
        scales = torch.tensor(self.sizes, dtype=dtype, device=device)
        ratios = torch.tensor(self.aspect_ratios, dtype=dtype, device=device)
        h_ratios = torch.sqrt(ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)  # (R, S) -> (A,)
        hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)  # (R, S) -> (A,)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()

    def forward(
        self,
        image_size: tuple[int, int],
        feature_size: tuple[int, int],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """All anchors of an image whose feature map has ``feature_size``.

        Args:
            image_size (tuple[int, int]): ``(H, W)`` of the input image.
            feature_size (tuple[int, int]): ``(h, w)`` of the feature map; the stride is ``H // h``, ``W // w``.
            dtype, device: of the returned tensor.

        Returns:
            Tensor[h * w * A, 4]: anchors ordered by row, then column, then anchor type.
        """
        (H, W), (h, w) = tuple(image_size), tuple(feature_size)
        if h <= 0 or w <= 0 or h > H or w > W:
            raise ValueError(f"feature_size {(h, w)} must be positive and no larger than image_size {(H, W)}")
        stride_h, stride_w = H // h, W // w
        shifts_x = torch.arange(w, dtype=dtype, device=device) * stride_w
        shifts_y = torch.arange(h, dtype=dtype, device=device) * stride_h
        sy, sx = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
        shifts = torch.stack((sx, sy, sx, sy), dim=-1).reshape(-1, 1, 4)  # (h, w, 4) -> (h*w, 1, 4)
        base = self.cell_anchors(dtype, device).reshape(1, -1, 4)  # (A, 4) -> (1, A, 4)
        return (shifts + base).reshape(-1, 4)  # (h*w, A, 4) -> (h*w*A, 4)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, aspect_ratios={self.aspect_ratios}"
