"""Non-maximum suppression (lecture 8, object detection: R-CNN, IoU and NMS).

Letters used in shapes: N = number of boxes, K = number of kept boxes, T = boxes in one block,
G = classes in one group, m = boxes in the largest class of a group.

Convention: boxes are ``(x1, y1, x2, y2)``; a box is suppressed by a *kept* box with a higher score
when their IoU is strictly greater than ``iou_threshold`` (so a pair exactly at the threshold survives).

Three versions, all returning exactly what ``torchvision.ops.nms`` returns:

- :func:`nms_naive` is the lecture's greedy loop: take the best remaining box, drop everything that
  overlaps it too much, repeat. One Python iteration per kept box.
- :func:`nms` gets the same answer from the matrix of pairwise IoUs of the score-sorted boxes. Box j
  is kept iff no *kept* box i < j overlaps it, ``keep[j] = not any_i(keep[i] and over[i, j])``; this has
  one solution, and iterating the rule from "keep everything" reaches it in a few rounds (the idea of
  Cluster-NMS, Zheng et al., 2020). Boxes are processed in blocks of T sorted boxes, so memory stays
  ``O(N * T)`` instead of ``O(N^2)``: each block is first checked against the boxes already kept, then the
  fixed point is solved inside the block for the survivors.
- :func:`batched_nms` runs NMS independently per class. Each class gets its own IoU matrix; classes of
  similar size are padded to a common size m and stacked, and one fixed point solves a whole stack.
  When a class is larger than one block, boxes are ordered by class, then by score, and one blocked
  pass lets only boxes of the same class suppress each other.

Ties: boxes with equal scores are ranked by their position in the input (a stable descending sort),
which is the order torchvision's CPU kernel uses.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cvcourse._checks import check_boxes, check_same_device, check_shape, check_tensor
from cvcourse.ops.boxes import _inter_union

__all__ = ["nms", "nms_naive", "batched_nms"]

# Block sizes T: how many sorted boxes share one (T, T) IoU matrix. 512 was fastest on a 2-core CPU for
# 1k-20k clustered boxes; a GPU affords larger blocks (fewer, bigger kernels). Memory is O(T * N).
_BLOCK_CPU = 512
_BLOCK_GPU = 4096
# Element bound of one group of per-class IoU matrices in batched_nms: on a CPU, 1 MB (float32) groups stay in
# cache; a GPU wants few, large kernels.
_GROUP_CPU = 1 << 18
_GROUP_GPU = 1 << 26


def _check_nms_args(boxes: Tensor, scores: Tensor, iou_threshold: float) -> None:
    check_tensor(boxes, "boxes")
    check_tensor(scores, "scores")
    if not boxes.is_floating_point():
        raise TypeError(f"boxes must be a floating point tensor, got dtype {boxes.dtype}; use boxes.float()")
    check_boxes(boxes, "boxes")
    check_shape(scores, "scores", (boxes.shape[0],), hint="(one score per box)")
    if not scores.is_floating_point():
        raise TypeError(f"scores must be a floating point tensor, got dtype {scores.dtype}")
    if scores.numel() and bool(torch.isnan(scores).any()):
        raise ValueError("scores contains NaN; NaN has no place in a ranking, so drop or replace those boxes first")
    check_same_device("boxes", boxes, "scores", scores)
    if isinstance(iou_threshold, (Tensor, bool)) or not isinstance(iou_threshold, (int, float)):
        raise TypeError(f"iou_threshold must be a Python float, got {type(iou_threshold).__name__}")
    if not iou_threshold >= 0:  # also catches NaN
        raise ValueError(f"iou_threshold must be a number >= 0 (usually 0.3-0.7), got {iou_threshold}")


def _threshold(iou_threshold: float, dtype: torch.dtype) -> float | Tensor:
    """A threshold ``t`` in ``dtype`` such that ``iou > t`` (in ``dtype``) equals the float64 test
    ``iou > iou_threshold`` that torchvision's kernels make.

    Comparing a float32 tensor with a Python float rounds the float to float32 first. When that rounds
    *up* (0.3 becomes 0.30000001), an IoU equal to float32(0.3) would escape suppression although it is
    greater than 0.3; stepping the threshold one float32 down restores the exact test.
    """
    if dtype == torch.float64:
        return float(iou_threshold)
    t = torch.tensor(iou_threshold, dtype=dtype)
    if t.double().item() > iou_threshold:
        t = torch.nextafter(t, torch.tensor(float("-inf"), dtype=dtype))
    return t.item()


def _columns(boxes: Tensor) -> Tensor:
    """Boxes as rows ``x1, y1, x2, y2, area``: ``Tensor[5, N]``, each row contiguous.

    Pairwise operations broadcast a row against a row; on contiguous rows they vectorise, on the
    columns of an ``(N, 4)`` tensor (stride 4) they are several times slower.
    """
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # (N,)
    return torch.cat([boxes.T, area[None]]).contiguous()  # (N, 4) -> (5, N)


def _iou_table(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every pair, ``Tensor[N, M]``, from column tables ``a (Tensor[5, N])`` and ``b (Tensor[5, M])``.
    Leading batch dimensions are allowed: ``(C, 5, N)`` and ``(C, 5, M)`` give ``(C, N, M)``.

    The arithmetic is torchvision's (``inter / (area_a + area_b - inter)``), so a pair at the threshold
    is decided the same way. Where the union is 0 (two empty boxes) the IoU is 0 here, not NaN:
    clamping the union at the smallest positive float changes nothing else, because a union is
    either 0 or at least that large.
    """
    def pair(row: int, fn) -> Tensor:  # fn(row of a, row of b) for every pair: (..., N, M)
        return fn(a[..., row, :, None], b[..., row, None, :])

    w = pair(2, torch.minimum).sub_(pair(0, torch.maximum)).clamp_(min=0)
    h = pair(3, torch.minimum).sub_(pair(1, torch.maximum)).clamp_(min=0)
    inter = w.mul_(h)  # (..., N, M)
    union = pair(4, torch.add).sub_(inter).clamp_(min=_tiny(a.dtype))
    return inter.div_(union)


