"""Plotting helpers for the lectures: image grids, boxes, masks, feature maps, filters, training curves.

Used from the first lecture on. Every function returns the matplotlib ``Figure`` or ``Axes`` it drew
on and never calls ``plt.show()``, so it works headless (Agg) and in notebooks alike.

Letters: B = number of images, C = channels, H, W = height and width, K = number of boxes,
O, I, k = output channels, input channels and kernel size of a convolution weight.

Images may be float tensors ``(3, H, W)`` / ``(1, H, W)`` / ``(H, W)`` in ``[0, 1]`` (any device, with
or without grad) or ``uint8`` / float numpy arrays ``(H, W, 3)`` / ``(H, W)``. Images are drawn with
``extent=(0, W, H, 0)`` so that boxes in continuous pixel coordinates ``(x1, y1, x2, y2)`` (the course
convention, see :mod:`cvcourse.data.shapes`) line up with pixel edges.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from torch import Tensor

#: Fixed RGB colours (0-1) per class index; index 0 (background) is transparent in :func:`overlay_mask`.
#: Beyond 20 classes the palette repeats.
PALETTE: np.ndarray = np.array(
    [
        (0.00, 0.00, 0.00),  # 0 background
        (0.90, 0.10, 0.11),  # 1 red
        (0.22, 0.49, 0.72),  # 2 blue
        (0.30, 0.69, 0.29),  # 3 green
        (1.00, 0.50, 0.00),  # 4 orange
        (0.60, 0.31, 0.64),  # 5 purple
        (1.00, 1.00, 0.20),  # 6 yellow
        (0.65, 0.34, 0.16),  # 7 brown
        (0.97, 0.51, 0.75),  # 8 pink
        (0.10, 0.75, 0.80),  # 9 cyan
        (0.60, 0.60, 0.60),  # 10 grey
        (0.50, 0.00, 0.00),
        (0.00, 0.00, 0.50),
        (0.00, 0.50, 0.00),
        (0.50, 0.50, 0.00),
        (0.50, 0.00, 0.50),
        (0.00, 0.50, 0.50),
        (0.75, 0.75, 1.00),
        (1.00, 0.75, 0.75),
        (0.75, 1.00, 0.75),
    ]
)


def class_color(index: int) -> tuple[float, float, float]:
    """The fixed palette colour of class ``index`` (1-based for objects; 0 is background)."""
    return tuple(float(c) for c in PALETTE[int(index) % len(PALETTE)])  # type: ignore[return-value]


def to_numpy_image(image: Any) -> np.ndarray:
    """Convert an image to what ``imshow`` wants: ``(H, W, 3)`` float in [0, 1] or ``(H, W)``.

    Args:
        image: Tensor[3, H, W], Tensor[1, H, W], Tensor[H, W] (float in [0, 1]) or np.ndarray
            (H, W, 3) / (H, W) (uint8 in [0, 255] or float in [0, 1]).
    """
    if isinstance(image, Tensor):
        x = image.detach().cpu()
        if x.dim() == 3:
            if x.shape[0] not in (1, 3):
                raise ValueError(f"a tensor image must have shape (3, H, W), (1, H, W) or (H, W), got {tuple(x.shape)}")
            x = x.permute(1, 2, 0)  # (C, H, W) -> (H, W, C)
        elif x.dim() != 2:
            raise ValueError(f"a tensor image must have shape (3, H, W), (1, H, W) or (H, W), got {tuple(x.shape)}")
        arr = x.float().numpy() if x.dtype != torch.uint8 else x.numpy()
    elif isinstance(image, np.ndarray):
        arr = image
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise ValueError(f"a numpy image must have shape (H, W, 3) or (H, W), got {arr.shape}")
    else:
        raise TypeError(f"image must be a torch.Tensor or numpy array, got {type(image).__name__}")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    arr = np.clip(arr.astype(np.float32), 0.0, 1.0)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]  # (H, W, 1) -> (H, W)
    return arr


def _imshow(ax: Axes, image: Any, **kwargs: Any) -> None:
    arr = to_numpy_image(image)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        kwargs.setdefault("cmap", "gray")
        kwargs.setdefault("vmin", 0.0)
        kwargs.setdefault("vmax", 1.0)
    ax.imshow(arr, extent=(0, w, h, 0), interpolation="nearest", **kwargs)


def _grid(n: int, ncols: int, figsize: tuple[float, float] | None, cell: float = 1.8) -> tuple[Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    figsize = figsize or (cell * ncols, cell * nrows + 0.3)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
    for ax in axes.flat[n:]:
        ax.remove()
    return fig, axes.flat[:n]


def show_images(
    images: Tensor | Sequence[Any],
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Show images in a grid, one axis per image.

    Args:
        images: Tensor[B, 3, H, W] / Tensor[B, H, W] or a sequence of images (see module docstring).
        titles: one title per image, or None.
        ncols: images per row.
        figsize: matplotlib figure size in inches (default: 1.8 inch per image).

    Returns:
        The Figure (with exactly ``B`` axes).
    """
    items = list(images) if not isinstance(images, Tensor) else list(images.unbind(0))
    if not items:
        raise ValueError("images is empty; pass at least one image")
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"got {len(titles)} titles for {len(items)} images")
    fig, axes = _grid(len(items), ncols, figsize)
    for i, (ax, img) in enumerate(zip(axes, items)):
        _imshow(ax, img)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    fig.tight_layout()
    return fig


