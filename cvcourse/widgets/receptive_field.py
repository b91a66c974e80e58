"""Lecture 2 widgets: the receptive field of a conv stack, and the feature maps of a chosen layer.

Wiring only: the field comes from :func:`cvcourse.models.receptive_field.receptive_field` (formula) and
:func:`~cvcourse.models.receptive_field.receptive_field_mask` (back-propagation), the feature maps
from :func:`~cvcourse.models.receptive_field.layer_output`; all three are tested.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from cvcourse.models.receptive_field import conv_stack, layer_output, receptive_field, receptive_field_mask

__all__ = ["plot_receptive_field", "receptive_field_widget", "plot_feature_map", "feature_map_widget"]


def plot_receptive_field(num_layers: int = 2, kernel_size: int = 3, stride: int = 1, dilation: int = 1):
    """Draw the input pixels that reach the centre output pixel of ``num_layers`` equal convolutions.

    Returns the matplotlib Figure; the title compares the formula with the brute-force count.
    """
    rf = receptive_field([(kernel_size, stride, dilation)] * num_layers)
    size = rf.size + 2 * rf.jump + 6
    mask = receptive_field_mask(conv_stack(num_layers, kernel_size, stride, dilation), 1, size)
    rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
    measured = int(rows.max() - rows.min() + 1) if rows.numel() else 0
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.imshow(mask.float().numpy(), cmap="Blues", vmin=0, vmax=1.3)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(f"{num_layers} x conv {kernel_size}x{kernel_size}, s={stride}, d={dilation}\n"
                 f"formula: {rf.size} px, back-prop: {measured} px, jump {rf.jump}", fontsize=9)
    return fig


def receptive_field_widget() -> widgets.Widget:
    """Sliders for number of layers, kernel size, stride and dilation driving :func:`plot_receptive_field`."""
    return widgets.interactive(
        lambda num_layers, kernel_size, stride, dilation: plt.show(
            plot_receptive_field(num_layers, kernel_size, stride, dilation)),
        num_layers=widgets.IntSlider(2, 1, 5, description="layers"),
        kernel_size=widgets.IntSlider(3, 1, 7, description="kernel"),
        stride=widgets.IntSlider(1, 1, 3, description="stride"),
        dilation=widgets.IntSlider(1, 1, 3, description="dilation"),
    )


def plot_feature_map(model: nn.Module, image: Tensor, layer: str, channel: int = 0):
    """Show ``image`` (Tensor[3, H, W]) and channel ``channel`` of the output of ``layer``; returns the Figure."""
    fmap = layer_output(model, image[None], layer)[0]  # (1, C, h, w) -> (C, h, w)
    channel = min(channel, fmap.shape[0] - 1)
    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    axes[0].imshow(image.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    axes[0].set_title("input", fontsize=9)
    axes[1].imshow(fmap[channel].float().cpu().numpy(), cmap="viridis")
    axes[1].set_title(f"{layer}, channel {channel} of {fmap.shape[0]}", fontsize=9)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    return fig


def feature_map_widget(model: nn.Module, image: Tensor) -> widgets.Widget:
    """A layer drop-down (every ``Conv2d`` and ``ReLU``/``Tanh`` of ``model``) and a channel slider."""
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ReLU, nn.Tanh))]
    with torch.no_grad():
        widest = max(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))
    return widgets.interactive(
        lambda layer, channel: plt.show(plot_feature_map(model, image, layer, channel)),
        layer=widgets.Dropdown(options=names, value=names[0], description="layer"),
        channel=widgets.IntSlider(0, 0, widest - 1, description="channel"),
    )
