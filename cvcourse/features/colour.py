"""Colour histograms: the simplest image descriptor, a baseline for lecture 6's transfer learning.

Letters: B batch, H, W image size, K = bins ** 3 histogram cells.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["colour_histogram"]


def colour_histogram(images: Tensor, bins: int = 4) -> Tensor:
    """Joint RGB histogram of each image, normalised to sum to 1 (lecture 6).

    Each channel in [0, 1] is cut into ``bins`` equal intervals (1.0 falls in the last one); a pixel counts in
    the cell of its (r, g, b) intervals. Layout matches ``numpy.histogramdd`` of the pixels with ``bins`` equal
    bins per axis over [0, 1], flattened in C order (red slowest).

    Args:
        images (Tensor[B, 3, H, W]): float images in [0, 1].
        bins: intervals per channel.

    Returns:
        Tensor[B, bins ** 3], float32, each row summing to 1.

    Raises:
        ValueError: for a shape other than (B, 3, H, W), values outside [0, 1] or ``bins < 1``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"images must be in [0, 1], got values in [{images.min():.3g}, {images.max():.3g}]")
    b = images.shape[0]
    idx = (images * bins).long().clamp(max=bins - 1)  # (B, 3, H, W) interval of each channel
    cell = (idx[:, 0] * bins + idx[:, 1]) * bins + idx[:, 2]  # (B, H, W) joint cell
    cell = cell.flatten(1) + torch.arange(b, device=images.device)[:, None] * bins ** 3  # offset per image
    counts = torch.bincount(cell.flatten(), minlength=b * bins ** 3).reshape(b, bins ** 3).float()
    return counts / counts.sum(1, keepdim=True).clamp(min=1)
