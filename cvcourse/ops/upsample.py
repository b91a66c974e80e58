"""Upsampling inside a network: unpooling and transposed convolution (lecture 7, semantic segmentation).

Letters used in shapes: B = batch, C = channels (C_in, C_out), H, W = input height and width,
s = scale factor or stride, k = kernel size, p = padding.

A segmentation network that pools has to grow its feature maps back to image size. Three ways, from
fixed to learned:

- :func:`nearest_unpool2d` copies each value into an ``s x s`` square (``F.interpolate`` "nearest");
- :func:`max_unpool2d` puts each value back where the matching max-pooling layer found it and fills the
  rest with zeros (``F.max_unpool2d``);
- :func:`conv_transpose2d` lets every input value paint a copy of a learned kernel, scaled by the value,
  into the output with stride s; overlapping paint adds up (``F.conv_transpose2d``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cvcourse._checks import check_same_device, check_shape, check_tensor

__all__ = ["nearest_unpool2d", "max_unpool2d", "conv_transpose2d"]


def _pair(value: int | tuple[int, int], name: str, minimum: int) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list, torch.Size)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in pair):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return pair  # type: ignore[return-value]


def _check_image(x: Tensor, name: str = "x") -> None:
    check_shape(x, name, (None, None, None, None), hint="as (B, C, H, W)")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got dtype {x.dtype}")


def nearest_unpool2d(x: Tensor, scale_factor: int | tuple[int, int] = 2) -> Tensor:
    """Nearest-neighbour unpooling: every value becomes an ``s x s`` square of copies.

    Introduced in lecture 7 (unpooling). Mirrors ``F.interpolate(x, scale_factor=s, mode="nearest")``
    for integer scale factors.

    Args:
        x (Tensor[B, C, H, W]): feature map.
        scale_factor (int or (int, int)): s, or (s_h, s_w); integers >= 1.

    Returns:
        Tensor[B, C, H * s_h, W * s_w]: the enlarged map.
    """
    _check_image(x)
    sh, sw = _pair(scale_factor, "scale_factor", 1)
    b, c, h, w = x.shape
    out = x[:, :, :, None, :, None].expand(b, c, h, sh, w, sw)  # (B, C, H, 1, W, 1) -> (B, C, H, s_h, W, s_w)
    return out.reshape(b, c, h * sh, w * sw)  # (B, C, H, s_h, W, s_w) -> (B, C, H*s_h, W*s_w)


def max_unpool2d(x: Tensor, indices: Tensor, output_size: tuple[int, int]) -> Tensor:
    """Max unpooling: put each value back at the position its max-pooling layer took it from; zeros elsewhere.

    Introduced in lecture 7 (unpooling; SegNet remembers "where the max was" to sharpen boundaries).
    Mirrors ``F.max_unpool2d(x, indices, kernel_size, output_size=output_size)``; the kernel size is not
    needed because ``output_size`` says how big the map was before pooling.

    Args:
        x (Tensor[B, C, H, W]): pooled values.
        indices (Tensor[B, C, H, W]): int64 flat positions ``row * W_out + col`` in each output plane, as
            returned by ``F.max_pool2d(..., return_indices=True)``.
        output_size ((int, int)): ``(H_out, W_out)``, the size before pooling (a 4-long size is accepted
            too and its last two entries are used).

    Returns:
        Tensor[B, C, H_out, W_out]: zeros except at ``indices``.

    Raises:
        TypeError: ``indices`` is not int64.
        ValueError: shapes differ, indices out of range, or tensors on different devices.
    """
    _check_image(x)
    check_tensor(indices, "indices")
    if indices.dtype != torch.int64:
        raise TypeError(f"indices must be int64 (as returned by F.max_pool2d(return_indices=True)), got {indices.dtype}")
    if indices.shape != x.shape:
        raise ValueError(f"indices must have the same shape as x {tuple(x.shape)}, got {tuple(indices.shape)}")
    check_same_device("x", x, "indices", indices)
    size = tuple(output_size)
    if len(size) == 4:
        size = size[2:]
    ho, wo = _pair(size, "output_size", 1)
    b, c = x.shape[:2]
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= ho * wo):
        raise ValueError(
            f"indices must lie in [0, {ho * wo}) for output_size ({ho}, {wo}), got values in "
            f"[{int(indices.min())}, {int(indices.max())}]; is output_size the size before pooling?"
        )
    out = x.new_zeros(b, c, ho * wo)
    out.scatter_(2, indices.flatten(2), x.flatten(2))  # (B, C, H*W) values into (B, C, H_out*W_out)
    return out.view(b, c, ho, wo)  # (B, C, H_out*W_out) -> (B, C, H_out, W_out)


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> Tensor:
    """Transposed convolution ("learned unpooling"): each input value paints ``value * kernel`` into the
    output at ``stride`` spacing, overlapping paint is summed, and ``padding`` is cut from the border.

    Introduced in lecture 7 (transposed convolution: "the input gives the weight for the filter").
    Mirrors ``F.conv_transpose2d(x, weight, bias, stride, padding)`` (no groups, dilation or
    output_padding). How: one matrix product makes all painted copies, ``F.fold`` adds them into place.

    Args:
        x (Tensor[B, C_in, H, W]): input map.
        weight (Tensor[C_in, C_out, k_h, k_w]): kernels, in ``nn.ConvTranspose2d``'s layout.
        bias (Tensor[C_out], optional): added to every output position.
        stride (int or (int, int)): s >= 1.
        padding (int or (int, int)): p >= 0 removed from each border.

    Returns:
        Tensor[B, C_out, (H - 1) * s_h - 2 * p_h + k_h, (W - 1) * s_w - 2 * p_w + k_w].

    Raises:
        TypeError: non-float tensors.
        ValueError: mismatched shapes or devices, or padding so large that no output is left.
    """
    _check_image(x)
    _check_image(weight, "weight")
    if weight.shape[0] != x.shape[1]:
        raise ValueError(
            f"weight must have shape (C_in={x.shape[1]}, C_out, k_h, k_w) to match x, got {tuple(weight.shape)}"
        )
    check_same_device("x", x, "weight", weight)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    b, c_in, h, w = x.shape
    _, c_out, kh, kw = weight.shape
    ho, wo = (h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw
    if ho <= 0 or wo <= 0:
        raise ValueError(f"padding {(ph, pw)} leaves no output for input {(h, w)}, kernel {(kh, kw)}, stride {(sh, sw)}")
    # Every input position paints a C_out x k_h x k_w patch: one matrix product for all of them.
    patches = weight.reshape(c_in, c_out * kh * kw).T @ x.reshape(b, c_in, h * w)  # (B, C_out*k_h*k_w, H*W)
    # fold adds each patch into the output at stride spacing (overlaps are summed) and drops the padding.
    out = F.fold(patches, output_size=(ho, wo), kernel_size=(kh, kw), padding=(ph, pw), stride=(sh, sw))
    if bias is not None:
        check_shape(bias, "bias", (c_out,), hint="(one value per output channel)")
        check_same_device("x", x, "bias", bias)
        out = out + bias[None, :, None, None]  # (C_out,) -> (1, C_out, 1, 1)
    return out
