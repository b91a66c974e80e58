"""Synthetic "shapes" data sets: one scene generator, three tasks (classification, segmentation,
detection). Used by the CNN, segmentation and detection lectures as an offline stand-in for real data.

Letters: S = image size (height = width), K = number of visible shapes in a scene.

Convention: images are float ``(3, S, S)`` in ``[0, 1]``. Pixel ``(row i, column j)`` covers the square
``[j, j + 1] x [i, i + 1]`` in continuous coordinates, so the tight box of a mask is
``(x1, y1, x2, y2) = (min j, min i, max j + 1, max i + 1)`` and its area counts whole pixels.

A scene is a pure function of ``(seed, index)``: item ``i`` is drawn from
``numpy.random.default_rng([seed, i])``, so any item can be generated in any order (also in
``DataLoader`` workers) and two data sets with the same arguments hold identical tensors.

How a scene is drawn (all vectorised over the pixel grid, no per-pixel Python loop):

1. a background: a random crop of a scikit-image texture (brick, grass, gravel) at a random scale and
   tint (``"texture"``), smooth colour noise (``"noise"``) or a flat colour (``"plain"``);
2. shapes one after the other, each with a random class, size, position, rotation and colour (the
   colour is independent of the class, so it cannot give the class away). A later shape occludes the
   earlier ones; a placement that would hide more than half of an earlier shape is redrawn;
3. a soft shading gradient on each shape and Gaussian pixel noise (``noise_std``) on everything.

The visible part of each shape gives the instance masks, the semantic mask and the tight boxes, so the
three targets always agree with each other and with the pixels.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from cvcourse.data.photos import TEXTURE_NAMES, load_photo

#: Shape classes; segmentation class ``k + 1`` and detection label ``k + 1`` mean ``SHAPE_CLASSES[k]``.
SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star")

BACKGROUNDS = ("texture", "noise", "plain")

# Circumradius of each class for an "equal-area radius" r (a circle of radius r has the same area), so
# that the size of a shape does not give its class away either.
_STAR_INNER = 0.45  # inner / outer radius of the five-pointed star
_CIRCUMRADIUS = {
    "circle": 1.0,
    "square": math.sqrt(math.pi / 2.0),  # area 2 R^2
    "triangle": math.sqrt(math.pi / (3.0 * math.sqrt(3.0) / 4.0)),  # area (3 sqrt 3 / 4) R^2
    "star": math.sqrt(math.pi / (5.0 * _STAR_INNER * math.sin(math.pi / 5.0))),  # area 5 R r sin 36 deg
}


@dataclass
class Scene:
    """One generated scene.

    Attributes:
        image (np.ndarray[3, S, S]): float32 in [0, 1].
        masks (np.ndarray[K, S, S]): bool, visible part of each shape, in drawing order.
        labels (np.ndarray[K]): int64 class index ``0..3`` into :data:`SHAPE_CLASSES`.
        params (list[dict]): per shape, the :func:`shape_mask` arguments ``kind, cx, cy, radius, angle``
            (the full, unoccluded shape is ``shape_mask(**params[k], size=S)``).
    """

    image: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    params: list


@functools.lru_cache(maxsize=None)
def _texture(name: str) -> np.ndarray:
    """A grey texture as float32 (H, W), zero mean and unit standard deviation (cached after first use)."""
    tex = load_photo(name)[:, :, 0].astype(np.float32)
    return (tex - tex.mean()) / (tex.std() + 1e-6)


def shape_mask(kind: str, cx: float, cy: float, radius: float, angle: float, size: int | tuple[int, int]) -> np.ndarray:
    """Rasterise one filled shape on the pixel grid (a pixel is inside when its centre is).

    Args:
        kind: one of :data:`SHAPE_CLASSES`.
        cx, cy: centre in pixels (continuous coordinates).
        radius: equal-area radius in pixels (the shape has the area of a circle of this radius).
        angle: rotation in radians.
        size: ``S`` or ``(H, W)`` of the grid.

    Returns:
        np.ndarray[H, W] of bool.
    """
    if kind not in SHAPE_CLASSES:
        raise ValueError(f"kind must be one of {SHAPE_CLASSES}, got {kind!r}")
    h, w = (size, size) if isinstance(size, int) else size
    dy = np.arange(h, dtype=np.float32)[:, None] + 0.5 - cy  # (H, 1)
    dx = np.arange(w, dtype=np.float32)[None, :] + 0.5 - cx  # (1, W)
    rho = np.sqrt(dx * dx + dy * dy)  # (H, W)
    big_r = radius * _CIRCUMRADIUS[kind]
    if kind == "circle":
        return rho <= big_r
    phi = np.arctan2(dy, dx) - angle  # polar angle in the shape's own frame
    if kind in ("square", "triangle"):
        n = 4 if kind == "square" else 3
        sector = 2.0 * math.pi / n
        t = np.mod(phi, sector)  # fold onto one edge
        # distance from the centre to the edge along the ray is R cos(pi/n) / cos(t - pi/n)
        return rho * np.cos(t - sector / 2.0) <= big_r * math.cos(math.pi / n)
    # star: fold onto the half-sector between an outer tip (t = 0) and an inner corner (t = pi/5)
    sector = 2.0 * math.pi / 5.0
    t = np.mod(phi, sector)
    t = np.minimum(t, sector - t)
    r_in = big_r * _STAR_INNER
    s36, c36 = math.sin(math.pi / 5.0), math.cos(math.pi / 5.0)
    nx, ny = r_in * s36, big_r - r_in * c36  # normal of the tip-to-corner edge
    return rho * (nx * np.cos(t) + ny * np.sin(t)) <= big_r * r_in * s36


def _background(rng: np.random.Generator, size: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Return a (3, S, S) float32 background and its mean colour (3,)."""
    colour = rng.uniform(0.15, 0.85, size=3).astype(np.float32)
    if kind == "plain":
        bg = np.broadcast_to(colour[:, None, None], (3, size, size)).copy()
    elif kind == "noise":
        coarse = torch.from_numpy(rng.normal(0.0, 1.0, size=(1, 3, 4, 4)).astype(np.float32))
        smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0]
        bg = colour[:, None, None] + 0.12 * smooth.numpy()
    else:
        tex = _texture(TEXTURE_NAMES[rng.integers(len(TEXTURE_NAMES))])
        stride = int(rng.integers(1, max(1, min(3, tex.shape[0] // size)) + 1))
        span = size * stride
        if span > min(tex.shape):  # very large images: tile the texture
            reps = span // min(tex.shape) + 1
            tex = np.tile(tex, (reps, reps))
        y0 = int(rng.integers(tex.shape[0] - span + 1))
        x0 = int(rng.integers(tex.shape[1] - span + 1))
        patch = tex[y0 : y0 + span : stride, x0 : x0 + span : stride]  # (S, S)
        tint = rng.uniform(0.6, 1.0, size=3).astype(np.float32)
        contrast = rng.uniform(0.08, 0.18)
        bg = colour[:, None, None] + contrast * tint[:, None, None] * patch[None]
    return bg.astype(np.float32), colour


def _shape_colour(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """A random RGB colour at least 0.35 away (Euclidean) from the background colour."""
    colour = rng.uniform(0.0, 1.0, size=3)
    for _ in range(20):
        if np.linalg.norm(colour - avoid) >= 0.35:
            break
        colour = rng.uniform(0.0, 1.0, size=3)
    return colour.astype(np.float32)


def render_scene(
    rng: np.random.Generator,
    image_size: int = 64,
    *,
    min_shapes: int = 1,
    max_shapes: int = 4,
    size_range: tuple[float, float] = (0.08, 0.2),
    background: str = "texture",
    noise_std: float = 0.04,
    dominant: bool = False,
) -> Scene:
    """Draw one random scene; the single generator behind all shapes data sets.

    Args:
        rng: the random generator (the data sets pass ``numpy.random.default_rng([seed, index])``).
        image_size: ``S``; the image is ``S x S``.
        min_shapes, max_shapes: number of shapes drawn (inclusive range).
        size_range: equal-area radius of a shape as a fraction of ``S``.
        background: ``"texture"``, ``"noise"`` or ``"plain"``.
        noise_std: standard deviation of the Gaussian pixel noise added at the end.
        dominant: if True the last shape is a large one (radius ``1.3x`` to ``1.7x`` the upper size),
            drawn on top of smaller distractors and entirely inside the image; used for classification.

    Returns:
        :class:`Scene` with the image, the visible instance masks and the 0-based labels.
    """
    size = int(image_size)
    if size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    if not 1 <= min_shapes <= max_shapes:
        raise ValueError(f"need 1 <= min_shapes <= max_shapes, got min_shapes={min_shapes}, max_shapes={max_shapes}")
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    lo, hi = size_range
    if not 0.0 < lo <= hi <= 0.5:
        raise ValueError(f"size_range must satisfy 0 < low <= high <= 0.5 (fractions of image_size), got {size_range}")

    image, bg_colour = _background(rng, size, background)
    n = int(rng.integers(min_shapes, max_shapes + 1))
    yy = (np.arange(size, dtype=np.float32)[:, None] + 0.5) / size - 0.5  # (S, 1)
    xx = (np.arange(size, dtype=np.float32)[None, :] + 0.5) / size - 0.5  # (1, S)

    full: list[np.ndarray] = []
    labels: list[int] = []
    params: list[dict] = []
    full_area: list[int] = []
    min_pixels = 4
    for k in range(n):
        big = dominant and k == n - 1
        label = int(rng.integers(len(SHAPE_CLASSES)))
        for _attempt in range(10):
            frac = rng.uniform(1.3 * hi, 1.7 * hi) if big else rng.uniform(lo, hi)
            radius = frac * size
            outer = radius * _CIRCUMRADIUS[SHAPE_CLASSES[label]]
            margin = min(outer, 0.5 * size) if big else 0.7 * outer  # small shapes may stick out a little
            cx, cy = rng.uniform(margin, size - margin, size=2)
            angle = rng.uniform(0.0, 2.0 * math.pi)
            mask = shape_mask(SHAPE_CLASSES[label], cx, cy, radius, angle, size)
            area = int(mask.sum())
            if area < min_pixels:
                continue
            # keep at least half of every earlier shape visible (the dominant shape may cover more)
            if big or all(
                int((m & ~mask).sum()) >= max(min_pixels, a // 2) for m, a in zip(full, full_area)
            ):
                break
        else:
            continue  # no good placement found: draw one shape fewer
        colour = _shape_colour(rng, bg_colour)
        gx, gy = rng.normal(0.0, 1.0, size=2)
        shade = 1.0 + rng.uniform(0.0, 0.3) * (gx * xx + gy * yy)  # (S, S) soft lighting gradient
        fill = np.clip(colour[:, None, None] * shade[None], 0.0, 1.0)  # (3, S, S)
        image = np.where(mask[None], fill, image)
        full.append(mask)
        labels.append(label)
        params.append(dict(kind=SHAPE_CLASSES[label], cx=float(cx), cy=float(cy), radius=float(radius), angle=float(angle)))
        full_area.append(area)
        full = [m & ~mask for m in full[:-1]] + [mask]  # earlier shapes keep only their visible part

    if noise_std > 0:
        image = image + rng.normal(0.0, noise_std, size=image.shape).astype(np.float32)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    masks = np.stack(full) if full else np.zeros((0, size, size), dtype=bool)
    keep = masks.reshape(len(masks), -1).any(axis=1)  # drop fully hidden shapes
    return Scene(
        image=image,
        masks=masks[keep],
        labels=np.asarray(labels, dtype=np.int64)[keep],
        params=[p for p, k in zip(params, keep) if k],
    )


def masks_to_boxes(masks: Tensor) -> Tensor:
    """Tight boxes around binary masks, in pixel-edge coordinates.

    Mirrors ``torchvision.ops.masks_to_boxes`` with one deviation: ``x2, y2`` are one past the last
    pixel (``max index + 1``), so a one-pixel mask has area 1 and boxes match this module's pixel
    convention. Empty masks give the box ``(0, 0, 0, 0)``.

    Args:
        masks (Tensor[K, H, W]): any dtype; non-zero means inside.

    Returns:
        Tensor[K, 4] float32 boxes ``(x1, y1, x2, y2)``.
    """
    if masks.dim() != 3:
        raise ValueError(f"masks must have shape (K, H, W), got {tuple(masks.shape)}")
    k, h, w = masks.shape
    if k == 0:
        return torch.zeros((0, 4), dtype=torch.float32, device=masks.device)
    m = masks != 0
    cols = m.any(dim=1)  # (K, W)
    rows = m.any(dim=2)  # (K, H)
    x1 = cols.float().argmax(dim=1)
    x2 = w - cols.flip(1).float().argmax(dim=1)
    y1 = rows.float().argmax(dim=1)
    y2 = h - rows.flip(1).float().argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()  # (K, 4)
    return boxes * cols.any(dim=1, keepdim=True)


def _boxes_numpy(masks: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`masks_to_boxes` for bool masks (K, H, W) (faster on small CPU batches)."""
    k, h, w = masks.shape
    cols = masks.any(axis=1)  # (K, W)
    rows = masks.any(axis=2)  # (K, H)
    x1 = cols.argmax(axis=1)
    x2 = w - cols[:, ::-1].argmax(axis=1)
    y1 = rows.argmax(axis=1)
    y2 = h - rows[:, ::-1].argmax(axis=1)
    boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)  # (K, 4)
    return boxes * cols.any(axis=1, keepdims=True)


class _ShapesBase(Dataset):
    """Common arguments and bookkeeping of the shapes data sets."""

    _dominant = False  # classification draws one large labelled shape on top

    def __init__(
        self,
        n: int,
        image_size: int,
        seed: int,
        min_shapes: int,
        max_shapes: int,
        background: str,
        noise_std: float,
        size_range: Sequence[float],
    ) -> None:
        if int(n) < 0:
            raise ValueError(f"n (the number of items) must be >= 0, got {n}")
        self.n = int(n)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.options = dict(
            min_shapes=int(min_shapes),
            max_shapes=int(max_shapes),
            size_range=(float(size_range[0]), float(size_range[1])),
            background=background,
            noise_std=float(noise_std),
        )
        # fail early on bad options, not inside a DataLoader worker
        render_scene(np.random.default_rng(0), self.image_size, dominant=self._dominant, **self.options)

    def __len__(self) -> int:
        return self.n

    def scene(self, index: int) -> Scene:
        """The raw :class:`Scene` (numpy arrays) of item ``index``."""
        if index < 0:
            index += self.n
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for a data set of {self.n} items")
        rng = np.random.default_rng([self.seed, index])
        return render_scene(rng, self.image_size, dominant=self._dominant, **self.options)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}(n={self.n}, image_size={self.image_size}, seed={self.seed}, {opts})"


class ShapesClassification(_ShapesBase):
    """Classify the dominant shape of an image: circle, square, triangle or star.

    Introduced in the CNN lectures. The labelled shape is drawn last, large and on top; with
    ``max_shapes > 1`` smaller distractor shapes of any class are drawn behind it.

    Args:
        n: number of items.
        image_size: ``S``.
        seed: items are a pure function of ``(seed, index)``.
        min_shapes, max_shapes: shapes per image, the dominant one included (default exactly one).
        background: ``"texture"``, ``"noise"`` or ``"plain"``.
        noise_std: Gaussian pixel noise.
        size_range: equal-area radius range of the distractors as a fraction of ``S``; the dominant
            shape's radius is 1.3 to 1.7 times the upper end.

    Items:
        ``(image, label)``: image Tensor[3, S, S] float32 in [0, 1], label int64 scalar in ``0..3``.
    """

    _dominant = True

    def __init__(
        self,
        n: int,
        image_size: int = 64,
        seed: int = 0,
        *,
        min_shapes: int = 1,
        max_shapes: int = 1,
        background: str = "texture",
        noise_std: float = 0.04,
        size_range: Sequence[float] = (0.08, 0.18),
    ) -> None:
        super().__init__(n, image_size, seed, min_shapes, max_shapes, background, noise_std, size_range)
        self.classes = SHAPE_CLASSES

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        scene = self.scene(index)
        return torch.from_numpy(scene.image), torch.tensor(int(scene.labels[-1]), dtype=torch.int64)


class ShapesSegmentation(_ShapesBase):
    """Semantic segmentation of shapes: one class per pixel.

    Introduced in the segmentation lecture (FCN, U-Net).

    Args: as :class:`ShapesClassification`, with 1 to 4 shapes per image by default.

    Items:
        ``(image, mask)``: image Tensor[3, S, S] float32 in [0, 1]; mask Tensor[S, S] int64 with
        0 = background and ``k + 1`` = ``SHAPE_CLASSES[k]`` (the visible, top-most shape).
        ``num_classes`` is 5.
    """

    num_classes = len(SHAPE_CLASSES) + 1

    def __init__(
        self,
        n: int,
        image_size: int = 64,
        seed: int = 0,
        *,
        min_shapes: int = 1,
        max_shapes: int = 4,
        background: str = "texture",
        noise_std: float = 0.04,
        size_range: Sequence[float] = (0.08, 0.2),
    ) -> None:
        super().__init__(n, image_size, seed, min_shapes, max_shapes, background, noise_std, size_range)
        self.classes = ("background",) + SHAPE_CLASSES

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        scene = self.scene(index)
        # visible masks are disjoint, so a weighted sum gives the label map
        semantic = np.tensordot(scene.labels + 1, scene.masks.astype(np.int64), axes=1)  # (K,), (K, S, S) -> (S, S)
        if not len(scene.labels):
            semantic = np.zeros((self.image_size, self.image_size), dtype=np.int64)
        return torch.from_numpy(scene.image), torch.from_numpy(np.ascontiguousarray(semantic, dtype=np.int64))


# ------------------------------------------------------------------ localisation-limited segmentation

#: Classes of :class:`FineShapesSegmentation`; the class of a pixel is its index in this tuple.
FINE_CLASSES: tuple[str, ...] = ("background", "shape", "wire", "dot")


def _segment_mask(x0: float, y0: float, x1: float, y1: float, width: float, size: int) -> np.ndarray:
    """Pixels whose centre lies within ``width / 2`` of the segment ``(x0, y0)-(x1, y1)``: (S, S) bool."""
    py = np.arange(size, dtype=np.float32)[:, None] + 0.5  # (S, 1)
    px = np.arange(size, dtype=np.float32)[None, :] + 0.5  # (1, S)
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((px - x0) * dx + (py - y0) * dy) / max(dx * dx + dy * dy, 1e-6), 0.0, 1.0)  # (S, S)
    dist2 = (px - x0 - t * dx) ** 2 + (py - y0 - t * dy) ** 2
    return dist2 <= (width / 2.0) ** 2


def render_fine_scene(
    rng: np.random.Generator,
    image_size: int = 64,
    *,
    shapes: tuple[int, int] = (1, 3),
    wires: tuple[int, int] = (1, 3),
    dots: tuple[int, int] = (2, 6),
    background: str = "texture",
    noise_std: float = 0.04,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one scene of :class:`FineShapesSegmentation`: filled shapes, thin wires and small dots.

    The class of a pixel depends on the *local* geometry (a wide region, a 2-3 px line, a 3-5 px disc),
    so a network can only get it right where it knows exactly where the edges are; colours are random.

    Args:
        rng: the random generator.
        image_size: ``S``.
        shapes, wires, dots: inclusive ranges of how many of each are drawn (shapes first, dots last,
            later objects on top).
        background: ``"texture"``, ``"noise"`` or ``"plain"`` (as :func:`render_scene`).
        noise_std: Gaussian pixel noise.

    Returns:
        ``(image, labels)``: float32 (3, S, S) in [0, 1] and int64 (S, S) indices into :data:`FINE_CLASSES`.
    """
    size = int(image_size)
    if size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
    for name, (lo, hi) in (("shapes", shapes), ("wires", wires), ("dots", dots)):
        if not 0 <= lo <= hi:
            raise ValueError(f"{name} must be a range (low, high) with 0 <= low <= high, got {(lo, hi)}")
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    image, bg_colour = _background(rng, size, background)
    labels = np.zeros((size, size), dtype=np.int64)
    masks: list[tuple[int, np.ndarray]] = []
    for _ in range(int(rng.integers(shapes[0], shapes[1] + 1))):
        kind = SHAPE_CLASSES[rng.integers(len(SHAPE_CLASSES))]
        radius = rng.uniform(0.1, 0.22) * size
        cx, cy = rng.uniform(0.15 * size, 0.85 * size, size=2)
        masks.append((1, shape_mask(kind, cx, cy, radius, rng.uniform(0.0, 2.0 * math.pi), size)))
    for _ in range(int(rng.integers(wires[0], wires[1] + 1))):
        x0, y0 = rng.uniform(0.0, size, size=2)
        angle, length = rng.uniform(0.0, 2.0 * math.pi), rng.uniform(0.4, 0.9) * size
        x1, y1 = x0 + length * math.cos(angle), y0 + length * math.sin(angle)
        masks.append((2, _segment_mask(x0, y0, x1, y1, rng.uniform(1.8, 3.0), size)))
    for _ in range(int(rng.integers(dots[0], dots[1] + 1))):
        cx, cy = rng.uniform(2.0, size - 2.0, size=2)
        masks.append((3, shape_mask("circle", cx, cy, rng.uniform(1.5, 2.5), 0.0, size)))
    for cls, mask in masks:
        colour = _shape_colour(rng, bg_colour)
        image = np.where(mask[None], colour[:, None, None], image)
        labels[mask] = cls
    if noise_std > 0:
        image = image + rng.normal(0.0, noise_std, size=image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32), labels


class FineShapesSegmentation(Dataset):
    """Semantic segmentation where the answer is in the details: shapes, thin wires and small dots.

    Introduced in lecture 7 to measure what U-Net's skip connections are for. Filled shapes (class 1)
    have sharp corners, wires (class 2) are 2-3 px wide segments, dots (class 3) are discs 3-5 px
    across; colours are random, so the class of a pixel is given by the width of the structure it
    lies on and a prediction is only right where it puts the edges in the right place. A network
    that works at 1/8 resolution cannot draw a 2-px wire. Compare :class:`ShapesSegmentation`, where
    the class of a blob depends on its global outline.

    Args:
        n: number of items.
        image_size: ``S``.
        seed: item ``i`` is drawn from ``numpy.random.default_rng([seed, i])``.
        shapes, wires, dots, background, noise_std: see :func:`render_fine_scene`.

    Items:
        ``(image, mask)``: image Tensor[3, S, S] float32 in [0, 1]; mask Tensor[S, S] int64 in ``0..3``
        (:data:`FINE_CLASSES`). ``num_classes`` is 4.
    """

    num_classes = len(FINE_CLASSES)
    classes = FINE_CLASSES

    def __init__(
        self,
        n: int,
        image_size: int = 64,
        seed: int = 0,
        *,
        shapes: tuple[int, int] = (1, 3),
        wires: tuple[int, int] = (1, 3),
        dots: tuple[int, int] = (2, 6),
        background: str = "texture",
        noise_std: float = 0.04,
    ) -> None:
        if int(n) < 0:
            raise ValueError(f"n (the number of items) must be >= 0, got {n}")
        self.n, self.image_size, self.seed = int(n), int(image_size), int(seed)
        self.options = dict(shapes=tuple(shapes), wires=tuple(wires), dots=tuple(dots), background=background,
                            noise_std=float(noise_std))
        render_fine_scene(np.random.default_rng(0), self.image_size, **self.options)  # fail early on bad options

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if index < 0:
            index += self.n
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for a data set of {self.n} items")
        image, labels = render_fine_scene(np.random.default_rng([self.seed, index]), self.image_size, **self.options)
        return torch.from_numpy(image), torch.from_numpy(labels)

    def tensors(self) -> tuple[Tensor, Tensor]:
        """All items at once: ``(images Tensor[N, 3, S, S], masks Tensor[N, S, S])`` (render once, train many)."""
        if self.n == 0:
            s = self.image_size
            return torch.zeros(0, 3, s, s), torch.zeros(0, s, s, dtype=torch.int64)
        images, masks = zip(*(self[i] for i in range(self.n)))
        return torch.stack(images), torch.stack(masks)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}(n={self.n}, image_size={self.image_size}, seed={self.seed}, {opts})"


class ShapesDetection(_ShapesBase):
    """Object detection and instance segmentation of shapes, with torchvision-style targets.

    Introduced in the detection lectures (R-CNN family, Mask R-CNN).

    Args: as :class:`ShapesClassification`, with 1 to 5 shapes per image and ``S = 128`` by default.

    Items:
        ``(image, target)``: image Tensor[3, S, S] float32 in [0, 1]; target a dict with
        ``boxes`` Tensor[K, 4] float32 ``(x1, y1, x2, y2)``, the tight box of the visible instance mask
        (see the module's pixel convention); ``labels`` Tensor[K] int64 in ``1..4`` (0 is reserved for
        the background, as torchvision detection models expect); ``masks`` Tensor[K, S, S] uint8.
        Use :func:`collate_detection` in the ``DataLoader``.
    """

    def __init__(
        self,
        n: int,
        image_size: int = 128,
        seed: int = 0,
        *,
        min_shapes: int = 1,
        max_shapes: int = 5,
        background: str = "texture",
        noise_std: float = 0.04,
        size_range: Sequence[float] = (0.06, 0.16),
    ) -> None:
        super().__init__(n, image_size, seed, min_shapes, max_shapes, background, noise_std, size_range)
        self.classes = ("background",) + SHAPE_CLASSES

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        scene = self.scene(index)
        masks = torch.from_numpy(scene.masks.astype(np.uint8))  # (K, S, S)
        target = {
            "boxes": torch.from_numpy(_boxes_numpy(scene.masks)).reshape(-1, 4),
            "labels": torch.from_numpy(scene.labels + 1),
            "masks": masks,
        }
        return torch.from_numpy(scene.image), target


def collate_detection(batch: Sequence[tuple[Tensor, dict[str, Tensor]]]) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """``collate_fn`` for detection: keep images and targets as lists (their sizes differ).

    Returns:
        ``(images, targets)``: a list of Tensor[3, H, W] and a list of target dicts, the input format of
        torchvision's detection models.
    """
    images = [item[0] for item in batch]
    targets = [item[1] for item in batch]
    return images, targets
