"""RoI Pool and RoI Align: a fixed-size feature map for every region (lecture 9, Fast/Faster/Mask R-CNN).

Letters used in shapes: B = images, C = channels, H, W = feature map size, K = regions (RoIs),
P, Q = output height and width, G = sampling points per bin along one axis, L = window length.

Convention: a RoI is ``(batch_index, x1, y1, x2, y2)`` in *image* pixels; ``spatial_scale`` (1/stride of
the feature map, e.g. 1/16) maps it onto the feature map. ``boxes`` may also be a list with one
``Tensor[L_b, 4]`` per image, as in torchvision.

- :func:`roi_pool` (Fast R-CNN) rounds the RoI to whole feature cells, splits it into P x Q bins with
  rounded edges and takes the max of each bin; the rounding misaligns the output with the input.
- :func:`roi_align` (Mask R-CNN) keeps the RoI continuous: each bin averages G x G bilinear samples.

How RoI Align is vectorised here: bilinear interpolation is separable. Along y, every bin's average of
samples is a weighted sum of a few feature-map rows, with weights that depend only on the RoI, so the
whole bin grid is ``A_y @ F @ A_x^T``: a small ``(P, L_y)`` weight matrix, the ``(L_y, L_x)`` window of
the map the RoI touches, and a ``(Q, L_x)`` weight matrix. Two batched matrix products per group of
RoIs give exactly torchvision's numbers, and autograd provides the backward pass.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cvcourse._checks import check_same_device, check_shape, check_tensor

__all__ = ["roi_align", "roi_pool"]

# Upper bound on the elements of one gathered window tensor. On a CPU without autograd, 512 KB (float32) groups keep
# the window in cache and let the allocator reuse one block; 64 MB groups paid for fresh pages and main memory every
# time and made roi_align's forward 3.5x slower (benchmarks/ops.py, 1000 RoIs, one thread). With autograd, every
# group's gather adds a full-size gradient buffer in the backward pass, so a few large groups win; on a GPU
# large groups also mean few kernel launches.
_CHUNK_ELEMENTS = 16_000_000
_CHUNK_ELEMENTS_CPU_NO_GRAD = 1 << 17


def _output_size(output_size: int | tuple[int, int]) -> tuple[int, int]:
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size):
        raise ValueError(f"output_size must be an int >= 1 or a pair (P, Q) of them, got {output_size!r}")
    return size  # type: ignore[return-value]


def _rois(input: Tensor, boxes: Tensor | list[Tensor]) -> Tensor:
    """Check the arguments and return RoIs as ``Tensor[K, 5]`` ``(batch_index, x1, y1, x2, y2)``."""
    check_shape(input, "input", (None, None, None, None), hint="as (B, C, H, W)")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating point tensor, got dtype {input.dtype}")
    if isinstance(boxes, (list, tuple)):
        parts = []
        for i, b in enumerate(boxes):
            check_shape(b, f"boxes[{i}]", (None, 4), hint="in (x1, y1, x2, y2) format")
            parts.append(torch.cat([torch.full_like(b[:, :1], i), b], dim=1))  # (L, 4) -> (L, 5)
        rois = torch.cat(parts) if parts else input.new_zeros(0, 5)
    else:
        check_shape(boxes, "boxes", (None, 5), hint="as (batch_index, x1, y1, x2, y2), or pass a list of (L, 4)")
        rois = boxes
    if not rois.is_floating_point():
        raise TypeError(f"boxes must be a floating point tensor, got dtype {rois.dtype}")
    check_same_device("input", input, "boxes", rois)
    rois = rois.detach().to(input.dtype)  # torchvision gives no gradient to the boxes either
    if rois.numel():
        if not bool(torch.isfinite(rois).all()):
            raise ValueError("boxes contains NaN or infinite values")
        idx = rois[:, 0]
        if bool((idx != idx.round()).any()) or int(idx.min()) < 0 or int(idx.max()) >= input.shape[0]:
            raise ValueError(f"batch indices in boxes[:, 0] must be whole numbers in [0, {input.shape[0]}), got {idx.unique().tolist()[:8]}")
        if bool(((rois[:, 3] < rois[:, 1]) | (rois[:, 4] < rois[:, 2])).any()):
            raise ValueError("boxes must satisfy x2 >= x1 and y2 >= y1 (format (batch_index, x1, y1, x2, y2))")
    return rois


def _records_grad(x: Tensor) -> bool:
    """Whether autograd records operations on ``x`` here (a backward pass may follow)."""
    return torch.is_grad_enabled() and x.requires_grad


def _chunk_limit(input: Tensor) -> int:
    """Element bound for one group's window tensor (see ``_CHUNK_ELEMENTS``)."""
    return _CHUNK_ELEMENTS_CPU_NO_GRAD if input.device.type == "cpu" and not _records_grad(input) else _CHUNK_ELEMENTS