def _as_list(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, Tensor):
        return x.detach().cpu().tolist()
    return list(np.asarray(x).tolist())


def draw_boxes(
    ax: Axes,
    boxes: Tensor | np.ndarray | Sequence[Sequence[float]],
    labels: Tensor | Sequence[int] | None = None,
    scores: Tensor | Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    color: Any = None,
) -> list[Rectangle]:
    """Draw ``(x1, y1, x2, y2)`` boxes on an axis, with optional class names and scores.

    Args:
        ax: the axis (usually showing the image, drawn with ``extent=(0, W, H, 0)``).
        boxes (Tensor[K, 4]): boxes in pixels, ``(x1, y1, x2, y2)``.
        labels (Tensor[K]): class indices, or None. The box colour is the palette colour of the label.
        scores (Tensor[K]): confidences, or None; shown after the name with two decimals.
        class_names: names indexed by label (e.g. ``("background",) + SHAPE_CLASSES`` for 1-based
            labels), or None to show the label number.
        color: one matplotlib colour for all boxes, overriding the palette.

    Returns:
        The list of K ``Rectangle`` patches added to ``ax``.
    """
    box_list = _as_list(boxes)
    if any(len(b) != 4 for b in box_list):
        raise ValueError(f"boxes must have shape (K, 4) in (x1, y1, x2, y2) format, got {np.shape(box_list)}")
    label_list, score_list = _as_list(labels), _as_list(scores)
    for name, lst in (("labels", label_list), ("scores", score_list)):
        if lst and len(lst) != len(box_list):
            raise ValueError(f"{name} has {len(lst)} entries for {len(box_list)} boxes")
    patches = []
    for i, (x1, y1, x2, y2) in enumerate(box_list):
        label = int(label_list[i]) if label_list else None
        c = color if color is not None else (class_color(label) if label is not None else "lime")
        rect = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=c, linewidth=1.5)
        ax.add_patch(rect)
        patches.append(rect)
        text = []
        if label is not None:
            text.append(class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label))
        if score_list:
            text.append(f"{float(score_list[i]):.2f}")
        if text:
            ax.text(
                x1, y1, " ".join(text), fontsize=7, color="white", va="bottom",
                bbox=dict(facecolor=c, alpha=0.7, pad=1, edgecolor="none"),
            )
    return patches


