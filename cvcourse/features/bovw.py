"""Bag of visual words: the classical image-classification pipeline before CNNs (lecture 1).

Local descriptors (SIFT) -> a vocabulary of "visual words" by k-means -> each image becomes the histogram of
the words its descriptors are nearest to -> a linear classifier on the histograms (Csurka et al., 2004).

Letters: N descriptors of one image; D descriptor length (128); V vocabulary size; B images.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from cvcourse._checks import check_shape, check_tensor
from cvcourse.features.sift_pipeline import sift_descriptors, to_gray_tensor

__all__ = ["BagOfVisualWords", "dense_keypoints", "dense_sift"]


def dense_keypoints(height: int, width: int, step: int = 8, size: float = 16.0, margin: int | None = None) -> Tensor:
    """A regular grid of upright keypoints of one size (for "dense SIFT").

    Args:
        height, width: image size in pixels.
        step: grid spacing in pixels.
        size: keypoint diameter (``size`` column; a SIFT descriptor then spans about ``2.5 * size`` pixels).
        margin: distance of the first row/column from the edge (default ``step // 2``).

    Returns:
        Tensor[K, 6]: columns ``x, y, size, angle (0), response (0), octave (0)``, like :func:`sift` keypoints.
    """
    if step < 1 or size <= 0:
        raise ValueError(f"need step >= 1 and size > 0, got step={step}, size={size}")
    m = step // 2 if margin is None else margin
    ys = torch.arange(m, height, step, dtype=torch.float32)
    xs = torch.arange(m, width, step, dtype=torch.float32)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    n = gx.numel()
    z = torch.zeros(n)
    return torch.stack([gx.reshape(-1), gy.reshape(-1), torch.full((n,), float(size)), z, z, z], 1)  # (K, 6)


def dense_sift(image: Tensor | np.ndarray, step: int = 8, size: float = 16.0, upsample: bool = False) -> Tensor:
    """SIFT descriptors on a regular grid: ``Tensor[K, 128]`` (see :func:`dense_keypoints`).

    Dense sampling describes every part of the image, which suits texture and category recognition better
    than the sparse keypoints of :func:`~cvcourse.features.sift_pipeline.sift`. The scale space is built without the 2x
    upsampling by default (4x less work; grid keypoints are rarely smaller than the input's own blur).
    Introduced in lecture 1.
    """
    img = to_gray_tensor(image)
    kp = dense_keypoints(img.shape[0], img.shape[1], step, size).to(img.device)
    return sift_descriptors(img, kp, upsample=upsample)


class BagOfVisualWords:
    """A visual vocabulary learned by k-means, and the word histograms of images.

    Mirrors the scikit-learn transformer API (``fit`` / ``transform``); the clustering is
    ``sklearn.cluster.MiniBatchKMeans``. Histograms are L1-normalised and square-rooted ("Hellinger" or
    RootSIFT-style), which makes a linear classifier on them work like a kernel on the raw counts.
    Introduced in lecture 1.

    Args:
        n_words: V, vocabulary size.
        seed: k-means seed.
        max_descriptors: at most this many descriptors (sampled at random) are clustered.

    Attributes:
        vocabulary (Tensor[V, D]): the cluster centres, after :meth:`fit`.
    """

    def __init__(self, n_words: int = 100, seed: int = 0, max_descriptors: int = 50_000):
        if n_words < 2:
            raise ValueError(f"n_words must be >= 2, got {n_words}")
        self.n_words = n_words
        self.seed = seed
        self.max_descriptors = max_descriptors
        self.vocabulary: Tensor | None = None

    def fit(self, descriptors: Sequence[Tensor] | Tensor) -> "BagOfVisualWords":
        """Cluster descriptors (``Tensor[N, D]`` or a list of them, one per image) into ``n_words`` words."""
        from sklearn.cluster import MiniBatchKMeans

        all_desc = self._stack(descriptors)
        if len(all_desc) < self.n_words:
            raise ValueError(f"need at least n_words={self.n_words} descriptors to fit, got {len(all_desc)}")
        rng = np.random.default_rng(self.seed)
        data = all_desc.detach().cpu().float().numpy()
        if len(data) > self.max_descriptors:
            data = data[rng.choice(len(data), self.max_descriptors, replace=False)]
        km = MiniBatchKMeans(n_clusters=self.n_words, random_state=self.seed, n_init=3, batch_size=2048)
        km.fit(data)
        self.vocabulary = torch.from_numpy(km.cluster_centers_).float()
        return self

    def words(self, descriptors: Tensor) -> Tensor:
        """Index of the nearest word for each descriptor: ``Tensor[N, D]`` -> int64 ``Tensor[N]``."""
        voc = self._voc()
        check_shape(descriptors, "descriptors", (None, voc.shape[1]))
        if len(descriptors) == 0:
            return torch.zeros(0, dtype=torch.long, device=descriptors.device)
        return torch.cdist(descriptors.float(), voc.to(descriptors.device)).argmin(1)

    def histogram(self, descriptors: Tensor) -> Tensor:
        """Normalised word histogram ``Tensor[V]`` of one image's descriptors ``Tensor[N, D]`` (zeros if N = 0)."""
        counts = torch.bincount(self.words(descriptors), minlength=self.n_words).float()
        return (counts / counts.sum().clamp(min=1)).sqrt()

    def transform(self, descriptors: Sequence[Tensor]) -> Tensor:
        """Histograms of many images: list of ``Tensor[N_i, D]`` -> ``Tensor[B, V]``."""
        if isinstance(descriptors, Tensor):
            raise TypeError("transform expects a list with one descriptor tensor per image; use histogram() for one")
        return torch.stack([self.histogram(d).cpu() for d in descriptors]) if len(descriptors) else torch.zeros(0, self.n_words)

    def _voc(self) -> Tensor:
        if self.vocabulary is None:
            raise RuntimeError("the vocabulary is empty: call fit(descriptors) first")
        return self.vocabulary

    @staticmethod
    def _stack(descriptors: Sequence[Tensor] | Tensor) -> Tensor:
        if isinstance(descriptors, Tensor):
            check_shape(descriptors, "descriptors", (None, None))
            return descriptors
        parts = [check_tensor(d, f"descriptors[{i}]").detach().cpu() for i, d in enumerate(descriptors)]
        if not parts:
            raise ValueError("descriptors is empty")
        return torch.cat(parts)
