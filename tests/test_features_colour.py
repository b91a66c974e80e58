"""colour_histogram (lecture 6's baseline) against numpy.histogramdd."""

import numpy as np
import pytest
import torch

from cvcourse.features import colour_histogram


@pytest.mark.parametrize("bins", [1, 3, 4])
def test_colour_histogram_matches_numpy(bins):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 7, 5, generator=g)
    images[0, :, 0, 0] = 1.0  # the upper edge falls in the last bin, as in numpy
    images[1, :, 1, 1] = 0.0
    hist = colour_histogram(images, bins)
    for b in range(3):
        ref, _ = np.histogramdd(images[b].reshape(3, -1).T.double().numpy(), bins=bins, range=[(0, 1)] * 3)
        np.testing.assert_allclose(hist[b].numpy(), (ref / ref.sum()).ravel(), atol=1e-6)
    torch.testing.assert_close(hist.sum(1), torch.ones(3))


def test_colour_histogram_errors():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        colour_histogram(torch.rand(3, 7, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        colour_histogram(torch.rand(1, 3, 4, 4) * 255)
    with pytest.raises(ValueError, match="bins"):
        colour_histogram(torch.rand(1, 3, 4, 4), bins=0)