def _tiny(dtype: torch.dtype) -> float:
    return torch.nextafter(torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype)).item()


def _solve_block(iou: Tensor, threshold: float) -> Tensor:
    """Solve ``keep[j] = not any_{i<j}(keep[i] and iou[i, j] > threshold)`` for one block.

    Args:
        iou (Tensor[T, T] or Tensor[C, T, T]): IoU of score-sorted boxes, zeroed on and below the
            diagonal; with a leading C, C independent blocks are solved at once.
        threshold (float): from :func:`_threshold`.

    Returns:
        Tensor[T] or Tensor[C, T]: bool keep mask. Starting from "keep all", each round fixes at least the next box in a
        suppression chain, and rounds stop as soon as nothing changes (usually after 2-4).
    """
    over = (iou > threshold).to(iou.dtype)  # (T, T) of 0/1
    keep = torch.ones(iou.shape[:-1], dtype=iou.dtype, device=iou.device)
    while True:
        # Number of kept boxes that would suppress each box; a vector-matrix product counts exactly.
        new_keep = ((keep.unsqueeze(-2) @ over).squeeze(-2) == 0).to(iou.dtype)  # (..., T)
        if torch.equal(new_keep, keep):
            return keep.bool()
        keep = new_keep


def _nms_sorted(boxes: Tensor, threshold: float, labels: Tensor | None = None, block: int | None = None) -> Tensor:
    """Exact greedy NMS of boxes already sorted by decreasing score, in blocks of T boxes.

    Each block of T candidates is first compared with the boxes kept so far, a chunk of at most T kept
    boxes at a time (the first chunks hold the best boxes and usually remove most candidates, so later
    chunks meet few survivors), then the survivors settle among themselves with :func:`_solve_block`.
    Memory is ``O(T * max(T, N))`` at most, never ``O(N^2)``.

    Args:
        boxes (Tensor[N, 4]): float32/float64 boxes sorted by score.
        threshold (float): from :func:`_threshold`.
        labels (Tensor[N], optional): class of each box, sorted ascending (boxes sorted by class, then
            by score); boxes of different classes never suppress each other. Because classes come in
            order, a block only needs the kept boxes of its own classes, a slice of the last chunk(s).
        block (int, optional): T; by default 512 on CPU and 4096 on a GPU.

    Returns:
        Tensor[K]: int64 positions (into the sorted boxes) of the kept boxes, increasing.
    """
    n = boxes.shape[0]
    if block is None:
        block = _BLOCK_CPU if boxes.device.type == "cpu" else _BLOCK_GPU
    cols = _columns(boxes)  # (5, N)
    kept_pos: list[Tensor] = []
    kept: list[tuple[Tensor, Tensor | None]] = []  # chunks of (columns, labels) of kept boxes, best first
    for start in range(0, n, block):
        pos = torch.arange(start, min(start + block, n), device=boxes.device)  # (T,)
        cand = cols[:, start : start + block]  # (5, T)
        lab = labels[start : start + block] if labels is not None else None
        if lab is None:
            earlier = kept
        else:  # only the tail of the kept boxes can share a class with this block
            first = lab[:1]
            earlier = []
            for kept_cols, kept_lab in reversed(kept):
                i = int(torch.searchsorted(kept_lab, first))
                if i < kept_lab.shape[0]:
                    earlier.insert(0, (kept_cols[:, i:], kept_lab[i:]))
                if i > 0:
                    break
        for kept_cols, kept_lab in earlier:  # 1) suppressed by a box kept in an earlier block?
            iou = _iou_table(kept_cols, cand)  # (K, T)
            if lab is not None:
                iou.masked_fill_(kept_lab[:, None] != lab[None, :], 0)
            alive = iou.amax(dim=0) <= threshold  # (T,)
            pos, cand = pos[alive], cand[:, alive]
            lab = lab[alive] if lab is not None else None
            if pos.numel() == 0:
                break
        if pos.numel() == 0:
            continue
        iou = _iou_table(cand, cand).triu_(diagonal=1)  # (T, T): only i < j may suppress
        if lab is not None:
            iou.masked_fill_(lab[:, None] != lab[None, :], 0)
        keep = _solve_block(iou, threshold)  # 2) the fixed point inside the block
        kept_pos.append(pos[keep])
        kept.append((cand[:, keep], lab[keep] if lab is not None else None))
        # Merge small chunks so that step 1 stays a few large tensor operations.
        if len(kept) > 1 and kept[-1][0].shape[1] + kept[-2][0].shape[1] <= block:
            (c1, l1), (c2, l2) = kept[-2], kept.pop()
            kept[-1] = (torch.cat([c1, c2], dim=1), torch.cat([l1, l2]) if l1 is not None else None)
    if not kept_pos:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    return torch.cat(kept_pos)


