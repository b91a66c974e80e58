"""Matching descriptors and fitting a homography with RANSAC (lecture 1).

Letters: N, M descriptors in the two images; D descriptor length; P matched point pairs; I RANSAC iterations.
Points are ``(x, y)`` pixel coordinates; a homography ``Hm (Tensor[3, 3])`` maps ``[x, y, 1]`` of the first
image to homogeneous coordinates in the second.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cvcourse._checks import check_same_device, check_shape

__all__ = [
    "match_descriptors",
    "apply_homography",
    "homography_dlt",
    "ransac_homography",
    "repeatability",
    "stereo_match_correct",
]


def match_descriptors(
    desc1: Tensor, desc2: Tensor, max_ratio: float = 0.8, cross_check: bool = False
) -> tuple[Tensor, Tensor]:
    """Nearest-neighbour matching with Lowe's ratio test.

    A descriptor of the first image is matched to its nearest neighbour in the second (Euclidean distance)
    only when that neighbour is clearly closer than the second nearest: ``d1 / d2 < max_ratio``. Mirrors
    ``skimage.feature.match_descriptors(desc1, desc2, max_ratio=..., cross_check=...)`` and OpenCV's
    ``BFMatcher.knnMatch(k=2)`` followed by the ratio test. Introduced in lecture 1.

    Args:
        desc1 (Tensor[N, D]): descriptors of the first image.
        desc2 (Tensor[M, D]): descriptors of the second image.
        max_ratio: Lowe's ratio, in (0, 1]; 1 disables the test (plain nearest neighbour).
        cross_check: keep a match only if it is also the nearest neighbour in the other direction.

    Returns:
        matches (Tensor[P, 2]): int64 ``(index in desc1, index in desc2)`` pairs.
        distances (Tensor[P]): descriptor distance of each match.
    """
    check_shape(desc1, "desc1", (None, None))
    check_shape(desc2, "desc2", (None, desc1.shape[1]), hint=f"(the same length D={desc1.shape[1]} as desc1)")
    check_same_device("desc1", desc1, "desc2", desc2)
    if not 0 < max_ratio <= 1:
        raise ValueError(f"max_ratio must be in (0, 1], got {max_ratio}")
    empty = (desc1.new_zeros(0, 2, dtype=torch.long), desc1.new_zeros(0))
    if len(desc1) == 0 or len(desc2) == 0:
        return empty
    dist = torch.cdist(desc1.float(), desc2.float())  # (N, M)
    k = min(2, len(desc2))
    best, nn = dist.topk(k, dim=1, largest=False)  # (N, k)
    keep = torch.ones(len(desc1), dtype=torch.bool, device=desc1.device)
    if k == 2 and max_ratio < 1:
        keep &= best[:, 0] < max_ratio * best[:, 1]
    if cross_check:
        back = dist.argmin(0)  # (M,) nearest in desc1 for each of desc2
        keep &= back[nn[:, 0]] == torch.arange(len(desc1), device=desc1.device)
    i = keep.nonzero(as_tuple=True)[0]
    return torch.stack([i, nn[i, 0]], 1), best[i, 0]


def apply_homography(Hm: Tensor, points: Tensor) -> Tensor:
    """Map ``points (Tensor[P, 2])`` through ``Hm (Tensor[3, 3])`` (or a batch ``Tensor[I, 3, 3]`` -> ``[I, P, 2]``).

    Mirrors ``cv2.perspectiveTransform``. Introduced in lecture 1.
    """
    check_shape(points, "points", (None, 2), hint="of (x, y)")
    hom = torch.cat([points, points.new_ones(len(points), 1)], 1)  # (P, 2) -> (P, 3)
    out = hom @ Hm.transpose(-1, -2)  # (..., P, 3)
    w = out[..., 2:]
    w = torch.where(w.abs() < 1e-12, torch.full_like(w, 1e-12), w)
    return out[..., :2] / w


def _normaliser(points: Tensor) -> Tensor:
    """Hartley normalisation ``T (Tensor[..., 3, 3])``: centroid to the origin, mean distance sqrt(2)."""
    mean = points.mean(-2)  # (..., 2)
    dist = (points - mean[..., None, :]).norm(dim=-1).mean(-1).clamp(min=1e-12)  # (...)
    s = 2**0.5 / dist
    T = torch.zeros(*points.shape[:-2], 3, 3, dtype=points.dtype, device=points.device)
    T[..., 0, 0] = s
    T[..., 1, 1] = s
    T[..., 0, 2] = -s * mean[..., 0]
    T[..., 1, 2] = -s * mean[..., 1]
    T[..., 2, 2] = 1
    return T


def homography_dlt(src: Tensor, dst: Tensor) -> Tensor:
    """Least-squares homography by the normalised direct linear transform (batched).

    Each pair gives two linear equations in the 9 entries of ``Hm``; the solution is the right singular vector
    of the smallest singular value, after Hartley's normalisation. Mirrors ``cv2.findHomography(src, dst, 0)``.
    Introduced in lecture 1.

    Args:
        src (Tensor[..., P, 2]): points in the first image, P >= 4.
        dst (Tensor[..., P, 2]): corresponding points in the second image.

    Returns:
        Tensor[..., 3, 3]: homographies scaled so that ``Hm[2, 2] = 1`` (where possible).
    """
    if src.shape != dst.shape or src.dim() < 2 or src.shape[-1] != 2:
        raise ValueError(f"src and dst must both have shape (..., P, 2), got {tuple(src.shape)} and {tuple(dst.shape)}")
    if src.shape[-2] < 4:
        raise ValueError(f"a homography needs at least 4 point pairs, got {src.shape[-2]}")
    src64, dst64 = src.double(), dst.double()
    Ts, Td = _normaliser(src64), _normaliser(dst64)
    ps = (torch.cat([src64, torch.ones_like(src64[..., :1])], -1) @ Ts.transpose(-1, -2))[..., :2]
    pd = (torch.cat([dst64, torch.ones_like(dst64[..., :1])], -1) @ Td.transpose(-1, -2))[..., :2]
    x, y, u, v = ps[..., 0], ps[..., 1], pd[..., 0], pd[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y, -u], -1)  # (..., P, 9)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y, -v], -1)
    A = torch.cat([rows_u, rows_v], -2)  # (..., 2P, 9)
    _, _, Vh = torch.linalg.svd(A.transpose(-1, -2) @ A)  # 9x9 normal matrix: cheap for any P
    Hn = Vh[..., -1, :].reshape(*A.shape[:-2], 3, 3)  # (..., 9) -> (..., 3, 3)
    Hm = torch.linalg.inv(Td) @ Hn @ Ts
    scale = Hm[..., 2:, 2:]
    Hm = Hm / torch.where(scale.abs() < 1e-12, torch.ones_like(scale), scale)
    return Hm.to(src.dtype)


def ransac_homography(
    src: Tensor,
    dst: Tensor,
    threshold: float = 3.0,
    max_iters: int = 2000,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Robust homography: RANSAC over minimal 4-point samples, then a least-squares refit on the inliers.

    All ``max_iters`` hypotheses are drawn, fitted (batched DLT) and scored at once; the one with most points
    whose reprojection error ``|Hm(src) - dst|`` is below ``threshold`` pixels wins and is refitted on its
    inliers (twice). Mirrors ``cv2.findHomography(src, dst, cv2.RANSAC, threshold)``. Introduced in lecture 1.

    Args:
        src (Tensor[P, 2]): matched points in the first image.
        dst (Tensor[P, 2]): the same matches in the second image.
        threshold: inlier reprojection error in pixels.
        max_iters: number of random 4-point samples.
        seed: seed of the sampler (results are reproducible).

    Returns:
        Hm (Tensor[3, 3]): the homography from ``src`` to ``dst``.
        inliers (Tensor[P]): bool mask of the inlier matches.
    """
    check_shape(src, "src", (None, 2), hint="of (x, y)")
    check_shape(dst, "dst", (len(src), 2), hint="(the same number of points as src)")
    check_same_device("src", src, "dst", dst)
    P = len(src)
    if P < 4:
        raise ValueError(f"ransac_homography needs at least 4 matches, got {P}")
    gen = torch.Generator().manual_seed(seed)
    sample = torch.randint(P, (max_iters, 4), generator=gen).to(src.device)  # (I, 4)
    s = sample.sort(1).values
    distinct = (s[:, 1:] != s[:, :-1]).all(1)  # samples that repeat a point are skipped
    src64, dst64 = src.double(), dst.double()
    Hs = homography_dlt(src64[sample], dst64[sample])  # (I, 3, 3)
    err = (apply_homography(Hs, src64) - dst64).norm(dim=-1)  # (I, P)
    good = torch.isfinite(Hs).all(-1).all(-1) & distinct
    counts = ((err < threshold) & good[:, None]).sum(1)
    best = Hs[counts.argmax()]
    inliers = (apply_homography(best, src64) - dst64).norm(dim=-1) < threshold
    for _ in range(2):
        if inliers.sum() < 4:
            break
        best = homography_dlt(src64[inliers], dst64[inliers])
        inliers = (apply_homography(best, src64) - dst64).norm(dim=-1) < threshold
    return best.to(src.dtype if src.is_floating_point() else torch.float32), inliers


