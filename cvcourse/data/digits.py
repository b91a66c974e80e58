"""scikit-learn's handwritten digits as a tiny offline image-classification data set.

Used in the first lectures (MLP vs CNN) where CIFAR-10 is not available offline.

Letters: N = number of items, S = image size.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

#: Fraction of each class kept for the test split.
TEST_FRACTION = 0.2


def _split_indices(labels: np.ndarray, train: bool, seed: int = 0) -> np.ndarray:
    """Deterministic stratified split: the same 80 % of every class is always the training part."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(TEST_FRACTION * len(idx)))
        chosen.append(idx[n_test:] if train else idx[:n_test])
    return np.sort(np.concatenate(chosen))


class DigitsDataset(Dataset):
    """The 1,797 8x8 digits of ``sklearn.datasets.load_digits``, upsampled and in three channels.

    Introduced in the first CNN lecture. The split is fixed (stratified, 80 % train / 20 % test),
    so ``DigitsDataset(train=True)`` and ``DigitsDataset(train=False)`` never share an image.

    Args:
        train: the training split (1,438 images) or the test split (359 images).
        image_size: ``S``; the 8x8 images are resized bilinearly to ``S x S``.

    Items:
        ``(image, label)``: image Tensor[3, S, S] float32 in [0, 1] (white digit on black, the grey
        value repeated in three channels), label int64 scalar in ``0..9``.
    """

    classes = tuple(str(d) for d in range(10))

    def __init__(self, train: bool = True, image_size: int = 32) -> None:
        from sklearn.datasets import load_digits

        if int(image_size) < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        digits = load_digits()
        idx = _split_indices(digits.target, train)
        x = torch.from_numpy(digits.images[idx].astype(np.float32) / 16.0)[:, None]  # (N, 8, 8) -> (N, 1, 8, 8)
        if image_size != 8:
            x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
        self.images = x.clamp(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()  # (N, 1, S, S) -> (N, 3, S, S)
        self.labels = torch.from_numpy(digits.target[idx].astype(np.int64))
        self.train = train
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def __repr__(self) -> str:
        return f"DigitsDataset(train={self.train}, image_size={self.image_size}) with {len(self)} images"