def _chunks(sizes: list[int], per_roi: int, limit: int) -> list[list[int]]:
    """Group RoIs (sorted by window size) so that each group's padded window tensor stays within ``limit``."""
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    groups: list[list[int]] = []
    for i in order:
        if groups and (len(groups[-1]) + 1) * sizes[i] * per_roi <= limit:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _gather_windows(flat: Tensor, batch: Tensor, y0: Tensor, x0: Tensor, ly: int, lx: int, h: int, w: int) -> Tensor:
    """``flat[(b, y0 + i, x0 + j)]`` for ``i < ly, j < lx`` as ``Tensor[K, ly, lx, C]`` (clamped at the border).

    ``flat`` is the channels-last map, ``Tensor[B*H*W, C]``.
    """
    rows = (y0[:, None] + torch.arange(ly, device=y0.device)).clamp_(max=h - 1)  # (K, ly)
    cols = (x0[:, None] + torch.arange(lx, device=x0.device)).clamp_(max=w - 1)  # (K, lx)
    index = (batch[:, None, None] * h + rows[:, :, None]) * w + cols[:, None, :]  # (K, ly, lx)
    return flat[index.flatten()].view(len(batch), ly, lx, flat.shape[1])  # (K*ly*lx, C) -> (K, ly, lx, C)


