"""Cost counting, in one place: parameters and multiply-adds of layers and whole networks.

Introduced in lecture 2 (where AlexNet's weights and compute live) and used by lectures 3-7 (Inception's
1x1 reductions, separable convolutions, EfficientNet, the cost of attention, segmentation networks).

Letter legend: B batch, C channels (``C_in`` / ``C_out``), H height, W width, k kernel size.

Two kinds of function:

- by formula, from a layer's hyper-parameters: :func:`conv_params`, :func:`conv_macs`;
- by counting, on a real module: :func:`count_parameters`, :func:`count_macs`.

One multiply-add (MAC) is one multiplication and one addition, about two FLOPs. :func:`count_macs` asks
PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` for the FLOPs of the matrix products and
convolutions of one forward pass (so attention's ``Q K^T`` counts too) and halves them; biases,
normalisation, activations and pooling are not counted.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["conv_params", "conv_macs", "count_parameters", "count_macs"]


def conv_params(c_in: int, c_out: int, k: int | tuple[int, int], bias: bool = True, groups: int = 1) -> int:
    """Number of weights of a ``nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)`` (lecture 2).

    ``k * k * C_in / groups * C_out (+ C_out)``; ``k`` may be ``(kh, kw)`` for asymmetric kernels.
    Two 3x3 layers on C channels cost ``2 * 9 C^2`` weights against ``25 C^2`` for one 5x5.

    Raises:
        ValueError: when ``c_in`` or ``c_out`` is not divisible by ``groups``.
    """
    kh, kw = (k, k) if isinstance(k, int) else k
    if c_in % groups or c_out % groups:
        raise ValueError(f"c_in={c_in} and c_out={c_out} must both be divisible by groups={groups}")
    return kh * kw * (c_in // groups) * c_out + (c_out if bias else 0)


def conv_macs(c_in: int, c_out: int, k: int | tuple[int, int], out_hw: int | tuple[int, int], groups: int = 1) -> int:
    """Multiply-adds of a convolution producing an ``out_hw`` map, bias ignored (lecture 2).

    ``MACs = kh * kw * C_in / groups * C_out * H_out * W_out``.
    """
    oh, ow = (out_hw, out_hw) if isinstance(out_hw, int) else out_hw
    return conv_params(c_in, c_out, k, bias=False, groups=groups) * oh * ow


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model`` (lecture 2).

    Mirrors ``sum(p.numel() for p in model.parameters())``; with ``trainable_only`` only those with
    ``requires_grad`` (what an optimiser would update after freezing, lecture 6).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _device_of(model: Any) -> torch.device | None:
    if isinstance(model, nn.Module):
        p = next(iter(model.parameters()), None)
        return p.device if p is not None else None
    return None


def count_macs(model: nn.Module | Callable[..., Any], *inputs: Tensor | Sequence[int]) -> int:
    """Multiply-adds of one forward pass, counted by PyTorch's FLOP counter (lecture 2).

    Args:
        model: a module (run in eval mode, its mode restored afterwards) or any function of tensors.
        *inputs: the inputs of the pass, each a tensor, or a size ``(C, H, W)`` (batch of one) or
            ``(B, C, H, W)``, which stands for a zero tensor of that shape on the model's device.

    Returns:
        The multiply-accumulates of every convolution and matrix product (``Linear``, attention) for the
        batch given; normalisation, activations, pooling and biases are not counted.

    Raises:
        ValueError: without inputs, or when a size is not 3 or 4 integers.
    """
    if not inputs:
        raise ValueError("count_macs needs the inputs of the forward pass: a tensor or a size such as (3, 224, 224)")
    device = _device_of(model)
    args = []
    for x in inputs:
        if isinstance(x, Tensor):
            args.append(x)
            continue
        size = tuple(x)
        if not all(isinstance(s, int) for s in size) or len(size) not in (3, 4):
            raise ValueError(f"an input size must be (C, H, W) or (B, C, H, W) integers, got {size}")
        args.append(torch.zeros((1,) * (4 - len(size)) + size, device=device))
    was_training = model.training if isinstance(model, nn.Module) else None
    try:
        if isinstance(model, nn.Module):
            model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*args)
    finally:
        if was_training is not None:
            model.train(was_training)
    return counter.get_total_flops() // 2