# ----------------------------------------------------------------------------------------------------------------
# Evaluation: how often keypoints come back and matches are right
# ----------------------------------------------------------------------------------------------------------------


def repeatability(
    kp1: Tensor,
    kp2: Tensor,
    Hm: Tensor | None = None,
    shape2: tuple[int, int] | None = None,
    tol: float = 2.0,
    size_tol: float | None = 0.25,
) -> float:
    """Fraction of keypoints of the first set that have a partner in the second set.

    Each keypoint of ``kp1`` is mapped by ``Hm`` (identity if None) into the second image; those landing outside
    ``shape2 = (H, W)`` are not counted. A mapped keypoint is repeated when some keypoint of ``kp2`` lies within
    ``tol`` pixels and, if ``size_tol`` is given, its size differs by less than that fraction from the mapped
    size (scaled by ``sqrt|det Hm[:2, :2]|``). Used in lecture 1 to compare with OpenCV.

    Args:
        kp1 (Tensor[N, 3+]): columns ``x, y, size`` (e.g. :func:`~cvcourse.features.sift_pipeline.sift` keypoints).
        kp2 (Tensor[M, 3+]): the keypoints found in the second image.
        Hm (Tensor[3, 3]): homography from image 1 to image 2.
        shape2: size ``(H, W)`` of the second image.
        tol: distance in pixels.
        size_tol: relative size tolerance, or None to ignore sizes.

    Returns:
        float in [0, 1] (NaN when no keypoint of ``kp1`` lands inside the second image).
    """
    check_shape(kp1[:, :3] if kp1.dim() == 2 else kp1, "kp1", (None, 3), hint="(x, y, size, ...)")
    check_shape(kp2[:, :3] if kp2.dim() == 2 else kp2, "kp2", (None, 3), hint="(x, y, size, ...)")
    pts, size = kp1[:, :2].double(), kp1[:, 2].double()
    if Hm is not None:
        Hm = Hm.to(pts)
        pts = apply_homography(Hm, pts)
        size = size * Hm[:2, :2].det().abs().sqrt()
    inside = torch.ones(len(pts), dtype=torch.bool, device=pts.device)
    if shape2 is not None:
        inside = (pts[:, 0] >= 0) & (pts[:, 0] <= shape2[1] - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= shape2[0] - 1)
    if not bool(inside.any()):
        return float("nan")
    if len(kp2) == 0:
        return 0.0
    pts, size = pts[inside], size[inside]
    near = torch.cdist(pts, kp2[:, :2].to(pts)) < tol  # (N', M)
    if size_tol is not None:
        near &= (kp2[None, :, 2].to(pts) / size[:, None] - 1).abs() < size_tol
    return near.any(1).double().mean().item()