def _align_weights(start: Tensor, length: Tensor, out: int, size: int, grid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-RoI interpolation weights along one axis, torchvision's RoI Align arithmetic.

    Args:
        start (Tensor[K]): RoI start on the feature map (after scale and offset).
        length (Tensor[K]): RoI length on the feature map.
        out (int): number of bins P along this axis.
        size (int): feature map length H (or W).
        grid (Tensor[K]): sampling points G per bin (int64).

    Returns:
        (weights (Tensor[K, P, size]), first (Tensor[K]), span (Tensor[K])): ``weights[k, p, i]`` is the
        share of feature row i in bin p (already divided by G); rows ``first .. first + span - 1`` hold
        all non-zero weights.
    """
    k = start.shape[0]
    g_max = max(int(grid.max()), 1) if k else 1
    bin_size = length / out  # (K,)
    p = torch.arange(out, device=start.device, dtype=start.dtype)[None, :, None]  # (1, P, 1)
    i = torch.arange(g_max, device=start.device, dtype=start.dtype)[None, None, :]  # (1, 1, G)
    g = grid.to(start.dtype)[:, None, None]  # (K, 1, 1)
    bs = bin_size[:, None, None]
    y = start[:, None, None] + p * bs + (i + 0.5) * bs / g  # (K, P, G) sample positions
    used = (i < g) & (y >= -1.0) & (y <= size)  # samples beyond one cell outside the map count as 0
    y = y.clamp(min=0)
    low = y.floor().long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, size - 1, low)
    high = torch.where(at_edge, size - 1, low + 1)
    y = torch.where(at_edge, low.to(y.dtype), y)
    frac = y - low  # distance from the lower row
    w_low = torch.where(used, 1 - frac, 0)
    w_high = torch.where(used, frac, 0)
    weights = torch.zeros(k, out, size, device=start.device, dtype=start.dtype)
    weights.scatter_add_(2, low, w_low).scatter_add_(2, high, w_high)  # (K, P, G) -> (K, P, size)
    weights /= g.clamp(min=1)
    big = torch.iinfo(torch.long).max
    first = torch.where(used, low, big).amin(dim=(1, 2)).clamp(max=size - 1)  # (K,)
    last = torch.where(used, high, -1).amax(dim=(1, 2))
    span = (last - first + 1).clamp(min=1)
    return weights, first, span


def roi_align(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoI Align (He et al., 2017): average of bilinear samples in each of P x Q bins of every RoI.

    Introduced in lecture 9 (Mask R-CNN). Mirrors ``torchvision.ops.roi_align`` with the same arguments
    and numbers (up to float rounding). Computed as two batched matrix products per group of RoIs (see
    the module docstring); differentiable with respect to ``input``.

    Args:
        input (Tensor[B, C, H, W]): feature maps.
        boxes (Tensor[K, 5] or list of Tensor[L, 4]): RoIs ``(batch_index, x1, y1, x2, y2)`` in image
            pixels, or one ``(x1, y1, x2, y2)`` tensor per image.
        output_size (int or (int, int)): (P, Q).
        spatial_scale (float): factor from image pixels to feature cells, e.g. 1/16.
        sampling_ratio (int): G samples per bin along each axis; ``<= 0`` means adaptive,
            ``ceil(roi_size / output_size)`` per RoI, as in torchvision.
        aligned (bool): shift by -0.5 cell so that sample positions line up with pixel centres (the
            Detectron2 fix); ``False`` reproduces the original RoI Align, which also forces every RoI
            to be at least 1 cell wide.

    Returns:
        Tensor[K, C, P, Q]: pooled features, dtype of ``input``.

    Raises:
        TypeError: non-float input or boxes.
        ValueError: wrong shapes, bad batch indices, ``x2 < x1``, or tensors on different devices.
    """
    rois = _rois(input, boxes)
    p_out, q_out = _output_size(output_size)
    b, c, h, w = input.shape
    k = rois.shape[0]
    if k == 0:
        return input.new_zeros(0, c, p_out, q_out)
    offset = 0.5 if aligned else 0.0
    x1, y1 = rois[:, 1] * spatial_scale - offset, rois[:, 2] * spatial_scale - offset
    roi_w, roi_h = rois[:, 3] * spatial_scale - offset - x1, rois[:, 4] * spatial_scale - offset - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        gy = gx = torch.full((k,), sampling_ratio, dtype=torch.long, device=rois.device)
    else:
        gy, gx = torch.ceil(roi_h / p_out).long(), torch.ceil(roi_w / q_out).long()
    ay, y0, ly = _align_weights(y1, roi_h, p_out, h, gy)  # (K, P, H), (K,), (K,)
    ax, x0, lx = _align_weights(x1, roi_w, q_out, w, gx)  # (K, Q, W), (K,), (K,)
    flat = input.permute(0, 2, 3, 1).reshape(b * h * w, c)  # (B, C, H, W) -> (B*H*W, C), channels last
    batch = rois[:, 0].long()
    out = input.new_empty(k, c, p_out, q_out)
    ly_list, lx_list = ly.tolist(), lx.tolist()
    for group in _chunks([a * bb for a, bb in zip(ly_list, lx_list)], c, _chunk_limit(input)):
        g = torch.tensor(group, device=rois.device)
        wy, wx = max(ly_list[i] for i in group), max(lx_list[i] for i in group)
        window = _gather_windows(flat, batch[g], y0[g], x0[g], wy, wx, h, w)  # (k, wy, wx, C)
        # Weights restricted to the window rows/columns; rows past the map edge get weight 0.
        rows = y0[g, None] + torch.arange(wy, device=rois.device)  # (k, wy)
        cols = x0[g, None] + torch.arange(wx, device=rois.device)  # (k, wx)
        wgt_y = ay[g].gather(2, rows.clamp(max=h - 1)[:, None, :].expand(-1, p_out, -1)) * (rows < h)[:, None, :]  # (k, P, wy)
        wgt_x = ax[g].gather(2, cols.clamp(max=w - 1)[:, None, :].expand(-1, q_out, -1)) * (cols < w)[:, None, :]  # (k, Q, wx)
        n = len(group)
        t = torch.bmm(wgt_y, window.reshape(n, wy, wx * c))  # (k, P, wx*C): rows combined
        t = t.view(n, p_out, wx, c).transpose(1, 2).reshape(n, wx, p_out * c)  # -> (k, wx, P*C)
        t = torch.bmm(wgt_x, t)  # (k, Q, P*C): columns combined
        out[g] = t.view(n, q_out, p_out, c).permute(0, 3, 2, 1)  # (k, Q, P, C) -> (k, C, P, Q)
    return out


def _round_half_away(v: Tensor) -> Tensor:
    """C's ``round``: halves go away from zero (``torch.round`` sends them to the even neighbour)."""
    d = v.double()
    return (torch.sign(d) * torch.floor(d.abs() + 0.5)).long()


def roi_pool(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """RoI max pooling (Girshick, 2015): snap the RoI to feature cells, split it into P x Q bins with
    rounded edges, take the maximum of each bin (0 for an empty bin).

    Introduced in lecture 9 (Fast R-CNN's RoI pooling layer). Mirrors ``torchvision.ops.roi_pool``, same
    arithmetic: RoI edges are rounded half away from zero, bin edges are floor/ceil of multiples of the
    float bin size. The backward pass sends each output's gradient to the cell that held its maximum (the
    first one on ties), as torchvision's does.

    Args:
        input (Tensor[B, C, H, W]): feature maps.
        boxes (Tensor[K, 5] or list of Tensor[L, 4]): RoIs as for :func:`roi_align`.
        output_size (int or (int, int)): (P, Q).
        spatial_scale (float): factor from image pixels to feature cells.

    Returns:
        Tensor[K, C, P, Q]: pooled features.
    """
    rois = _rois(input, boxes)
    p_out, q_out = _output_size(output_size)
    b, c, h, w = input.shape
    k = rois.shape[0]
    if k == 0:
        return input.new_zeros(0, c, p_out, q_out)
    dev = input.device
    x1, y1 = _round_half_away(rois[:, 1] * spatial_scale), _round_half_away(rois[:, 2] * spatial_scale)
    x2, y2 = _round_half_away(rois[:, 3] * spatial_scale), _round_half_away(rois[:, 4] * spatial_scale)
    bin_h = (y2 - y1 + 1).clamp(min=1).to(input.dtype) / p_out  # (K,)
    bin_w = (x2 - x1 + 1).clamp(min=1).to(input.dtype) / q_out

    def edges(first: Tensor, bin_size: Tensor, n: int, size: int) -> tuple[Tensor, Tensor]:
        i = torch.arange(n, device=dev, dtype=input.dtype)[None, :]  # (1, n)
        lo = torch.floor(i * bin_size[:, None]).long() + first[:, None]  # (K, n)
        hi = torch.ceil((i + 1) * bin_size[:, None]).long() + first[:, None]
        return lo.clamp(0, size), hi.clamp(0, size)

    hs, he = edges(y1, bin_h, p_out, h)  # (K, P)
    ws, we = edges(x1, bin_w, q_out, w)  # (K, Q)
    lh = (he - hs).clamp(min=1)  # bin heights (K, P)
    lw = (we - ws).clamp(min=1)
    flat = input.permute(0, 2, 3, 1).reshape(b * h * w, c)  # (B, C, H, W) -> (B*H*W, C)
    # One extra row of -inf: cells outside a bin read it, so they never win the max.
    flat = torch.cat([flat, flat.new_full((1, c), float("-inf"))])  # (B*H*W + 1, C)
    outside = b * h * w
    batch = rois[:, 0].long()
    # Each group gathers every cell of every bin and takes the maximum per channel. With autograd, only the
    # position of each maximum is kept (as torchvision does) and read back with one differentiable gather, whose
    # backward is a small scatter; the gradient goes to the first maximum.
    need_grad = _records_grad(input)
    if need_grad:
        winner = torch.empty(k, p_out, q_out, c, dtype=torch.long, device=dev)
    else:
        out = input.new_empty(k, c, p_out, q_out)
    lh_max, lw_max = lh.amax(dim=1).tolist(), lw.amax(dim=1).tolist()
    with torch.no_grad():
        for group in _chunks([a * bb for a, bb in zip(lh_max, lw_max)], c * p_out * q_out, _chunk_limit(flat)):
            g = torch.tensor(group, device=dev)
            n = len(group)
            mh, mw = max(lh_max[i] for i in group), max(lw_max[i] for i in group)
            rows = hs[g][:, :, None] + torch.arange(mh, device=dev)  # (k, P, mh)
            cols = ws[g][:, :, None] + torch.arange(mw, device=dev)  # (k, Q, mw)
            row_ok, col_ok = rows < he[g][:, :, None], cols < we[g][:, :, None]
            # Flat index of cell (row, col) of bin (p, q), laid out as (k, P, Q, mh, mw): row-major inside a bin.
            index = (batch[g][:, None, None, None, None] * h + rows[:, :, None, :, None]) * w + cols[:, None, :, None, :]
            ok = row_ok[:, :, None, :, None] & col_ok[:, None, :, None, :]  # (k, P, Q, mh, mw)
            index = torch.where(ok, index, outside).view(n, p_out, q_out, mh * mw)
            vals = flat.index_select(0, index.flatten()).view(n, p_out, q_out, mh * mw, c)  # every cell of every bin
            best = vals.max(dim=3)  # values and indices (k, P, Q, C); indices point at the first maximum
            if need_grad:
                cells = index[..., None].expand(-1, -1, -1, -1, c)  # (k, P, Q, mh*mw, C)
                winner[g] = cells.gather(3, best.indices[:, :, :, None, :])[:, :, :, 0, :]  # flat row of each max
            else:
                empty = ~ok.flatten(3).any(dim=3)  # (k, P, Q)
                out[g] = torch.where(empty[..., None], 0.0, best.values).permute(0, 3, 1, 2)  # -> (k, C, P, Q)
    if need_grad:
        picked = flat.gather(0, winner.view(-1, c)).view(k, p_out, q_out, c)  # (K, P, Q, C)
        picked = torch.where(winner == outside, 0.0, picked)  # an empty bin gives 0
        out = picked.permute(0, 3, 1, 2).contiguous()  # (K, P, Q, C) -> (K, C, P, Q)
    return out
