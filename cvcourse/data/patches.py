"""Patches of real photos as a small classification task: "which photo is this patch from?".

Introduced in lecture 6 (transfer learning) as an offline target task on natural images. ImageNet features should
help here, and a few hundred labelled patches are too few to train a large network from scratch.

Letters: P = patch size in pixels.

Training and validation patches come from **disjoint regions** of each photo: the left 60 % of its width for
``split="train"`` and the right 40 % for ``split="val"``. A network cannot pass validation by remembering pixels it
was trained on.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from cvcourse.data.photos import PHOTO_NAMES, photo_tensor

#: Photos used by default: the colour photos of :mod:`cvcourse.data.photos` (one of the stereo pair).
PATCH_PHOTOS: tuple[str, ...] = ("chelsea", "coffee", "astronaut", "rocket", "china", "flower", "motorcycle_left")

_SPLIT_AT = 0.6  # share of the width that belongs to the training region


class PhotoPatches(Dataset):
    """Random square crops of bundled photos, labelled with the index of their photo.

    Args:
        n (int): number of items.
        split (str): ``"train"`` (left 60 % of each photo) or ``"val"`` (right 40 %).
        patch_size (int): P, side of the returned patches (crops are resized to it, bilinear).
        photos (Sequence[str]): names from :data:`cvcourse.data.PHOTO_NAMES`; class ``k`` is ``photos[k]``.
        crop_range (tuple[float, float]): crop side as a share of the photo's shorter side.
        seed (int): items are a pure function of ``(seed, split, index)``.

    Items:
        ``(image, label)``: image Tensor[3, P, P] float32 in [0, 1]; label int64, the photo's index.
    """

    def __init__(
        self,
        n: int,
        split: str = "train",
        patch_size: int = 64,
        photos: Sequence[str] = PATCH_PHOTOS,
        crop_range: tuple[float, float] = (0.15, 0.35),
        seed: int = 0,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        unknown = [p for p in photos if p not in PHOTO_NAMES]
        if unknown:
            raise ValueError(f"unknown photos {unknown}; choose from {PHOTO_NAMES}")
        if not 0 < crop_range[0] <= crop_range[1] <= 0.4:
            raise ValueError(f"crop_range must satisfy 0 < low <= high <= 0.4, got {crop_range}")
        self.n, self.split, self.patch_size, self.seed = int(n), split, int(patch_size), int(seed)
        self.classes = tuple(photos)
        self.crop_range = crop_range
        self._images = [photo_tensor(p) for p in photos]  # (3, H, W) each

    def __len__(self) -> int:
        return self.n

    def crop_box(self, index: int) -> tuple[int, int, int, int, bool]:
        """``(label, x0, y0, side, flipped)`` of item ``index``: the square ``[x0, x0 + side) x [y0, y0 + side)`` of
        photo ``label``, mirrored left-right when ``flipped``."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for a data set of {self.n} items")
        rng = np.random.default_rng([self.seed, 0 if self.split == "train" else 1, index])
        label = int(rng.integers(len(self._images)))
        _, h, w = self._images[label].shape
        side = int(rng.uniform(*self.crop_range) * min(h, w))
        lo, hi = (0, int(_SPLIT_AT * w)) if self.split == "train" else (int(_SPLIT_AT * w), w)
        x0 = int(rng.integers(lo, hi - side + 1))
        y0 = int(rng.integers(0, h - side + 1))
        return label, x0, y0, side, bool(rng.random() < 0.5)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        label, x0, y0, side, flipped = self.crop_box(index)
        crop = self._images[label][:, y0 : y0 + side, x0 : x0 + side]
        if flipped:
            crop = crop.flip(-1)
        patch = F.interpolate(crop[None], size=(self.patch_size,) * 2, mode="bilinear", antialias=True,
                              align_corners=False)[0]  # (1, 3, side, side) -> (3, P, P)
        return patch.clamp(0, 1), torch.tensor(label)
