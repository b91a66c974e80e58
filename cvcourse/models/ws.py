"""Weight Standardization (Qiao et al., 2019): standardise each filter's weights before the convolution.

Paper notebook ``lectures/papers/weight_standardization.ipynb`` (extends lecture 3, where BatchNorm is taught).
BatchNorm standardises *activations* over the batch, which breaks down when a GPU holds one or two images (micro-
batches). GroupNorm standardises over channel groups of one image and does not care about the batch, but trails
BatchNorm at large batches. Weight Standardization (WS) additionally standardises the *weights* of every
convolution, per output channel; the paper reports that GN + WS at one image per GPU matches or beats BN at large
batches.

- :func:`standardize_weight`  ``W_hat[o] = (W[o] - mean(W[o])) / sqrt(var(W[o]) + eps)`` over ``(Cin, kH, kW)``
- :class:`WSConv2d`           ``nn.Conv2d`` that convolves with ``standardize_weight(self.weight)``
- :class:`NormConvNet`        a small CNN whose norm layer is ``"batch"``, ``"group"`` or ``"none"``, with or
  without WS, for the micro-batch experiment

Letter legend: B batch, O output channels, C input channels, k kernel size, H, W height and width.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from cvcourse._checks import check_tensor

__all__ = ["standardize_weight", "WSConv2d", "NormConvNet", "NORMS"]

#: Normalisation layers :class:`NormConvNet` accepts.
NORMS = ("batch", "group", "none")


def standardize_weight(weight: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-output-channel standardisation of a convolution weight (Weight Standardization).

    ``W_hat[o] = (W[o] - mean(W[o])) / sqrt(var(W[o]) + eps)`` with the mean and the (population, ``unbiased=False``)
    variance over each filter's ``C * kH * kW`` entries. Differentiable: the gradient reaching ``weight`` is the
    gradient w.r.t. ``W_hat`` projected so that it sums to zero over each filter (and, for ``eps -> 0``, is
    orthogonal to ``W_hat[o]``).

    Deviation from the official code (``W / (std + 1e-5)`` with the unbiased std): we put ``eps`` inside the square
    root with the population variance, as timm's ``StdConv2d`` does, so that each filter has unit variance exactly
    up to ``eps``.

    Args:
        weight (Tensor[O, C, kH, kW]): a convolution weight (any tensor with the output channel first works).
        eps: added to the variance.

    Returns:
        Tensor of the same shape: each ``[o]`` slice has mean 0 and variance ``var / (var + eps)`` (about 1).

    Raises:
        ValueError: for a tensor with fewer than 2 dimensions, a filter of one entry, or ``eps < 0``.
    """
    check_tensor(weight, "weight")
    if weight.dim() < 2 or weight[0].numel() < 2:
        raise ValueError(f"weight must have shape (O, C, kH, kW) with at least 2 entries per filter, got "
                         f"{tuple(weight.shape)}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    dims = tuple(range(1, weight.dim()))
    mean = weight.mean(dim=dims, keepdim=True)                      # (O, 1, 1, 1)
    var = weight.var(dim=dims, unbiased=False, keepdim=True)        # (O, 1, 1, 1)
    return (weight - mean) / (var + eps).sqrt()


class WSConv2d(nn.Conv2d):
    """``nn.Conv2d`` with Weight Standardization: the forward pass uses ``standardize_weight(self.weight)``.

    Same arguments as ``torch.nn.Conv2d`` plus ``eps``. The stored ``weight`` stays unconstrained (the optimiser
    updates it as usual); only the standardised copy reaches the convolution, so the output does not change when a
    filter is scaled by a positive number or shifted by a constant. Meant to be followed by a normalisation layer
    (GroupNorm in the paper): WS alone removes the filters' scale, which the norm layer's affine weights restore.
    """

    def __init__(self, *args, eps: float = 1e-5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, standardize_weight(self.weight, self.eps), self.bias)


def _norm_layer(norm: str, channels: int, groups: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(math.gcd(groups, channels), channels)
    return nn.Identity()


class NormConvNet(nn.Module):
    """A small CNN for the micro-batch experiment: ``stages`` x (3x3 conv -> norm -> ReLU -> 2x2 max-pool), then
    global average pooling and a linear classifier.

    Args:
        num_classes: outputs of the linear head.
        norm: ``"batch"`` (``nn.BatchNorm2d``), ``"group"`` (``nn.GroupNorm`` with ``groups`` groups, the paper's
            32 is too many for these thin layers) or ``"none"``.
        ws: use :class:`WSConv2d` instead of ``nn.Conv2d``.
        width: channels of the first stage; each stage doubles them.
        stages: number of conv stages (each halves H and W).
        groups: GroupNorm groups (reduced to ``gcd(groups, channels)``).
        in_channels: C of the input.

    Attributes: ``features`` (the conv stages) and ``head`` (pool + linear), for hooks.

    Shape: ``(B, in_channels, H, W) -> (B, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, norm: str = "batch", ws: bool = False, width: int = 16,
                 stages: int = 3, groups: int = 8, in_channels: int = 3) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if stages < 1 or width < 1:
            raise ValueError(f"stages and width must be positive, got stages={stages}, width={width}")
        conv = WSConv2d if ws else nn.Conv2d
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(stages):
            c_out = width * 2 ** i
            layers += [conv(c_in, c_out, 3, padding=1, bias=norm == "none"), _norm_layer(norm, c_out, groups),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))
        self.norm, self.ws = norm, ws

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, C, H, W) -> (B, C', H/2^s, W/2^s) -> (B, num_classes)