def _as_float(boxes: Tensor) -> Tensor:
    return boxes if boxes.dtype in (torch.float32, torch.float64) else boxes.float()


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression: keep the highest-scoring box, drop every box whose IoU with a kept
    box is greater than ``iou_threshold``, and continue with the next surviving box.

    Introduced in lecture 8 (NMS after R-CNN's region scoring). Mirrors ``torchvision.ops.nms`` and returns
    the same indices in the same order; the algorithm is the blocked fixed point described in the module
    docstring, vectorised and device-agnostic. Deviations: float16 boxes are processed in float32, and
    malformed input (``x2 < x1``, NaN scores) raises instead of giving an unspecified answer.

    Args:
        boxes (Tensor[N, 4]): float boxes in ``(x1, y1, x2, y2)`` format.
        scores (Tensor[N]): float score of each box.
        iou_threshold (float): boxes with IoU strictly greater than this are suppressed.

    Returns:
        Tensor[K]: int64 indices of the kept boxes, sorted by decreasing score (ties: input order).

    Raises:
        TypeError: non-float boxes or scores, or a non-float threshold.
        ValueError: wrong shapes, ``x2 < x1``, NaN coordinates or scores, or tensors on different devices.
    """
    _check_nms_args(boxes, scores, iou_threshold)
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices  # (N,)
    b = _as_float(boxes)[order]
    return order[_nms_sorted(b, _threshold(iou_threshold, b.dtype))]


def nms_naive(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """The lecture's greedy NMS as a plain loop: one iteration per kept box.

    Introduced in lecture 8 (NMS). Same result as :func:`nms` and ``torchvision.ops.nms``, but it runs one
    Python iteration (and, on a GPU, one synchronisation) per kept box, which is why the library uses
    :func:`nms` instead.

    Note: the slide's pseudocode discards a box if *any* higher-scoring box overlaps it, including boxes
    that were themselves discarded. That differs from greedy NMS on chains: if A suppresses B and B
    overlaps C but A does not, greedy NMS keeps C (B is gone and cannot suppress anything). This loop
    only compares against boxes that are still in the running.

    Args:
        boxes (Tensor[N, 4]): float boxes in ``(x1, y1, x2, y2)`` format.
        scores (Tensor[N]): float score of each box.
        iou_threshold (float): boxes with IoU strictly greater than this are suppressed.

    Returns:
        Tensor[K]: int64 indices of the kept boxes, sorted by decreasing score (ties: input order).
    """
    _check_nms_args(boxes, scores, iou_threshold)
    boxes = _as_float(boxes)
    threshold = _threshold(iou_threshold, boxes.dtype)
    remaining = torch.sort(scores, descending=True, stable=True).indices  # best first
    keep = []
    while remaining.numel() > 0:
        best, rest = remaining[0], remaining[1:]
        keep.append(best)
        # Drop the boxes that overlap the best one too much; the others stay in the running.
        too_close = _iou_table(_columns(boxes[best][None]), _columns(boxes[rest]))[0] > threshold  # (len(rest),)
        remaining = rest[~too_close]
    if not keep:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    return torch.stack(keep)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS run separately for each category: boxes with different ``idxs`` never suppress each other.

    Introduced in lecture 8 (NMS per class in a detector's post-processing). Mirrors
    ``torchvision.ops.batched_nms``; the result is exactly the union of per-class :func:`nms` results, in
    decreasing score order. How: when no class has more boxes than one NMS block (T), each class's boxes,
    best first, fill one row of a padded table, so that the IoU matrices of a group of classes are one
    ``(G, m, m)`` tensor and one fixed point solves the group (:func:`_nms_per_class`). Otherwise one
    blocked pass over the boxes sorted by class does it, letting only boxes of one class suppress each
    other (:func:`_nms_sorted` with labels).

    torchvision computes small inputs with the coordinate-offset trick, shifting each class far apart
    and running one NMS. The shift rounds coordinates (a float32 box near x = 500 loses its low bits when
    moved by 80 x 1000), so at the threshold its answer can differ from per-class NMS by a box. This
    function never shifts.

    Args:
        boxes (Tensor[N, 4]): float boxes in ``(x1, y1, x2, y2)`` format.
        scores (Tensor[N]): float score of each box.
        idxs (Tensor[N]): integer category of each box.
        iou_threshold (float): boxes with IoU strictly greater than this are suppressed.

    Returns:
        Tensor[K]: int64 indices of the kept boxes, sorted by decreasing score (ties: input order).
    """
    _check_nms_args(boxes, scores, iou_threshold)
    check_tensor(idxs, "idxs")
    check_shape(idxs, "idxs", (boxes.shape[0],), hint="(one category per box)")
    if idxs.is_floating_point() or idxs.dtype == torch.bool or idxs.is_complex():
        raise TypeError(f"idxs must be an integer tensor of categories, got dtype {idxs.dtype}")
    check_same_device("boxes", boxes, "idxs", idxs)
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices  # (N,) best first
    by_class = torch.sort(idxs[order], stable=True).indices  # (N,) classes contiguous, best first in each
    perm = order[by_class]
    b, labels = _as_float(boxes)[perm], idxs[perm]
    threshold = _threshold(iou_threshold, b.dtype)
    counts = torch.unique_consecutive(labels, return_counts=True)[1]  # (C,) boxes per class
    cpu = boxes.device.type == "cpu"
    block = _BLOCK_CPU if cpu else _BLOCK_GPU
    if int(counts.max()) <= block:  # every class fits one block: solve classes, never mixing them
        kept = _nms_per_class(b, counts, threshold, _GROUP_CPU if cpu else _GROUP_GPU)
    else:
        kept = _nms_sorted(b, threshold, labels=labels)
    # kept are positions in perm. Back to one ranking: by_class[kept] are positions in the score order, so
    # sorting them ranks the kept boxes by decreasing score, with input order among equal scores.
    return order[torch.sort(by_class[kept]).values]


def _nms_per_class(boxes: Tensor, counts: Tensor, threshold: float, limit: int) -> Tensor:
    """Exact NMS of every class, on boxes sorted by class and, within a class, by score.

    Classes of similar size are grouped; a group of G classes, the largest with m boxes, becomes one
    ``(G, m)`` table of boxes (each class's boxes best first, then padding), so its IoU matrices are one
    ``(G, m, m)`` tensor of at most ``limit`` elements and one fixed point solves the whole group.

    Args:
        boxes (Tensor[N, 4]): float32/float64 boxes, class after class, best first in each class.
        counts (Tensor[C]): number of boxes of each class, in that order.
        threshold (float): from :func:`_threshold`.
        limit (int): element bound for one group's ``(G, m, m)`` tensor.

    Returns:
        Tensor[K]: int64 positions (into ``boxes``) of the kept boxes, in no particular order.
    """
    n, dev = boxes.shape[0], boxes.device
    cols = _columns(boxes)  # (5, N)
    first = torch.cumsum(counts, 0) - counts  # (C,) position of each class's best box
    kept = []
    for group in _size_groups(counts.tolist(), limit):
        g = torch.tensor(group, device=dev)
        m = int(counts[g].max())
        pos = first[g, None] + torch.arange(m, device=dev)  # (G, m) positions of each class's boxes
        real = pos < (first[g] + counts[g])[:, None]  # (G, m): False on the padding at the end of a row
        # Padding repeats a real box; it comes after the class's real boxes, so under triu it suppresses none.
        table = cols[:, pos.clamp(max=n - 1)].transpose(0, 1)  # (5, G, m) -> (G, 5, m)
        iou = _iou_table(table, table).triu_(diagonal=1)  # (G, m, m): only a better box of the class suppresses
        keep = _solve_block(iou, threshold) & real  # (G, m)
        kept.append(pos[keep])
    return torch.cat(kept)


def _size_groups(counts: list[int], limit: int) -> list[list[int]]:
    """Classes sorted by size, grouped so that ``len(group) * max_count ** 2 <= limit`` (or one class)."""
    groups: list[list[int]] = []
    for i in sorted(range(len(counts)), key=counts.__getitem__):  # increasing size: the last one is the max
        if groups and (len(groups[-1]) + 1) * counts[i] ** 2 <= limit:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups
