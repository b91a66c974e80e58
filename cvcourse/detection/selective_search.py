"""Selective search: region proposals by hierarchical grouping of a superpixel segmentation (lecture 8).

R-CNN's first stage. Start from many small regions (Felzenszwalb's graph-based segmentation, here
``skimage.segmentation.felzenszwalb``), then repeatedly merge the two most similar *neighbouring* regions
until one region covers the image. Every region that ever exists — the small ones and every merge — gives
one bounding box; objects at any scale appear as some region along the way. Similarity is a sum of:

- **colour**: overlap (sum of element-wise minima) of 25-bin per-channel colour histograms;
- **texture**: overlap of histograms of gradient orientation (8 directions) x gradient strength (10 bins)
  per channel — a simplified stand-in for the paper's Gaussian-derivative SIFT-like histograms;
- **size**: ``1 - (size_a + size_b) / image_size``, so that small regions merge first everywhere;
- **fill**: ``1 - (bbox(a ∪ b) - size_a - size_b) / image_size``, so that regions that fit each other's
  holes merge first.

Histograms of a merged region are the size-weighted average of its parts, so they need not be recomputed
from pixels. This is a readable single-strategy version (one colour space, one ``scale``); the paper
diversifies over colour spaces and several ``k`` and ranks boxes with some randomness.

Letters: H, W image size; R regions; N boxes.
Convention: returned boxes are ``(x1, y1, x2, y2)`` in pixels, so a region covering pixel columns
``0..9`` has ``x1 = 0, x2 = 10``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import ndimage
from skimage.segmentation import felzenszwalb
from torch import Tensor

SIMILARITIES = ("colour", "texture", "size", "fill")
_COLOUR_BINS, _ORIENT_BINS, _MAG_BINS = 25, 8, 10


def _as_float_image(image) -> np.ndarray:
    if isinstance(image, Tensor):
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"image tensor must have shape (3, H, W) or (1, H, W), got {tuple(image.shape)}")
        image = image.detach().cpu().permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"image must be (H, W, 3) or (H, W) (or a (3, H, W) tensor), got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)


def _histograms(labels: np.ndarray, bins: np.ndarray, nbins: int, R: int) -> np.ndarray:
    """Per-region histograms: ``labels`` and ``bins`` (H, W, C) -> (R, C * nbins), each row summing to 1."""
    C = bins.shape[2]
    hist = np.zeros((R, C * nbins))
    for c in range(C):
        counts = np.bincount((labels * nbins + bins[..., c]).ravel(), minlength=R * nbins)
        hist[:, c * nbins:(c + 1) * nbins] = counts.reshape(R, nbins)  # (R*nbins,) -> (R, nbins)
    return hist / np.maximum(hist.sum(1, keepdims=True), 1)


def region_features(image, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Size, bounding box, colour and texture histograms of every region of a label image.

    Args:
        image: (H, W, 3) uint8 or float in [0, 1], or a (3, H, W) tensor.
        labels (np.ndarray[H, W]): region index 0..R-1 per pixel.

    Returns:
        dict with ``size`` (R,), ``box`` (R, 4) xyxy, ``colour`` (R, 75), ``texture`` (R, 240).
    """
    img = _as_float_image(image)
    R = int(labels.max()) + 1
    size = np.bincount(labels.ravel(), minlength=R).astype(np.float64)
    ys, xs = np.indices(labels.shape)
    box = np.stack([
        ndimage.minimum(xs, labels, np.arange(R)), ndimage.minimum(ys, labels, np.arange(R)),
        ndimage.maximum(xs, labels, np.arange(R)) + 1, ndimage.maximum(ys, labels, np.arange(R)) + 1,
    ], axis=1).astype(np.float64)
    colour_bins = np.minimum((img * _COLOUR_BINS).astype(np.int64), _COLOUR_BINS - 1)
    gy = np.stack([ndimage.gaussian_filter(img[..., c], 1.0, order=(1, 0)) for c in range(3)], axis=2)
    gx = np.stack([ndimage.gaussian_filter(img[..., c], 1.0, order=(0, 1)) for c in range(3)], axis=2)
    orient = ((np.arctan2(gy, gx) + np.pi) / (2 * np.pi) * _ORIENT_BINS).astype(np.int64) % _ORIENT_BINS
    mag = np.hypot(gx, gy)
    mag_bins = np.minimum((mag / max(mag.max(), 1e-12) * _MAG_BINS).astype(np.int64), _MAG_BINS - 1)
    texture_bins = orient * _MAG_BINS + mag_bins
    return {
        "size": size,
        "box": box,
        "colour": _histograms(labels, colour_bins, _COLOUR_BINS, R),
        "texture": _histograms(labels, texture_bins, _ORIENT_BINS * _MAG_BINS, R),
    }


def neighbour_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Pairs ``(a, b)`` with ``a < b`` of regions that touch horizontally or vertically."""
    pairs = set()
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        diff = a != b
        lo, hi = np.minimum(a[diff], b[diff]), np.maximum(a[diff], b[diff])
        pairs.update(zip(lo.tolist(), hi.tolist()))
    return pairs


def similarity(r: dict, a: int, b: int, image_size: float, use: Sequence[str] = SIMILARITIES) -> float:
    """The summed similarity of regions ``a`` and ``b`` (see the module docstring)."""
    s = 0.0
    if "colour" in use:
        s += float(np.minimum(r["colour"][a], r["colour"][b]).sum())
    if "texture" in use:
        s += float(np.minimum(r["texture"][a], r["texture"][b]).sum())
    if "size" in use:
        s += 1.0 - (r["size"][a] + r["size"][b]) / image_size
    if "fill" in use:
        ba, bb = r["box"][a], r["box"][b]
        union = (max(ba[2], bb[2]) - min(ba[0], bb[0])) * (max(ba[3], bb[3]) - min(ba[1], bb[1]))
        s += 1.0 - (union - r["size"][a] - r["size"][b]) / image_size
    return s


def hierarchical_grouping(
    image, labels: np.ndarray, similarities: Sequence[str] = SIMILARITIES
) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Greedily merge the most similar neighbouring regions until one is left.

    Args:
        image: the image the regions come from; labels (np.ndarray[H, W]): initial regions 0..R-1.
        similarities: which of ``"colour", "texture", "size", "fill"`` to add up.

    Returns:
        (boxes, merges): ``boxes`` (np.ndarray[R + M, 4]) of the initial regions then of each merged one, and
        ``merges``, a list of ``(a, b, new)`` region indices in merge order.
    """
    unknown = set(similarities) - set(SIMILARITIES)
    if unknown or not similarities:
        raise ValueError(f"similarities must be a non-empty subset of {SIMILARITIES}, got {tuple(similarities)}")
    r = region_features(image, labels)
    R = len(r["size"])
    # room for R - 1 merges
    for key in r:
        r[key] = np.concatenate([r[key], np.zeros((R - 1,) + r[key].shape[1:])])
    area = float(labels.size)
    neighbours: dict[int, set[int]] = {i: set() for i in range(R)}
    sims: dict[tuple[int, int], float] = {}
    for a, b in neighbour_pairs(labels):
        neighbours[a].add(b)
        neighbours[b].add(a)
        sims[(a, b)] = similarity(r, a, b, area, similarities)
    merges, new = [], R
    while sims:
        a, b = max(sims, key=sims.get)
        sa, sb = r["size"][a], r["size"][b]
        r["size"][new] = sa + sb
        r["box"][new] = [min(r["box"][a][0], r["box"][b][0]), min(r["box"][a][1], r["box"][b][1]),
                         max(r["box"][a][2], r["box"][b][2]), max(r["box"][a][3], r["box"][b][3])]
        for key in ("colour", "texture"):
            r[key][new] = (sa * r[key][a] + sb * r[key][b]) / (sa + sb)
        nb = (neighbours.pop(a) | neighbours.pop(b)) - {a, b}
        for n in nb:
            neighbours[n] -= {a, b}
            neighbours[n].add(new)
            sims.pop((min(a, n), max(a, n)), None)
            sims.pop((min(b, n), max(b, n)), None)
            sims[(n, new)] = similarity(r, n, new, area, similarities)
        sims.pop((a, b), None)
        neighbours[new] = nb
        merges.append((a, b, new))
        new += 1
    return r["box"][:new], merges


def selective_search(
    image,
    scale: float = 100.0,
    sigma: float = 0.8,
    min_size: int = 20,
    similarities: Sequence[str] = SIMILARITIES,
    min_box_size: float = 4.0,
) -> Tensor:
    """Region proposals for R-CNN: boxes of all regions met while grouping Felzenszwalb superpixels.

    Introduced in lecture 8. There is no torchvision equivalent (OpenCV's contrib module
    ``cv2.ximgproc.segmentation.createSelectiveSearchSegmentation`` implements the full method).

    Args:
        image: (H, W, 3) uint8 or float in [0, 1], (H, W) grey, or a (3, H, W) float tensor.
        scale, sigma, min_size: ``skimage.segmentation.felzenszwalb`` parameters (larger ``scale``, fewer and
            larger initial regions).
        similarities: which similarity terms to add up.
        min_box_size (float): boxes narrower or shorter than this (pixels) are dropped.

    Returns:
        Tensor[N, 4] (float32): unique xyxy boxes, initial regions first, then merges in order.
    """
    img = _as_float_image(image)
    labels = felzenszwalb(img, scale=scale, sigma=sigma, min_size=min_size)
    labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)  # relabel 0..R-1
    boxes, _ = hierarchical_grouping(img, labels, similarities)
    wide = ((boxes[:, 2] - boxes[:, 0]) >= min_box_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_box_size)
    boxes = boxes[wide]
    _, first = np.unique(boxes, axis=0, return_index=True)
    return torch.as_tensor(boxes[np.sort(first)], dtype=torch.float32)