def stereo_match_correct(pts1: Tensor, pts2: Tensor, disparity: Tensor, tol: float = 2.0) -> Tensor:
    """Which matches of a rectified stereo pair agree with the ground-truth disparity.

    In a rectified pair a point ``(x, y)`` of the left image appears at ``(x - d(x, y), y)`` in the right image.
    A match is correct when the matched right point is within ``tol`` pixels (Euclidean) of that prediction;
    matches at pixels without a valid (finite) disparity count as incorrect. Used in lecture 1 on
    ``skimage.data.stereo_motorcycle()``.

    Args:
        pts1 (Tensor[P, 2]): ``(x, y)`` in the left image.
        pts2 (Tensor[P, 2]): matched ``(x, y)`` in the right image.
        disparity (Tensor[H, W]): left-image disparity in pixels (inf or NaN where unknown).
        tol: pixels.

    Returns:
        Tensor[P]: bool.
    """
    check_shape(pts1, "pts1", (None, 2))
    check_shape(pts2, "pts2", (len(pts1), 2), hint="(one right point per left point)")
    check_shape(disparity, "disparity", (None, None))
    H, W = disparity.shape
    xi = pts1[:, 0].round().long().clamp(0, W - 1)
    yi = pts1[:, 1].round().long().clamp(0, H - 1)
    d = disparity.to(pts1.device, torch.float64)[yi, xi]
    err = torch.hypot(pts2[:, 0].double() - (pts1[:, 0].double() - d), (pts2[:, 1] - pts1[:, 1]).double())
    return torch.isfinite(d) & (err < tol)
