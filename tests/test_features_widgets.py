"""The ratio-test widget's logic (cvcourse.widgets.features) and that the widget renders headless."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import torch

from cvcourse.features import match_descriptors
from cvcourse.widgets.features import ratio_test_summary, ratio_test_widget


def _pair():
    g = torch.Generator().manual_seed(0)
    desc1 = torch.rand(30, 16, generator=g)
    desc2 = torch.cat([desc1[:20] + 0.01 * torch.rand(20, 16, generator=g), torch.rand(10, 16, generator=g)])
    kp1 = torch.rand(30, 2, generator=g) * 40 + 10
    kp2 = torch.cat([kp1[:20] - torch.tensor([5.0, 0.0]), torch.rand(10, 2, generator=g) * 40])
    kp2[:5, 0] += 10  # the first five matches land 10 px off: wrong
    disparity = torch.full((64, 64), 5.0)
    return kp1, desc1, kp2, desc2, disparity


def test_ratio_test_summary_counts_correct_matches():
    kp1, desc1, kp2, desc2, disparity = _pair()
    m, ok = ratio_test_summary(kp1, desc1, kp2, desc2, disparity, max_ratio=0.8)
    ref, _ = match_descriptors(desc1, desc2, 0.8)
    assert torch.equal(m, ref)
    expected = (m[:, 0] == m[:, 1]) & (m[:, 0] >= 5)  # true pairs i -> i, minus the five displaced ones
    assert torch.equal(ok, expected)
    assert ok.sum() == 15


def test_ratio_test_widget_renders_headless():
    kp1, desc1, kp2, desc2, disparity = _pair()
    img = np.zeros((64, 64, 3), np.uint8)
    assert ratio_test_widget(img, img, kp1, desc1, kp2, desc2, disparity) is not None
