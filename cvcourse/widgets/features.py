"""Play with Lowe's ratio test on a stereo pair (lecture 1, "Matching a stereo pair: ratio test").

Letters: N, M keypoints of the left and right image; P matches.

:func:`ratio_test_summary` is the tested logic: the matches kept at a ratio threshold and which of them agree
with the ground-truth disparity. :func:`plot_ratio_test` draws them and :func:`ratio_test_widget` wires a slider
to that plot.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from torch import Tensor

from cvcourse.features.matching import match_descriptors, stereo_match_correct
from cvcourse.widgets.figure import plot_widget


def ratio_test_summary(
    kp1: Tensor, desc1: Tensor, kp2: Tensor, desc2: Tensor, disparity: Tensor, max_ratio: float, tol: float = 2.0
) -> tuple[Tensor, Tensor]:
    """Matches at one ratio threshold and their correctness.

    Args:
        kp1 (Tensor[N, 2+]), desc1 (Tensor[N, D]): left keypoints (``x, y, ...``) and descriptors.
        kp2 (Tensor[M, 2+]), desc2 (Tensor[M, D]): right keypoints and descriptors.
        disparity (Tensor[H, W]): ground-truth left disparity (see
            :func:`~cvcourse.features.matching.stereo_match_correct`).
        max_ratio: Lowe's ratio threshold.
        tol: pixels for a match to count as correct.

    Returns:
        matches (Tensor[P, 2]): index pairs, as :func:`~cvcourse.features.matching.match_descriptors`.
        correct (Tensor[P]): bool.
    """
    m, _ = match_descriptors(desc1, desc2, max_ratio)
    ok = stereo_match_correct(kp1[m[:, 0], :2], kp2[m[:, 1], :2], disparity, tol)
    return m, ok


def plot_ratio_test(image1, image2, kp1, desc1, kp2, desc2, disparity, max_ratio: float = 0.8, every: int = 4):
    """Draw the matches kept at ``max_ratio`` (green correct, red wrong) across the two images; returns the Figure.

    ``image1`` / ``image2`` are ``(H, W, 3)`` uint8 arrays of the same height; ``every`` thins the drawn lines.
    """
    both = np.concatenate([np.asarray(image1), np.asarray(image2)], 1)
    offset = np.asarray(image1).shape[1]
    m, ok = ratio_test_summary(kp1, desc1, kp2, desc2, disparity, max_ratio)
    fig, ax = plt.subplots(figsize=(12, 4.2))
    ax.imshow(both)
    for (i, j), good in list(zip(m.tolist(), ok.tolist()))[::every]:
        (x1, y1), (x2, y2) = kp1[i, :2].tolist(), kp2[j, :2].tolist()
        ax.plot([x1, x2 + offset], [y1, y2], color="lime" if good else "red", lw=0.7)
    precision = ok.float().mean().item() if len(ok) else float("nan")
    ax.set_title(f"ratio {max_ratio:.2f}: {len(m)} matches, {precision:.1%} correct (every {every}th drawn)")
    ax.axis("off")
    return fig


def ratio_test_widget(image1, image2, kp1, desc1, kp2, desc2, disparity, every: int = 4):
    """A slider over the ratio threshold driving :func:`plot_ratio_test`; returns the widget (display it)."""
    slider = widgets.FloatSlider(value=0.8, min=0.3, max=1.0, step=0.05, description="max ratio",
                                 style={"description_width": "initial"})
    return plot_widget(lambda max_ratio: plot_ratio_test(image1, image2, kp1, desc1, kp2, desc2, disparity,
                                                         max_ratio, every),
                       {"max_ratio": slider})
