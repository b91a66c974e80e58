"""Receptive fields, lecture 2 (parameter and multiply-add counts live in :mod:`cvcourse.models.cost`).

Introduced in lecture 2 (AlexNet and VGG: why two 3x3 convolutions see as much as one 5x5).

Letter legend: B batch, C channels (``C_in`` / ``C_out``), H height, W width, k kernel size,
s stride, d dilation, L number of layers.

Convention: a layer is described by ``(k, s, d)``; the receptive field of one output pixel of a
stack is the side of the square of input pixels that can change it. For a stack of L layers

    r_L = 1 + sum_l (k_l - 1) * d_l * prod_{m < l} s_m,     j_L = prod_l s_l

where ``j`` (the "jump") is the distance in input pixels between two neighbouring output pixels.
"""

from __future__ import annotations

import copy
from typing import Iterable, NamedTuple, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "LayerSpec",
    "receptive_field",
    "layer_specs",
    "empirical_receptive_field",
    "receptive_field_mask",
    "conv_stack",
    "layer_output",
]


class LayerSpec(NamedTuple):
    """One sliding-window layer: kernel size ``k``, stride ``s`` and dilation ``d`` (square)."""

    k: int
    s: int = 1
    d: int = 1


class ReceptiveField(NamedTuple):
    """Receptive field ``size`` (input pixels per side) and ``jump`` (input pixels between outputs)."""

    size: int
    jump: int


def _as_spec(layer: LayerSpec | Sequence[int]) -> LayerSpec:
    spec = LayerSpec(*layer)
    if spec.k < 1 or spec.s < 1 or spec.d < 1:
        raise ValueError(f"kernel size, stride and dilation must be positive integers, got {tuple(spec)}")
    return spec


def receptive_field(layers: Iterable[LayerSpec | Sequence[int]]) -> ReceptiveField:
    """Receptive field of a stack of convolution/pooling layers, computed with the formula above.

    Introduced in lecture 2: ``receptive_field([(3, 1, 1)] * 2).size == receptive_field([(5, 1, 1)]).size == 5``.

    Args:
        layers: ``(k, s, d)`` triples (or :class:`LayerSpec`), input side first.

    Returns:
        ``ReceptiveField(size, jump)``; an empty stack gives ``(1, 1)``.
    """
    size, jump = 1, 1
    for layer in layers:
        k, s, d = _as_spec(layer)
        size += (k - 1) * d * jump
        jump *= s
    return ReceptiveField(size, jump)


def _pair_first(v: int | Sequence[int]) -> int:
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise ValueError(f"only square kernels/strides/dilations are supported here, got {tuple(v)}")
        return int(v[0])
    return int(v)


def layer_specs(model: nn.Module) -> list[LayerSpec]:
    """The ``(k, s, d)`` of every ``Conv2d``/``MaxPool2d``/``AvgPool2d`` in ``model``, in registration order.

    Valid for plain chains (AlexNet, VGG); for branching models (Inception, ResNet) use
    :func:`empirical_receptive_field` instead.
    """
    specs = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            specs.append(LayerSpec(_pair_first(m.kernel_size), _pair_first(m.stride), _pair_first(m.dilation)))
        elif isinstance(m, nn.MaxPool2d):
            specs.append(LayerSpec(_pair_first(m.kernel_size), _pair_first(m.stride), _pair_first(m.dilation)))
        elif isinstance(m, nn.AvgPool2d):
            specs.append(LayerSpec(_pair_first(m.kernel_size), _pair_first(m.stride), 1))
    return specs


def _linearised_copy(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` in eval mode whose gradients reach every pixel of the field:
    max-pooling becomes average pooling, activations become identities and conv weights become
    positive constants (so nothing cancels)."""
    net = copy.deepcopy(model).double().eval()
    for name, m in list(net.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(m, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                    ceil_mode=child.ceil_mode))
            elif isinstance(child, (nn.ReLU, nn.Tanh, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Hardswish, nn.ReLU6)):
                setattr(m, child_name, nn.Identity())
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
    return net


def receptive_field_mask(model: nn.Module, in_channels: int, input_size: int) -> Tensor:
    """Which input pixels influence the centre output pixel, found by back-propagation (brute force).

    Introduced in lecture 2. Works on a linearised float64 copy of ``model`` (see above; ``model``
    itself is not changed), feeds ``Tensor[1, C_in, S, S]``, back-propagates the centre pixel of the
    output map and marks where the input gradient is non-zero.

    Args:
        model: maps ``Tensor[1, C_in, S, S]`` to a feature map ``Tensor[1, C_out, h, w]``.
        in_channels: ``C_in``.
        input_size: ``S``; must be large enough that the field is not clipped by the border.

    Returns:
        Tensor[S, S] bool, True where the input pixel reaches the centre output pixel.
    """
    net = _linearised_copy(model)
    p = next(iter(net.parameters()), None)
    x = torch.ones(1, in_channels, input_size, input_size, dtype=torch.float64,
                   device=p.device if p is not None else None, requires_grad=True)
    y = net(x)
    if y.dim() != 4:
        raise ValueError(f"model must return a feature map (B, C, h, w), got shape {tuple(y.shape)}")
    h, w = y.shape[-2:]
    y[0, :, (h - 1) // 2, (w - 1) // 2].sum().backward()
    return x.grad[0].abs().sum(0) > 0  # (C_in, S, S) -> (S, S)


def empirical_receptive_field(model: nn.Module, in_channels: int, input_size: int) -> int:
    """Side of the bounding square of :func:`receptive_field_mask` (the brute-force receptive field).

    Tested against :func:`receptive_field` in ``tests/test_models_classic.py``.
    """
    mask = receptive_field_mask(model, in_channels, input_size)
    rows = mask.any(1).nonzero()
    cols = mask.any(0).nonzero()
    if rows.numel() == 0:
        return 0
    return int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))


def conv_stack(num_layers: int, kernel_size: int, stride: int = 1, dilation: int = 1, channels: int = 1) -> nn.Sequential:
    """``num_layers`` identical ``Conv2d(channels, channels, kernel_size, stride, dilation=dilation)``, lecture 2.

    The toy network of the receptive-field widget: its field is
    ``receptive_field([(kernel_size, stride, dilation)] * num_layers)``.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be at least 1, got {num_layers}")
    _as_spec((kernel_size, stride, dilation))
    return nn.Sequential(*[nn.Conv2d(channels, channels, kernel_size, stride=stride, dilation=dilation)
                           for _ in range(num_layers)])


@torch.no_grad()
def layer_output(model: nn.Module, x: Tensor, name: str) -> Tensor:
    """The output of the submodule called ``name`` (as in ``model.named_modules()``) for input ``x``.

    Used by the feature-map widget of lecture 2. The model is run in eval mode (its mode is restored).

    Args:
        model: the network.
        x (Tensor[B, C, H, W]): input batch.
        name: e.g. ``"features.0"``.

    Returns:
        The captured output, e.g. Tensor[B, C', h, w] for a convolution.
    """
    modules = dict(model.named_modules())
    if name not in modules:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise ValueError(f"model has no submodule {name!r}; convolutions are named {convs[:8]}")
    captured: list[Tensor] = []
    handle = modules[name].register_forward_hook(lambda _m, _i, out: captured.append(out))
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        handle.remove()
        model.train(was_training)
    return captured[0]