def show_detections(
    image: Any,
    boxes: Tensor | np.ndarray | Sequence[Sequence[float]],
    labels: Tensor | Sequence[int] | None = None,
    scores: Tensor | Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Show an image with its detections (see :func:`draw_boxes`). Returns the Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    _imshow(ax, image)
    draw_boxes(ax, boxes, labels, scores, class_names)
    ax.set_axis_off()
    return ax


def colorize_mask(mask: Tensor | np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Turn a class-index mask ``(H, W)`` into an RGBA image ``(H, W, 4)``; class 0 is transparent."""
    m = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must have shape (H, W) of class indices, got {m.shape}")
    m = m.astype(np.int64)
    if num_classes is not None and m.size and (m.min() < 0 or m.max() >= num_classes):
        raise ValueError(f"mask values must lie in [0, {num_classes - 1}], got [{m.min()}, {m.max()}]")
    rgba = np.zeros(m.shape + (4,), dtype=np.float32)
    rgba[..., :3] = PALETTE[m % len(PALETTE)]
    rgba[..., 3] = (m != 0).astype(np.float32)
    return rgba


def overlay_mask(
    image: Any,
    mask: Tensor | np.ndarray,
    ax: Axes | None = None,
    alpha: float = 0.5,
    num_classes: int | None = None,
) -> Axes:
    """Show a segmentation mask over an image, one fixed palette colour per class.

    Args:
        image: the image (see module docstring).
        mask (Tensor[H, W]): class indices; 0 = background (not coloured).
        ax: axis to draw on, or None for a new figure.
        alpha: opacity of the mask colours.
        num_classes: if given, values outside ``0..num_classes - 1`` raise ``ValueError``.

    Returns:
        The Axes.
    """
    arr = to_numpy_image(image)
    h, w = arr.shape[:2]
    rgba = colorize_mask(mask, num_classes)
    if rgba.shape[:2] != (h, w):
        raise ValueError(f"mask has size {rgba.shape[:2]} but the image has size {(h, w)}")
    rgba[..., 3] *= alpha
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    _imshow(ax, arr)
    ax.imshow(rgba, extent=(0, w, h, 0), interpolation="nearest")
    ax.set_axis_off()
    return ax


def show_feature_maps(fmap: Tensor, max_channels: int = 16, ncols: int = 8, cmap: str = "viridis") -> Figure:
    """Show the channels of one feature map, each scaled to its own range.

    Args:
        fmap (Tensor[C, H, W]): activations of one image (take ``fmap[0]`` of a batch).
        max_channels: show the first ``min(C, max_channels)`` channels.

    Returns:
        The Figure, one axis per shown channel.
    """
    if not isinstance(fmap, Tensor) or fmap.dim() != 3:
        raise ValueError(
            f"fmap must be a Tensor of shape (C, H, W), got {getattr(fmap, 'shape', type(fmap).__name__)}; "
            "for a batch pass fmap[0]"
        )
    x = fmap.detach().float().cpu()[:max_channels]
    fig, axes = _grid(x.shape[0], ncols, None, cell=1.5)
    for c, ax in enumerate(axes):
        ax.imshow(x[c].numpy(), cmap=cmap, interpolation="nearest")
        ax.set_title(f"ch {c}", fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def normalize_filters(weight: Tensor) -> Tensor:
    """Scale each filter ``weight[o]`` to [0, 1] by its own min and max (constant filters give 0.5).

    Args:
        weight (Tensor[O, I, k, k]).

    Returns:
        Tensor[O, I, k, k] float32 in [0, 1].
    """
    w = weight.detach().float().cpu()
    flat = w.reshape(w.shape[0], -1)  # (O, I, k, k) -> (O, I*k*k)
    lo = flat.min(dim=1).values[:, None, None, None]
    hi = flat.max(dim=1).values[:, None, None, None]
    span = hi - lo
    return torch.where(span > 0, (w - lo) / span.clamp(min=1e-12), torch.full_like(w, 0.5))


def show_filters(weight: Tensor, max_filters: int = 64, ncols: int = 8) -> Figure:
    """Show convolution filters, each normalised to its own range (:func:`normalize_filters`).

    With 3 input channels a filter is shown as a colour patch (first-layer filters of an RGB network);
    otherwise the mean over input channels is shown in grey.

    Args:
        weight (Tensor[O, I, k, k]): e.g. ``model.conv1.weight``.
        max_filters: show the first ``min(O, max_filters)`` filters.

    Returns:
        The Figure, one axis per shown filter.
    """
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        raise ValueError(f"weight must be a Tensor of shape (O, I, k, k), got {getattr(weight, 'shape', type(weight).__name__)}")
    w = normalize_filters(weight[:max_filters])
    fig, axes = _grid(w.shape[0], ncols, None, cell=1.0)
    for o, ax in enumerate(axes):
        tile = w[o] if w.shape[1] == 3 else w[o].mean(dim=0)  # (3, k, k) or (k, k)
        _imshow(ax, tile)
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def plot_history(
    *histories: Mapping[str, Sequence[float]],
    metrics: Sequence[str] = ("loss",),
    labels: Sequence[str] | None = None,
) -> Figure:
    """Compare training curves of one or more runs (e.g. ReLU vs tanh), one subplot per metric.

    Each run gets one colour; its training curve is dashed and its validation curve solid.

    Args:
        *histories: :class:`cvcourse.train.History` objects (or dicts with ``"train_<m>"`` /
            ``"val_<m>"`` lists).
        metrics: metric names without the prefix, e.g. ``("loss", "acc")``.
        labels: one legend label per run (default ``run 1``, ``run 2``, ...).

    Returns:
        The Figure, with ``len(metrics)`` axes.
    """
    if not histories:
        raise ValueError("pass at least one history")
    if isinstance(metrics, str):
        metrics = (metrics,)
    labels = list(labels) if labels is not None else [f"run {i + 1}" for i in range(len(histories))]
    if len(labels) != len(histories):
        raise ValueError(f"got {len(labels)} labels for {len(histories)} histories")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        drawn = 0
        for i, (hist, label) in enumerate(zip(histories, labels)):
            color = f"C{i}"
            for split, style in (("train", "--"), ("val", "-")):
                values = hist.get(f"{split}_{metric}")
                if values:
                    ax.plot(range(1, len(values) + 1), values, style, color=color, label=f"{label} ({split})")
                    drawn += 1
        if not drawn:
            raise ValueError(f"no history has 'train_{metric}' or 'val_{metric}'; keys are {sorted(histories[0])}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers: no tick at 1.5
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


__all__ = [
    "PALETTE",
    "class_color",
    "colorize_mask",
    "draw_boxes",
    "normalize_filters",
    "overlay_mask",
    "plot_history",
    "show_detections",
    "show_feature_maps",
    "show_filters",
    "show_images",
    "to_numpy_image",
]
