"""Pick a stage and a channel of a CNN and see its feature map on an image (lecture 6, "What networks learn").

Letters: C = channels, H, W = image height and width, h, w = feature-map height and width.

:func:`stage_maps` and :func:`channel_map` are the tested logic; :func:`feature_map_picker` wires a dropdown and a
slider to a plot (``ipywidgets.interact`` renders once when run headless).
"""

from __future__ import annotations

from collections import OrderedDict

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from cvcourse._checks import check_shape


@torch.no_grad()
def stage_maps(model: nn.Module, image: Tensor) -> "OrderedDict[str, Tensor]":
    """Feature maps of one image at every stage of ``model.forward_stages`` (e.g. EfficientNet-Lite0).

    Args:
        model: a module with ``forward_stages(x) -> {name: Tensor[B, C, h, w]}``; it is run in eval mode and its
            mode is restored afterwards.
        image (Tensor[3, H, W]): one preprocessed image, on the model's device.

    Returns:
        ``{stage name: Tensor[C, h, w]}`` on the CPU.
    """
    if not hasattr(model, "forward_stages"):
        raise TypeError(f"model must have a forward_stages method, got {type(model).__name__}")
    check_shape(image, "image", (3, None, None))
    was_training = model.training
    try:
        stages = model.eval().forward_stages(image[None])  # (3, H, W) -> (1, 3, H, W)
    finally:
        model.train(was_training)
    return OrderedDict((name, fmap[0].cpu()) for name, fmap in stages.items())


def channel_map(maps: "OrderedDict[str, Tensor]", stage: str, channel: int) -> Tensor:
    """Channel ``channel`` of stage ``stage``, rescaled to [0, 1] (a constant map gives zeros): Tensor[h, w]."""
    if stage not in maps:
        raise KeyError(f"stage {stage!r} is not one of {list(maps)}")
    n = maps[stage].shape[0]
    if not 0 <= channel < n:
        raise ValueError(f"channel must be in [0, {n - 1}] for stage {stage!r}, got {channel}")
    m = maps[stage][channel].float()
    span = m.max() - m.min()
    return (m - m.min()) / span if span > 0 else torch.zeros_like(m)


def feature_map_picker(model: nn.Module, image: Tensor, shown: Tensor | None = None):
    """A stage dropdown and a channel slider showing the chosen feature map beside the image.

    Args:
        model, image: as :func:`stage_maps`.
        shown (Tensor[3, H, W] | None): the picture to show beside the map (default: ``image`` rescaled to [0, 1]).
    """
    import ipywidgets

    maps = stage_maps(model, image)
    if shown is None:
        shown = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)
    picture = shown.detach().cpu().permute(1, 2, 0)  # (3, H, W) -> (H, W, 3)

    def draw(stage: str, channel: int = 0) -> None:
        channel = min(channel, maps[stage].shape[0] - 1)
        fig, axes = plt.subplots(1, 2, figsize=(7, 3.3))
        axes[0].imshow(picture)
        axes[0].set_title("input")
        axes[1].imshow(channel_map(maps, stage, channel), cmap="viridis")
        axes[1].set_title(f"{stage}, channel {channel} of {maps[stage].shape[0]}")
        for ax in axes:
            ax.axis("off")
        plt.show()

    widest = max(m.shape[0] for m in maps.values())
    return ipywidgets.interact(
        draw, stage=ipywidgets.Dropdown(options=list(maps)), channel=ipywidgets.IntSlider(0, 0, widest - 1)
    )
