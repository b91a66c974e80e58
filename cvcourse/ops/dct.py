"""JPEG's front end as tensor ops: YCbCr colour and the 8x8 block DCT, for learning in the frequency domain.

Paper notebook ``lectures/papers/dct_frequency_domain.ipynb`` (Xu et al., "Learning in the Frequency Domain",
2020; extends lecture 4). The image is converted to YCbCr, cut into 8x8 blocks, each block is replaced by its 64
DCT-II coefficients, and the coefficients become channels ("DCT reshape"): ``(B, 3, H, W) -> (B, 192, H/8, W/8)``.

- :func:`rgb_to_ycbcr`, :func:`ycbcr_to_rgb`   JPEG / JFIF full-range conversion (ITU-R BT.601 weights), as PIL's
  ``Image.convert("YCbCr")``
- :func:`dct_matrix`                           the orthonormal DCT-II matrix ``D`` with ``dct(x) = D @ x``
- :func:`block_dct`, :func:`block_idct`        8x8 block DCT / inverse with the DCT reshape; each block equals
  ``scipy.fft.dctn(block, norm="ortho")``
- :func:`dct_channel`                          which colour and frequency ``(c, u, v)`` a channel index holds

Channel layout of :func:`block_dct`: channel ``k = c * n * n + u * n + v`` holds frequency ``u`` (vertical) and
``v`` (horizontal) of input channel ``c``; channel ``c * n * n`` is block ``c``'s DC term (``n`` times its mean).

Letter legend: B batch, C channels, H, W image size, n block side (8 in JPEG).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cvcourse._checks import check_tensor

__all__ = ["rgb_to_ycbcr", "ycbcr_to_rgb", "dct_matrix", "block_dct", "block_idct", "dct_channel"]

# JFIF full range: Y in [0, 1], Cb and Cr centred at 0.5 (128 / 255 on the 8-bit scale)
_RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                              [-0.168736, -0.331264, 0.5],
                              [0.5, -0.418688, -0.081312]])
_OFFSET = torch.tensor([0.0, 0.5, 0.5])


def _check_images(images: Tensor, name: str = "images") -> Tensor:
    check_tensor(images, name)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1], got {images.dtype}; divide uint8 images by 255")
    return images


def rgb_to_ycbcr(images: Tensor) -> Tensor:
    """RGB in [0, 1] -> YCbCr (JPEG full range: Y in [0, 1], Cb and Cr in [0, 1] centred at 0.5).

    Mirrors PIL's ``Image.convert("YCbCr")`` on the [0, 1] scale (PIL rounds to uint8; we do not).

    Args:
        images (Tensor[B, 3, H, W]): float RGB.

    Returns:
        Tensor[B, 3, H, W]: channels Y, Cb, Cr.
    """
    _check_images(images)
    m = _RGB_TO_YCBCR.to(images)
    return torch.einsum("ij,bjhw->bihw", m, images) + _OFFSET.to(images)[None, :, None, None]


def ycbcr_to_rgb(images: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (no clamping). ``images (Tensor[B, 3, H, W])`` -> RGB ``Tensor[B, 3, H, W]``."""
    _check_images(images)
    m = torch.linalg.inv(_RGB_TO_YCBCR.double()).to(images)
    return torch.einsum("ij,bjhw->bihw", m, images - _OFFSET.to(images)[None, :, None, None])


def dct_matrix(n: int = 8, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """The orthonormal DCT-II matrix: ``D[u, x] = a(u) cos(pi (2x + 1) u / (2n))``, ``a(0) = sqrt(1/n)``, else
    ``sqrt(2/n)``.

    ``D @ x`` equals ``scipy.fft.dct(x, norm="ortho")`` and ``D @ X @ D.T`` equals ``scipy.fft.dctn(X, norm="ortho")``;
    ``D`` is orthogonal, so the inverse is ``D.T @ Y @ D``.

    Returns:
        Tensor[n, n].
    """
    if int(n) < 1:
        raise ValueError(f"n must be a positive block size, got {n}")
    u = torch.arange(n, dtype=torch.float64)[:, None]
    x = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * x + 1) * u / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype=dtype, device=device)


def _check_blocks(x: Tensor, block: int) -> None:
    check_tensor(x, "x")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a float tensor, got {x.dtype}")
    if int(block) < 1:
        raise ValueError(f"block must be positive, got {block}")


def block_dct(x: Tensor, block: int = 8) -> Tensor:
    """2-D DCT-II (orthonormal) of every ``block x block`` tile, reshaped to channels ("DCT reshape").

    Args:
        x (Tensor[B, C, H, W]): float input (YCbCr images in the paper); H and W multiples of ``block``.
        block: n, the tile side (8 in JPEG and in the paper).

    Returns:
        Tensor[B, C * n * n, H / n, W / n]: channel ``c * n * n + u * n + v`` at ``(i, j)`` is coefficient
        ``(u, v)`` of tile ``(i, j)`` of channel ``c`` (see the module docstring).

    Raises:
        ValueError: for a shape other than (B, C, H, W) or H, W not multiples of ``block`` (crop or pad first).
    """
    _check_blocks(x, block)
    b, c, h, w = x.shape
    n = int(block)
    if h % n or w % n:
        raise ValueError(f"H and W must be multiples of block={n}, got {(h, w)}; crop or pad the images first")
    d = dct_matrix(n, dtype=x.dtype, device=x.device)
    tiles = x.reshape(b, c, h // n, n, w // n, n)                       # (B, C, h, n, w, n): tile rows, cols
    coef = torch.einsum("ux,bcixjy,vy->bcuvij", d, tiles, d)            # D @ tile @ D.T -> (B, C, n, n, h, w)
    return coef.reshape(b, c * n * n, h // n, w // n)                   # (B, C, n, n, h, w) -> (B, C n n, h, w)


def block_idct(coef: Tensor, block: int = 8) -> Tensor:
    """Inverse of :func:`block_dct`: ``(B, C * n * n, h, w) -> (B, C, h * n, w * n)``.

    Each tile equals ``scipy.fft.idctn(coefficients, norm="ortho")``. Zeroing channels before the inverse shows what
    an image looks like without those frequencies (the JPEG idea).
    """
    _check_blocks(coef, block)
    b, k, h, w = coef.shape
    n = int(block)
    if k % (n * n):
        raise ValueError(f"coef must have a multiple of block**2 = {n * n} channels, got {k}")
    d = dct_matrix(n, dtype=coef.dtype, device=coef.device)
    c = k // (n * n)
    blocks = coef.reshape(b, c, n, n, h, w)                             # (B, C n n, h, w) -> (B, C, n, n, h, w)
    tiles = torch.einsum("ux,bcuvij,vy->bcixjy", d, blocks, d)          # D.T @ coef @ D per tile
    return tiles.reshape(b, c, h * n, w * n)


def dct_channel(index: int, block: int = 8) -> tuple[int, int, int]:
    """``(c, u, v)`` of channel ``index`` of :func:`block_dct`: input channel c (0 = Y, 1 = Cb, 2 = Cr for YCbCr),
    vertical frequency u and horizontal frequency v."""
    n2 = block * block
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    c, rest = divmod(int(index), n2)
    u, v = divmod(rest, block)
    return c, u, v
