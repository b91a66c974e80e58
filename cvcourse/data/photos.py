"""Real photographs that ship with scikit-image and scikit-learn, by name, offline.

Introduced in lecture 1 (images as arrays) and used as test images throughout the course.

Letters: H, W = image height and width in pixels.

Every photo is available as ``uint8`` numpy ``(H, W, 3)`` (:func:`load_photo`) or as a float tensor
``(3, H, W)`` in ``[0, 1]`` (:func:`photo_tensor`). Grey-level images (``camera`` and the textures) are
repeated over three channels so that every photo has the same layout.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch
from torch import Tensor


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


@functools.lru_cache(maxsize=1)
def _stereo_raw() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-image's stereo triple, read once (it parses three files); callers get copies."""
    import skimage.data

    return skimage.data.stereo_motorcycle()


def _motorcycle(side: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        return _stereo_raw()[side]

    return load


# name -> (loader, one-line description). All of these load without internet (checked with
# scikit-image 0.26 and scikit-learn 1.x; none of them needs ``pooch``).
_PHOTOS: dict[str, tuple[Callable[[], np.ndarray], str]] = {
    "chelsea": (_skimage("chelsea"), "Chelsea the cat, 300 x 451"),
    "coffee": (_skimage("coffee"), "a cup of coffee, 400 x 600"),
    "astronaut": (_skimage("astronaut"), "astronaut Eileen Collins, 512 x 512"),
    "rocket": (_skimage("rocket"), "a rocket on its launch pad, 427 x 640"),
    "camera": (_skimage("camera"), "the cameraman (grey), 512 x 512"),
    "motorcycle_left": (_motorcycle(0), "left view of the Middlebury motorcycle stereo pair, 500 x 741"),
    "motorcycle_right": (_motorcycle(1), "right view of the Middlebury motorcycle stereo pair, 500 x 741"),
    "china": (_sklearn("china.jpg"), "a Chinese temple, 427 x 640"),
    "flower": (_sklearn("flower.jpg"), "a flower, 427 x 640"),
    "brick": (_skimage("brick"), "brick wall texture (grey), 512 x 512"),
    "grass": (_skimage("grass"), "grass texture (grey), 512 x 512"),
    "gravel": (_skimage("gravel"), "gravel texture (grey), 512 x 512"),
}

#: Names accepted by :func:`load_photo` and :func:`photo_tensor`.
PHOTO_NAMES: tuple[str, ...] = tuple(_PHOTOS)

#: The grey-level texture photos (used as backgrounds of the synthetic shapes data set).
TEXTURE_NAMES: tuple[str, ...] = ("brick", "grass", "gravel")


def _to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)  # (H, W) -> (H, W, 3)
    return np.array(image[:, :, :3], dtype=np.uint8, order="C", copy=True)


def load_photo(name: str) -> np.ndarray:
    """Load a bundled photo as a ``uint8`` array.

    Introduced in lecture 1 (images as arrays); mirrors ``skimage.data.<name>()``.

    Args:
        name: one of :data:`PHOTO_NAMES`.

    Returns:
        np.ndarray[H, W, 3] of dtype ``uint8`` (a fresh copy the caller may modify).

    Raises:
        ValueError: for an unknown name; the message lists the known names.
    """
    if name not in _PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of: {', '.join(PHOTO_NAMES)}")
    return _to_rgb(_PHOTOS[name][0]())


def photo_tensor(name: str) -> Tensor:
    """Load a bundled photo as a float tensor, the layout models expect.

    Args:
        name: one of :data:`PHOTO_NAMES`.

    Returns:
        Tensor[3, H, W] of dtype ``float32`` in ``[0, 1]``.
    """
    image = load_photo(name)
    return torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)  # (H, W, 3) -> (3, H, W)


def describe_photo(name: str) -> str:
    """One-line description of a bundled photo (what it shows and its size)."""
    if name not in _PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of: {', '.join(PHOTO_NAMES)}")
    return _PHOTOS[name][1]


def stereo_motorcycle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rectified Middlebury motorcycle stereo pair and its ground-truth disparity.

    Introduced in the stereo / depth part of the course; mirrors ``skimage.data.stereo_motorcycle()``
    with one deviation: pixels of unknown disparity are ``NaN`` (scikit-image stores ``inf``), so that
    ``np.nanmean`` and matplotlib handle them.

    Returns:
        ``(left, right, disparity)``: ``uint8`` arrays ``(H, W, 3)`` and a ``float32`` array ``(H, W)``
        in pixels (a point at column ``x`` in the left image is at ``x - disparity`` in the right one).
    """
    left, right, disparity = _stereo_raw()
    disparity = np.where(np.isfinite(disparity), disparity, np.nan).astype(np.float32)
    return _to_rgb(left), _to_rgb(right), disparity
