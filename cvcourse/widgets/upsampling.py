"""Step through a transposed convolution (lecture 7, "Unpooling. Transposed convolution").

Letters: H, W = input height and width; k = kernel size; s = stride.

:func:`transposed_conv_steps` is the tested logic: the output after each input cell has stamped its weighted copy of
the filter. :func:`plot_transposed_conv_step` draws one step and
:func:`transposed_conv_widget` wires a slider to it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from cvcourse._checks import check_shape, check_tensor


def transposed_conv_steps(x: Tensor, weight: Tensor, stride: int = 2) -> Tensor:
    """Partial outputs of a single-channel transposed convolution, one per input cell.

    Mirrors ``torch.nn.functional.conv_transpose2d`` with one channel, no padding and no bias: the last step
    equals its output.

    Args:
        x (Tensor[H, W]): input.
        weight (Tensor[k, k]): filter.
        stride (int): step between the stamped copies of the filter.

    Returns:
        Tensor[H * W, (H - 1) * s + k, (W - 1) * s + k]: step ``t`` holds the sum of the copies stamped by the first
        ``t + 1`` input cells in row-major order.
    """
    check_shape(check_tensor(x, "x"), "x", (None, None))
    check_shape(check_tensor(weight, "weight"), "weight", (None, None))
    if stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride}")
    (h, w), (kh, kw) = x.shape, weight.shape
    out = torch.zeros(h * w, (h - 1) * stride + kh, (w - 1) * stride + kw, dtype=x.dtype)
    for t, (i, j) in enumerate(np.ndindex(h, w)):
        out[t, i * stride : i * stride + kh, j * stride : j * stride + kw] = x[i, j] * weight
    return out.cumsum(0)  # (H*W, out_h, out_w): running sum of the stamps


def plot_transposed_conv_step(x: Tensor, weight: Tensor, stride: int = 2, step: int = 1, steps: Tensor | None = None):
    """Draw the input with cell ``step`` (1-based, row-major) framed, beside the output after ``step`` stamps.

    Args:
        x (Tensor[H, W]), weight (Tensor[k, k]), stride: as :func:`transposed_conv_steps`.
        step (int): how many input cells have stamped their copy of the filter, 1 to ``H * W``.
        steps: the result of :func:`transposed_conv_steps` (computed here when None).

    Returns:
        The matplotlib Figure.
    """
    steps = transposed_conv_steps(x, weight, stride) if steps is None else steps
    h, w = x.shape
    kh, kw = weight.shape
    if not 1 <= int(step) <= h * w:
        raise ValueError(f"step must be between 1 and H * W = {h * w}, got {step}")
    t = int(step) - 1
    i, j = divmod(t, w)
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.2))
    axes[0].imshow(x, cmap="viridis")
    axes[0].add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=3))
    axes[0].set_title(f"input cell ({i}, {j}) = {x[i, j].item():g}")
    axes[1].imshow(steps[t], cmap="viridis")
    axes[1].add_patch(plt.Rectangle((j * stride - 0.5, i * stride - 0.5), kw, kh, fill=False, ec="red", lw=3))
    for (r, c), v in np.ndenumerate(steps[t].numpy()):
        axes[1].text(c, r, f"{v:g}", ha="center", va="center", color="w", fontsize=8)
    axes[1].set_title(f"output after {step} of {h * w} stamps")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def transposed_conv_widget(x: Tensor, weight: Tensor, stride: int = 2):
    """A slider over the input cells, drawing :func:`plot_transposed_conv_step` with
    :func:`cvcourse.widgets.figure.plot_widget` (an ``Image`` widget, not ``interact``'s ``Output``).

    Returns:
        The widget box (displayed when it is the last expression of a cell).
    """
    import ipywidgets  # noqa: PLC0415

    from cvcourse.widgets.figure import plot_widget  # noqa: PLC0415

    steps = transposed_conv_steps(x, weight, stride)
    h, w = x.shape
    slider = ipywidgets.IntSlider(min=1, max=h * w, value=1, description="stamps")
    return plot_widget(lambda step: plot_transposed_conv_step(x, weight, stride, step, steps), {"step": slider})
