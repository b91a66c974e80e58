"""Lecture 2 widgets: the receptive field of a conv stack, and the feature maps of a chosen layer.

Wiring only: the field comes from :func:`cvcourse.models.receptive_field.receptive_field` (formula) and
:func:`~cvcourse.models.receptive_field.receptive_field_mask` (back-propagation), the feature maps
from :func:`~cvcourse.models.receptive_field.layer_output`; all three are tested. The figures are drawn by
:func:`cvcourse.widgets.figure.plot_widget` (an ``Image`` widget, not ``interact``'s ``Output``).
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from cvcourse.models.receptive_field import conv_stack, layer_output, receptive_field, receptive_field_mask
from cvcourse.widgets.figure import plot_widget

__all__ = ["plot_receptive_field", "receptive_field_widget", "MAP_LAYERS", "feature_map_layers", "plot_feature_map",
           "feature_map_widget"]


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
    return plot_widget(plot_receptive_field, {
        "num_layers": widgets.IntSlider(2, 1, 5, description="layers"),
        "kernel_size": widgets.IntSlider(3, 1, 7, description="kernel"),
        "stride": widgets.IntSlider(1, 1, 3, description="stride"),
        "dilation": widgets.IntSlider(1, 1, 3, description="dilation"),
    })


#: Module types the feature-map widget offers (when their output is a stack of maps).
MAP_LAYERS = (nn.Conv2d, nn.ReLU, nn.ReLU6, nn.Tanh, nn.SiLU, nn.GELU, nn.MaxPool2d)


def feature_map_layers(model: nn.Module, image: Tensor) -> dict[str, int]:
    """The layers of ``model`` whose output for ``image`` (Tensor[3, H, W]) is a stack of maps, with their channels.

    One forward pass in eval mode records each output; only layers of :data:`MAP_LAYERS` whose output has shape
    ``(1, C, h, w)`` are kept, so the activations of a fully connected head (``(1, C)``) are left out.

    Returns:
        ``{layer name: C}`` in ``model.named_modules()`` order.
    """
    shapes: dict[str, torch.Size] = {}

    def record(name: str):
        def hook(_module: nn.Module, _inputs: tuple, out: Tensor) -> None:  # returns None: the output is kept
            shapes.setdefault(name, out.shape)  # a module called twice keeps its first output, as layer_output
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules() if isinstance(m, MAP_LAYERS)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(image[None])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {name: shape[1] for name, shape in shapes.items() if len(shape) == 4}


def plot_feature_map(model: nn.Module, image: Tensor, layer: str, channel: int = 0):
    """Show ``image`` (Tensor[3, H, W]) and channel ``channel`` of the output of ``layer``; returns the Figure.

    Raises:
        ValueError: ``layer``'s output is not a stack of maps ``(1, C, h, w)``, or ``channel`` is not in ``[0, C)``.
    """
    with torch.no_grad():
        out = layer_output(model, image[None], layer)
    if out.dim() != 4:
        raise ValueError(f"layer {layer!r} outputs shape {tuple(out.shape)}, not feature maps (1, C, h, w); "
                         f"pick one of feature_map_layers(model, image)")
    fmap = out[0]  # (1, C, h, w) -> (C, h, w)
    if not 0 <= channel < fmap.shape[0]:
        raise ValueError(f"layer {layer!r} has channels 0..{fmap.shape[0] - 1}, got channel {channel}")
    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    axes[0].imshow(image.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    axes[0].set_title("input", fontsize=9)
    axes[1].imshow(fmap[channel].float().cpu().numpy(), cmap="viridis")
    axes[1].set_title(f"{layer}, channel {channel} of {fmap.shape[0]}", fontsize=9)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    return fig


def feature_map_widget(model: nn.Module, image: Tensor) -> widgets.Widget:
    """A layer drop-down (the layers of :func:`feature_map_layers`) and a channel slider sized to that layer.

    When the layer changes, the slider's range changes and its view in the browser is drawn afresh: the slider of
    ipywidgets 8 (noUiSlider) moves its range for the mouse but its Home/End keys keep the range the view was
    created with, so End on a wider layer stopped at the old maximum and nothing redrew (issue 10). The slider
    sits alone in an ``HBox``, so re-adding it rebuilds only its own view.
    """
    channels = feature_map_layers(model, image)
    if not channels:
        raise ValueError(f"{type(model).__name__} has no layer of {[t.__name__ for t in MAP_LAYERS]} "
                         "that outputs feature maps (1, C, h, w)")
    names = list(channels)
    layer = widgets.Dropdown(options=names, value=names[0], description="layer")
    channel = widgets.IntSlider(0, 0, channels[names[0]] - 1, description="channel")
    holder = widgets.HBox([channel])

    def resize(change: dict) -> None:  # registered before the redraw, so the slider fits the new layer first
        top = channels[change["new"]] - 1
        channel.value = min(channel.value, top)
        if channel.max != top:
            channel.max = top
            holder.children = ()  # a fresh view: its keys then know the new range
            holder.children = (channel,)

    layer.observe(resize, names="value")
    return plot_widget(lambda layer, channel: plot_feature_map(model, image, layer, channel),
                       {"layer": layer, "channel": channel},
                       layout=lambda kids: widgets.VBox([kids[0], holder, *kids[2:]]))
