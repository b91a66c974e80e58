"""SIFT: scale-invariant keypoints and 128-d descriptors in vectorised PyTorch (lecture 1).

The pipeline follows Lowe (IJCV 2004) with OpenCV's default settings (``cv2.SIFT_create()``), so the two
can be compared keypoint by keypoint:

1. Gaussian scale space: per octave ``S + 3`` images blurred to ``sigma * 2**(s / S)``; the next octave starts
   from the image with twice the base blur, sub-sampled by 2.  The input is first upsampled 2x, as OpenCV does.
2. Difference of Gaussians (DoG): ``S + 2`` differences of neighbouring blur levels.
3. Extrema: samples larger (or smaller) than all 26 neighbours in the 3x3x3 (scale, y, x) cube.
4. Sub-pixel refinement: a quadratic fit (Newton step) in (x, y, scale) for all candidates at once,
   then a contrast test on the interpolated DoG value and an edge test on the 2x2 spatial Hessian.
5. Orientation: a 36-bin, Gaussian-weighted histogram of gradient directions around each keypoint; every
   smoothed peak within 80% of the highest gives a keypoint (so one location may carry several angles).
6. Descriptor: a 4x4 grid of 8-bin orientation histograms in the keypoint's rotated, scaled frame, filled
   with trilinear interpolation; L2-normalised, clipped at 0.2 and normalised again.

Deviation from OpenCV, on purpose: gradients for the orientation histogram and the descriptor are
sampled bilinearly on a fixed grid in the keypoint's own frame (19x19 and 20x20 samples) instead of
visiting every pixel of a window whose size depends on the scale.  Every keypoint then costs the same,
which turns the two stages into a few batched tensor ops (a gather and one matrix product).

Conventions (the same as ``cv2.KeyPoint``): ``x`` is the column and ``y`` the row, in input pixels
(pixel centres at integers); ``size`` is the diameter of the keypoint's region, ``2 * sigma`` in input
pixels; ``angle`` is the dominant gradient direction in degrees in ``[0, 360)``, measured from the x axis
towards the y axis (clockwise on screen, because y points down); ``octave`` is -1 for the upsampled octave.

Letters: H, W image height and width; S scale levels per octave (``n_layers``); K keypoints;
G samples per keypoint; D descriptor length (128).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cvcourse._checks import check_shape, check_tensor

__all__ = [
    "KEYPOINT_FIELDS",
    "SiftResult",
    "gaussian_blur",
    "gaussian_scale_space",
    "difference_of_gaussians",
    "scale_space_extrema",
    "sift",
    "sift_descriptors",
    "detect_and_compute",
    "to_gray_tensor",
    "keypoints_from_cv2",
    "keypoints_to_cv2",
]

#: Columns of a keypoint tensor, in the order used by every function here.
KEYPOINT_FIELDS = ("x", "y", "size", "angle", "response", "octave")

_BORDER = 5  # keypoints closer than this to an octave's edge are dropped (OpenCV: SIFT_IMG_BORDER)
_MAX_STEPS = 5  # Newton steps of the sub-pixel refinement (OpenCV: SIFT_MAX_INTERP_STEPS)
_ORI_BINS = 36
_ORI_PEAK_RATIO = 0.8
_ORI_SIGMA = 1.5  # Gaussian window of the orientation histogram, in units of the keypoint's scale
_DESC_WIDTH = 4  # d: the descriptor is a d x d grid of histograms
_DESC_BINS = 8  # orientation bins per histogram
_DESC_SCALE = 3.0  # one histogram cell is 3 * scale pixels wide (OpenCV: SIFT_DESCR_SCL_FCTR)
_DESC_CLIP = 0.2
_ORI_GRID = 19  # orientation samples per side: offsets -4.5 .. 4.5 scales, step 0.5
_DESC_GRID = 20  # descriptor samples per side: 4 per cell over d + 1 cells (trilinear spill-over)


class SiftResult(NamedTuple):
    """What :func:`sift` returns.

    Attributes:
        keypoints (Tensor[K, 6]): columns ``x, y, size, angle, response, octave`` (see :data:`KEYPOINT_FIELDS`).
        descriptors (Tensor[K, 128]): unit-length float descriptors, one row per keypoint.
    """

    keypoints: Tensor
    descriptors: Tensor


# ----------------------------------------------------------------------------------------------------------------
# Input handling
# ----------------------------------------------------------------------------------------------------------------


def to_gray_tensor(image: Tensor | np.ndarray, device: torch.device | str | None = None) -> Tensor:
    """Turn an image into the ``Tensor[H, W]`` float in [0, 1] that :func:`sift` works on.

    Args:
        image: ``Tensor[H, W]``, ``Tensor[1, H, W]`` or ``Tensor[3, H, W]`` float in [0, 1]; or a NumPy array
            ``(H, W)`` / ``(H, W, 3)``, uint8 in [0, 255] or float in [0, 1]. Colour becomes gray with the
            ITU-R 601 weights that ``cv2.cvtColor(..., COLOR_RGB2GRAY)`` uses.
        device: where the result should live (default: the tensor's own device, or the CPU for NumPy).

    Returns:
        Tensor[H, W]: float32 (float64 stays float64).
    """
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 3 and arr.shape[-1] in (1, 3):
            arr = np.moveaxis(arr, -1, 0)  # (H, W, C) -> (C, H, W)
        scale = 255.0 if arr.dtype == np.uint8 else 1.0
        if arr.dtype == np.uint8 or not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float32)
        image = torch.from_numpy(np.ascontiguousarray(arr)) / scale
    check_tensor(image, "image")
    if image.dim() == 3 and image.shape[0] in (1, 3):
        if image.shape[0] == 3:
            w = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device)
            image = (image * w[:, None, None]).sum(0)  # (3, H, W) -> (H, W)
        else:
            image = image[0]  # (1, H, W) -> (H, W)
    if image.dim() != 2:
        raise ValueError(
            f"image must have shape (H, W), (1, H, W) or (3, H, W) (NumPy: (H, W) or (H, W, 3)), got {tuple(image.shape)}"
        )
    if not image.is_floating_point():
        raise TypeError(f"image tensor must be float in [0, 1], got dtype {image.dtype}; divide uint8 images by 255")
    if min(image.shape) < 2 * _BORDER + 6:
        raise ValueError(f"image is too small for SIFT: got {tuple(image.shape)}, need at least 16 x 16 pixels")
    if image.dtype not in (torch.float32, torch.float64):
        image = image.float()
    return image.to(device) if device is not None else image


# ----------------------------------------------------------------------------------------------------------------
# 1-2. Scale space and difference of Gaussians
# ----------------------------------------------------------------------------------------------------------------


def _gaussian_taps(sigma: float) -> list[float]:
    """Normalised 1-D Gaussian weights for offsets ``-r .. r`` with ``r = ceil(3 * sigma)``."""
    r = max(1, int(math.ceil(3.0 * sigma)))
    w = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-r, r + 1)]
    s = sum(w)
    return [v / s for v in w]


def gaussian_blur(image: Tensor, sigma: float, out: Tensor | None = None) -> Tensor:
    """Blur ``Tensor[..., H, W]`` with a separable Gaussian of standard deviation ``sigma`` pixels.

    The kernel is truncated at ``3 * sigma`` and the border is mirrored without repeating the edge pixel
    (OpenCV's ``BORDER_REFLECT_101``, torch's ``"reflect"`` padding). The convolution is written as a sum of
    shifted copies: on a CPU this is several times faster than ``F.conv2d`` with a single channel.
    Mirrors ``torchvision.transforms.functional.gaussian_blur`` / ``cv2.GaussianBlur(image, (0, 0), sigma)``.

    Args:
        image (Tensor[..., H, W]): float image(s).
        sigma: standard deviation in pixels, > 0.
        out (Tensor[..., H, W], optional): where to write the result (e.g. one level of a scale-space stack).

    Returns:
        Tensor[..., H, W]: the blurred image(s) (``out`` when given).
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    taps = _gaussian_taps(sigma)
    r = len(taps) // 2
    H, W = image.shape[-2:]
    if r >= min(H, W):
        raise ValueError(f"sigma={sigma} needs a {2 * r + 1}-tap kernel, too large for a {H}x{W} image")
    x = image.reshape(1, -1, H, W)  # (..., H, W) -> (1, B, H, W)
    x = F.pad(x, (r, r, r, r), mode="reflect")[0]  # (B, H + 2r, W + 2r)
    rows = x[..., r : r + W] * taps[r]  # blur along x first: (B, H + 2r, W)
    tmp = torch.empty_like(rows)
    for i in range(1, r + 1):  # symmetric kernel: one multiply per pair of taps
        rows.add_(torch.add(x[..., r + i : r + i + W], x[..., r - i : r - i + W], out=tmp), alpha=taps[r + i])
    result = image.new_empty(image.shape) if out is None else out
    dest = result.view(-1, H, W)  # (..., H, W) -> (B, H, W), sharing memory with result
    torch.mul(rows[:, r : r + H], taps[r], out=dest)  # then along y
    tmp = tmp[:, :H]
    for i in range(1, r + 1):
        dest.add_(torch.add(rows[:, r + i : r + i + H], rows[:, r - i : r - i + H], out=tmp), alpha=taps[r + i])
    return result


def _n_octaves(h: int, w: int, upsample: bool) -> int:
    """OpenCV's octave count, ``round(log2(min side)) - 2`` (+1 when upsampling), less octaves too small to use."""
    side = min(h, w) * (2 if upsample else 1)
    n = int(round(math.log2(side))) - 2
    while n > 1 and side // 2 ** (n - 1) < 4 * _BORDER:  # no room for a 3x3 extremum away from the border
        n -= 1
    return max(n, 1)


def gaussian_scale_space(
    image: Tensor,
    n_octaves: int | None = None,
    n_layers: int = 3,
    sigma: float = 1.6,
    upsample: bool = True,
    assumed_blur: float = 0.5,
) -> list[Tensor]:
    """Gaussian scale space: per octave, ``n_layers + 3`` images of increasing blur.

    Level ``s`` of octave ``o`` has total blur ``sigma * 2**(s / n_layers)`` in that octave's pixels, which is
    ``sigma * 2**(o + s / n_layers)`` in the pixels of octave 0. Each level is computed from the previous one
    with the incremental blur ``sqrt(sigma_s**2 - sigma_(s-1)**2)``; octave ``o + 1`` starts from level
    ``n_layers`` of octave ``o`` (twice the base blur) keeping every second pixel. Introduced in lecture 1;
    mirrors the pyramid of OpenCV's ``SIFT::detectAndCompute`` (``buildGaussianPyramid``).

    Args:
        image (Tensor[H, W]): gray float image in [0, 1] (see :func:`to_gray_tensor`).
        n_octaves: number of octaves; default OpenCV's ``round(log2(min(H, W))) - 2`` (+1 with ``upsample``),
            less any octave too small to hold a keypoint.
        n_layers: S, scales per octave at which extrema are searched.
        sigma: blur of the first level of each octave.
        upsample: double the image first (bilinear), as OpenCV and Lowe do, to find more small keypoints.
        assumed_blur: blur the input is assumed to have already (0.5: the camera's pixel footprint).

    Returns:
        list[Tensor[S + 3, H_o, W_o]]: one stack per octave, ``H_o = H * 2**(1 - o)`` with ``upsample``.
    """
    check_shape(image, "image", (None, None), hint="(a gray image; use to_gray_tensor first)")
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    if upsample:
        image = F.interpolate(image[None, None], scale_factor=2.0, mode="bilinear", align_corners=False)[0, 0]
        assumed_blur *= 2.0
    if n_octaves is None:
        n_octaves = _n_octaves(*image.shape, upsample=False)
    base = gaussian_blur(image, math.sqrt(max(sigma**2 - assumed_blur**2, 0.01)))
    totals = [sigma * 2.0 ** (s / n_layers) for s in range(n_layers + 3)]
    steps = [math.sqrt(totals[s] ** 2 - totals[s - 1] ** 2) for s in range(1, n_layers + 3)]
    octaves = []
    for _ in range(n_octaves):
        levels = base.new_empty(n_layers + 3, *base.shape)  # (S + 3, H_o, W_o), each level blurred in place
        levels[0] = base
        for s, step in enumerate(steps, start=1):
            gaussian_blur(levels[s - 1], step, out=levels[s])
        octaves.append(levels)
        base = levels[n_layers, ::2, ::2]  # (H_o, W_o) -> (H_o / 2, W_o / 2)
        if min(base.shape) <= 3 * steps[-1] + 1:
            break
    return octaves


def difference_of_gaussians(scale_space: list[Tensor]) -> list[Tensor]:
    """Differences of neighbouring blur levels, ``L(s + 1) - L(s)``, per octave.

    The DoG approximates ``(k - 1) * sigma**2`` times the scale-normalised Laplacian of Gaussian, the blob
    detector whose extrema over space and scale give SIFT its scale invariance. Introduced in lecture 1.

    Args:
        scale_space: output of :func:`gaussian_scale_space`, ``list[Tensor[S + 3, H_o, W_o]]``.

    Returns:
        list[Tensor[S + 2, H_o, W_o]]
    """
    return [g[1:] - g[:-1] for g in scale_space]


# ----------------------------------------------------------------------------------------------------------------
# 3-4. Extrema and their refinement
# ----------------------------------------------------------------------------------------------------------------


def scale_space_extrema(dog: Tensor, threshold: float, border: int = _BORDER) -> Tensor:
    """Samples of one octave's DoG stack that beat all 26 neighbours in their 3x3x3 cube.

    A sample counts as a maximum when it is >= every neighbour and above ``threshold``, or as a minimum
    when it is <= every neighbour and below ``-threshold`` (OpenCV's test). The 3x3x3 maximum is separable:
    three maxima of shifted copies (along x, y and scale) give the same as
    ``F.max_pool3d(dog[None, None], 3, stride=1, padding=1)`` (tested equal) at a fraction of its cost on a
    CPU. Introduced in lecture 1.

    Args:
        dog (Tensor[S + 2, H, W]): one octave of :func:`difference_of_gaussians`.
        threshold: minimum ``|DoG|`` of a candidate.
        border: candidates closer than this to the image edge are ignored.

    Returns:
        Tensor[K, 3]: integer ``(level, y, x)`` of the candidates, ``1 <= level <= S``.
    """
    check_shape(dog, "dog", (None, None, None), hint="(one octave of DoG levels)")
    if border < 1:
        raise ValueError(f"border must be >= 1 (the 3x3x3 cube needs a neighbour on each side), got {border}")
    L, H, W = dog.shape
    # On a CPU, bands of 32 rows keep the intermediate maxima in cache (3-4x faster than the whole image at once).
    band = 32 if dog.device.type == "cpu" else H
    found = []
    for y0 in range(border - 1, H - border - 1, band):
        y1 = min(y0 + band, H - border - 1)  # candidates' rows y0 + 1 .. y1 (inclusive), halo of one row
        v = dog[:, y0 : y1 + 2, border - 1 : W - border + 1]  # (L, rows + 2, W - 2 border + 2)
        centre = v[1:-1, 1:-1, 1:-1]
        is_max = (centre > threshold) & (centre >= _cube_extreme(v, torch.maximum))
        is_min = (centre < -threshold) & (centre <= _cube_extreme(v, torch.minimum))
        idx = (is_max | is_min).nonzero()  # (K, 3): level - 1, row in band - 1, column - border
        found.append(idx + torch.tensor([1, y0 + 1, border], device=idx.device))
    return torch.cat(found) if found else dog.new_zeros(0, 3, dtype=torch.long)


def _cube_extreme(v: Tensor, op) -> Tensor:
    """Maximum (``op=torch.maximum``) or minimum (``torch.minimum``) over each 3x3x3 cube of ``Tensor[L, H, W]``.

    Returns ``Tensor[L - 2, H - 2, W - 2]`` (the valid part only).
    """
    a = op(v[:, :, :-2], v[:, :, 1:-1])  # along x
    op(a, v[:, :, 2:], out=a)
    b = op(a[:, :-2], a[:, 1:-1])  # along y
    op(b, a[:, 2:], out=b)
    c = op(b[:-2], b[1:-1])  # along scale
    return op(c, b[2:], out=c)


def _refine(dog: Tensor, idx: Tensor, n_layers: int, contrast_threshold: float, edge_threshold: float, border: int):
    """Newton steps towards the extremum of the quadratic fit, for all candidates at once.

    Returns the surviving integer positions ``(level, y, x)`` (Tensor[K, 3]), their sub-pixel offsets
    ``(ds, dy, dx)`` (Tensor[K, 3]) and ``|DoG|`` at the interpolated extremum (Tensor[K]).
    """
    L, H, W = dog.shape
    flat = dog.reshape(-1)  # (L, H, W) -> (L * H * W)
    K = len(idx)
    pos = idx.clone()
    off = dog.new_zeros(K, 3)
    value, grad = dog.new_zeros(K), dog.new_zeros(K, 3)
    curv = dog.new_zeros(K, 3)  # (hxx, hyy, hxy) for the edge test
    done = torch.zeros(K, dtype=torch.bool, device=dog.device)
    active = torch.arange(K, device=dog.device)  # candidates still moving
    for _ in range(_MAX_STEPS):
        p = pos[active]
        base = (p[:, 0] * H + p[:, 1]) * W + p[:, 2]

        def at(ds: int = 0, dy: int = 0, dx: int = 0) -> Tensor:
            return flat[base + (ds * H + dy) * W + dx]

        v = at()
        # gradient and Hessian by central differences, in (s, y, x) order
        g = torch.stack([at(1) - at(-1), at(0, 1) - at(0, -1), at(0, 0, 1) - at(0, 0, -1)], 1) * 0.5
        hss, hyy, hxx = at(1) + at(-1) - 2 * v, at(0, 1) + at(0, -1) - 2 * v, at(0, 0, 1) + at(0, 0, -1) - 2 * v
        hsy = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) * 0.25
        hsx = (at(1, 0, 1) - at(1, 0, -1) - at(-1, 0, 1) + at(-1, 0, -1)) * 0.25
        hyx = (at(0, 1, 1) - at(0, 1, -1) - at(0, -1, 1) + at(0, -1, -1)) * 0.25
        step, det = _solve3(hss, hyy, hxx, hsy, hsx, hyx, -g)  # Newton step: Hessian @ step = -gradient
        ok = (det != 0) & (step.abs() < 1e4).all(1)
        conv = ok & (step.abs() < 0.5).all(1)
        c = active[conv]
        off[c], value[c], grad[c] = step[conv], v[conv], g[conv]
        curv[c] = torch.stack([hxx[conv], hyy[conv], hyx[conv]], 1)
        done[c] = True
        move = ok & ~conv
        p = p[move] + torch.round(step[move]).long()
        inside = (p[:, 0] >= 1) & (p[:, 0] <= L - 2) & (p[:, 1] >= border) & (p[:, 1] < H - border)
        inside &= (p[:, 2] >= border) & (p[:, 2] < W - border)
        active = active[move][inside]
        pos[active] = p[inside]
        if len(active) == 0:
            break
    keep = done
    contrast = value + 0.5 * (grad * off).sum(1)
    keep &= contrast.abs() * n_layers >= contrast_threshold
    hxx, hyy, hxy = curv.unbind(1)
    tr, det = hxx + hyy, hxx * hyy - hxy * hxy
    r = edge_threshold
    keep &= (det > 0) & (tr * tr * r < (r + 1) ** 2 * det)
    return pos[keep], off[keep], contrast[keep].abs()


def _solve3(a: Tensor, d: Tensor, f: Tensor, b: Tensor, c: Tensor, e: Tensor, rhs: Tensor) -> tuple[Tensor, Tensor]:
    """Solve the symmetric 3x3 systems ``[[a, b, c], [b, d, e], [c, e, f]] @ x = rhs`` by Cramer's rule.

    Elementwise over the batch: far faster than ``torch.linalg.solve`` on many tiny matrices. Each argument is
    ``Tensor[K]``, ``rhs`` is ``Tensor[K, 3]``; returns ``x (Tensor[K, 3])`` and the determinants ``Tensor[K]``.
    """
    A, B, C = d * f - e * e, c * e - b * f, b * e - c * d  # first row of the adjugate (= first column)
    det = a * A + b * B + c * C
    D, E, Fc = a * f - c * c, b * c - a * e, a * d - b * b
    r0, r1, r2 = rhs.unbind(1)
    inv_det = 1.0 / torch.where(det == 0, torch.ones_like(det), det)
    x = torch.stack([A * r0 + B * r1 + C * r2, B * r0 + D * r1 + E * r2, C * r0 + E * r1 + Fc * r2], 1)
    return x * inv_det[:, None], det


# ----------------------------------------------------------------------------------------------------------------
# 5-6. Orientation and descriptor from gradients sampled in the keypoint's frame
# ----------------------------------------------------------------------------------------------------------------


def _gradients(levels: Tensor) -> Tensor:
    """Central-difference gradients of ``Tensor[L, H, W]`` as one complex table ``Tensor[L * H * W]``, ``gx + i gy``.

    Complex numbers keep both components in one 8-byte element, so sampling needs one gather per neighbour
    (and ``abs()`` / ``angle()`` give magnitude and direction). The differences are written straight into the
    real and imaginary parts. They are not halved: every use (the peaks of the orientation histogram relative
    to its maximum, the normalised descriptor) is unchanged by a common scale. The outermost pixels get a zero
    gradient, as in OpenCV.
    """
    L, H, W = levels.shape
    grad = levels.new_empty(L, H, W, 2)  # (..., 2): real and imaginary part
    torch.sub(levels[:, 1:-1, 2:], levels[:, 1:-1, :-2], out=grad[:, 1:-1, 1:-1, 0])
    torch.sub(levels[:, 2:, 1:-1], levels[:, :-2, 1:-1], out=grad[:, 1:-1, 1:-1, 1])
    for edge in (grad[:, 0], grad[:, -1], grad[:, :, 0], grad[:, :, -1]):
        edge.zero_()
    return torch.view_as_complex(grad).reshape(-1)  # (L, H, W) -> (L * H * W)


def _sample(grad: Tensor, shape: tuple[int, int, int], level: Tensor, y: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """Bilinear samples of the complex gradient table at ``(level, y, x)`` (each ``Tensor[K, G]``).

    Returns the gradients (complex ``Tensor[K, G]``) and a validity mask ``Tensor[K, G]`` (False outside the image).
    """
    _, H, W = shape
    valid = (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
    x0 = x.clamp(0, W - 1).floor_().clamp_(max=W - 2)
    y0 = y.clamp(0, H - 1).floor_().clamp_(max=H - 2)
    fx = (x - x0).clamp_(0, 1).reshape(-1).to(grad.dtype)
    fy = (y - y0).clamp_(0, 1).reshape(-1).to(grad.dtype)
    i = (level[:, None] * (H * W) + y0.long() * W + x0.long()).reshape(-1)  # (K, G) -> (K * G) top-left index
    top = torch.lerp(grad.index_select(0, i), grad.index_select(0, i + 1), fx)
    bottom = torch.lerp(grad.index_select(0, i + W), grad.index_select(0, i + W + 1), fx)
    return torch.lerp(top, bottom, fy).reshape(x.shape), valid  # (K * G) -> (K, G)


def _orientation_grid(device, dtype) -> tuple[Tensor, Tensor]:
    t = torch.linspace(-4.5, 4.5, _ORI_GRID, device=device, dtype=dtype)
    v, u = torch.meshgrid(t, t, indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)  # (G,) offsets in units of the keypoint's scale
    weight = torch.exp(-(u * u + v * v) / (2 * _ORI_SIGMA**2))
    return torch.stack([u, v], 1), weight


def _orientations(grad, shape, level, y, x, scale) -> tuple[Tensor, Tensor]:
    """Dominant gradient directions. Returns the keypoint index (Tensor[M]) and angle in degrees (Tensor[M])."""
    offsets, weight = _orientation_grid(x.device, x.dtype)
    sx = x[:, None] + scale[:, None] * offsets[:, 0]  # (K, G)
    sy = y[:, None] + scale[:, None] * offsets[:, 1]
    g, valid = _sample(grad, shape, level, sy, sx)
    mag = g.abs() * weight * valid  # (K, G)
    pos = g.angle() * (_ORI_BINS / (2 * math.pi))  # continuous bin in (-18, 18]
    floor = pos.floor()
    frac = pos - floor
    b0 = floor.long() % _ORI_BINS  # integer remainder: negative bins wrap around
    hist = torch.zeros(len(x), _ORI_BINS, device=x.device, dtype=x.dtype)
    hist.scatter_add_(1, b0, mag * (1 - frac))
    hist.scatter_add_(1, (b0 + 1) % _ORI_BINS, mag * frac)
    # circular smoothing with [1, 4, 6, 4, 1] / 16
    hist = (
        6 * hist
        + 4 * (hist.roll(1, 1) + hist.roll(-1, 1))
        + (hist.roll(2, 1) + hist.roll(-2, 1))
    ) / 16
    left, right = hist.roll(1, 1), hist.roll(-1, 1)
    peak = (hist > left) & (hist > right) & (hist >= _ORI_PEAK_RATIO * hist.max(1, keepdim=True).values)
    k, b = peak.nonzero(as_tuple=True)
    lv, cv, rv = left[k, b], hist[k, b], right[k, b]
    shift = 0.5 * (lv - rv) / (lv - 2 * cv + rv)
    angle = ((b.to(x.dtype) + shift) * (360.0 / _ORI_BINS)) % 360.0
    return k, angle


def _descriptor_weights(device, dtype) -> tuple[Tensor, Tensor]:
    """Sample offsets ``Tensor[G, 2]`` (in cells) and the constant ``Tensor[G, d * d]`` spatial weights.

    Each sample spreads over the 2x2 nearest cell centres (bilinear) and is weighted by a Gaussian of
    half the descriptor's width, as in Lowe's paper.
    """
    d, n = _DESC_WIDTH, _DESC_GRID
    t = (torch.arange(n, device=device, dtype=dtype) + 0.5) * ((d + 1) / n) - (d + 1) / 2  # cells, centred
    r, c = torch.meshgrid(t, t, indexing="ij")
    r, c = r.reshape(-1), c.reshape(-1)  # (G,)
    gauss = torch.exp(-(r * r + c * c) / (2 * (d / 2) ** 2))
    rb, cb = r + d / 2 - 0.5, c + d / 2 - 0.5  # continuous cell index, cell centres at 0 .. d - 1
    centres = torch.arange(d, device=device, dtype=dtype)
    wr = (1 - (rb[:, None] - centres).abs()).clamp(min=0)  # (G, d) bilinear weight to each row of cells
    wc = (1 - (cb[:, None] - centres).abs()).clamp(min=0)
    spatial = (wr[:, :, None] * wc[:, None, :]).reshape(len(r), d * d) * gauss[:, None]  # (G, d, d) -> (G, d*d)
    return torch.stack([c, r], 1), spatial


def _descriptors(grad, shape, level, y, x, scale, angle) -> Tensor:
    offsets, spatial = _descriptor_weights(x.device, x.dtype)
    width = _DESC_SCALE * scale  # (K,) pixels per cell
    a = torch.deg2rad(angle)
    cos, sin = torch.cos(a)[:, None], torch.sin(a)[:, None]
    u, v = offsets[:, 0] * width[:, None], offsets[:, 1] * width[:, None]  # (K, G) along / across the angle
    sx = x[:, None] + u * cos - v * sin
    sy = y[:, None] + u * sin + v * cos
    g, valid = _sample(grad, shape, level, sy, sx)
    mag = g.abs() * valid  # (K, G)
    pos = (a[:, None] - g.angle()) * (_DESC_BINS / (2 * math.pi))  # angle relative to the keypoint's, OpenCV's sense
    floor = pos.floor()
    frac = pos - floor
    b0 = floor.long() % _DESC_BINS
    K, G = mag.shape
    ori = torch.zeros(K, G, _DESC_BINS, device=x.device, dtype=x.dtype)
    ori.scatter_add_(2, b0[..., None], (mag * (1 - frac))[..., None])
    ori.scatter_add_(2, ((b0 + 1) % _DESC_BINS)[..., None], (mag * frac)[..., None])
    desc = torch.einsum("kgo,gs->kso", ori, spatial).reshape(K, -1)  # (K, d*d, 8) -> (K, 128)
    desc = F.normalize(desc, dim=1)
    desc = desc.clamp(max=_DESC_CLIP)
    return F.normalize(desc, dim=1)


# ----------------------------------------------------------------------------------------------------------------
# The whole pipeline
# ----------------------------------------------------------------------------------------------------------------


def _to_input(v: Tensor, octave: Tensor, upsample: bool) -> Tensor:
    """Octave pixel coordinate -> input pixel coordinate (the 2x bilinear upsampling puts input pixel ``i`` at
    ``2 i + 0.5``)."""
    scale = torch.pow(2.0, octave.to(v.dtype))
    return v * scale / 2 - 0.25 if upsample else v * scale


def _to_octave(v: Tensor, octave: Tensor, upsample: bool) -> Tensor:
    scale = torch.pow(2.0, octave.to(v.dtype))
    return (v + 0.25) * 2 / scale if upsample else v / scale


def sift(
    image: Tensor | np.ndarray,
    n_octaves: int | None = None,
    n_layers: int = 3,
    sigma: float = 1.6,
    contrast_threshold: float = 0.04,
    edge_threshold: float = 10.0,
    upsample: bool = True,
    max_keypoints: int | None = None,
) -> SiftResult:
    """Detect SIFT keypoints and compute their 128-d descriptors.

    All stages are batched tensor operations, so the same code runs on a CPU or a GPU (the image's device).
    Defaults are OpenCV's (``cv2.SIFT_create()``), whose ``detectAndCompute`` this mirrors; see the module
    docstring for the one deviation (gradient sampling). Introduced in lecture 1.

    Args:
        image: gray or colour image, see :func:`to_gray_tensor` (``Tensor[H, W]`` float in [0, 1] is native).
        n_octaves: octaves of the scale space (default: as many as fit, like OpenCV).
        n_layers: scales per octave searched for extrema (Lowe's S = 3).
        sigma: base blur of each octave.
        contrast_threshold: minimum ``|DoG| * n_layers`` at the refined extremum, for images in [0, 1].
        edge_threshold: maximum ratio r of principal curvatures; points with ``tr**2 / det >= (r + 1)**2 / r``
            lie on edges and are dropped.
        upsample: double the image first, as OpenCV does (more keypoints at small scales, ~4x the work).
        max_keypoints: keep only the strongest keypoints by response (OpenCV's ``nfeatures``).

    Returns:
        SiftResult: ``keypoints (Tensor[K, 6])`` with columns :data:`KEYPOINT_FIELDS`, sorted by decreasing
        response, and ``descriptors (Tensor[K, 128])``.
    """
    img = to_gray_tensor(image)
    if contrast_threshold < 0 or edge_threshold <= 1:
        raise ValueError(f"need contrast_threshold >= 0 and edge_threshold > 1, got {contrast_threshold}, {edge_threshold}")
    pyramid = gaussian_scale_space(img, n_octaves, n_layers, sigma, upsample)
    dogs = difference_of_gaussians(pyramid)
    threshold = 0.5 * contrast_threshold / n_layers
    kps, descs = [], []
    for o, (gauss, dog) in enumerate(zip(pyramid, dogs)):
        idx = scale_space_extrema(dog, threshold)
        if len(idx) == 0:
            continue
        pos, off, resp = _refine(dog, idx, n_layers, contrast_threshold, edge_threshold, _BORDER)
        if len(pos) == 0:
            continue
        key = (pos[:, 0] * dog.shape[1] + pos[:, 1]) * dog.shape[2] + pos[:, 2]
        key, first = _unique_first(key)  # two candidates may converge on the same sample
        pos, off, resp = pos[first], off[first], resp[first]
        level = pos[:, 0]
        y = pos[:, 1].to(img.dtype) + off[:, 1]
        x = pos[:, 2].to(img.dtype) + off[:, 2]
        scale = sigma * torch.pow(2.0, (level.to(img.dtype) + off[:, 0]) / n_layers)  # octave pixels
        grad = _gradients(gauss[1 : n_layers + 1])  # keypoints live on levels 1..S
        shape = (n_layers, *gauss.shape[1:])
        k, angle = _orientations(grad, shape, level - 1, y, x, scale)
        level, y, x, scale, resp = level[k], y[k], x[k], scale[k], resp[k]
        descs.append(_descriptors(grad, shape, level - 1, y, x, scale, angle))
        octave = torch.full_like(x, o - 1 if upsample else o)
        kps.append(torch.stack([x, y, 2 * scale, angle, resp, octave], 1))
    if not kps:
        return SiftResult(img.new_zeros(0, 6), img.new_zeros(0, 128))
    kp = torch.cat(kps)
    desc = torch.cat(descs)
    octave = kp[:, 5] + (1 if upsample else 0)
    kp[:, 0] = _to_input(kp[:, 0], octave, upsample)
    kp[:, 1] = _to_input(kp[:, 1], octave, upsample)
    kp[:, 2] = kp[:, 2] * torch.pow(2.0, octave) / (2 if upsample else 1)
    order = torch.argsort(kp[:, 4], descending=True, stable=True)
    if max_keypoints is not None:
        order = order[:max_keypoints]
    return SiftResult(kp[order], desc[order])


def _unique_first(key: Tensor) -> tuple[Tensor, Tensor]:
    """Unique values of ``key`` and the index of the first occurrence of each."""
    uniq, inverse = torch.unique(key, return_inverse=True)
    pos = torch.arange(len(key), device=key.device)
    first = torch.full((len(uniq),), len(key), device=key.device, dtype=pos.dtype)
    first.scatter_reduce_(0, inverse, pos, reduce="amin")
    return uniq, first


def sift_descriptors(
    image: Tensor | np.ndarray,
    keypoints: Tensor,
    n_layers: int = 3,
    sigma: float = 1.6,
    upsample: bool = True,
) -> Tensor:
    """SIFT descriptors at given keypoints (OpenCV's ``sift.compute(image, keypoints)``).

    Useful for dense SIFT (a grid of keypoints of one size, for bag-of-visual-words) and for comparing this
    descriptor with OpenCV's at the very same keypoints. Each keypoint is described on the scale-space level
    nearest to its size; the octave column is ignored. Introduced in lecture 1.

    Args:
        image: as for :func:`sift`.
        keypoints (Tensor[K, 4+]): columns ``x, y, size, angle`` (further columns are ignored).
        n_layers, sigma, upsample: the scale space, as for :func:`sift`.

    Returns:
        Tensor[K, 128]: unit-length descriptors.
    """
    img = to_gray_tensor(image)
    check_tensor(keypoints, "keypoints")
    if keypoints.dim() != 2 or keypoints.shape[1] < 4:
        raise ValueError(f"keypoints must have shape (K, 4+) with columns x, y, size, angle; got {tuple(keypoints.shape)}")
    kp = keypoints.to(device=img.device, dtype=img.dtype)
    if len(kp) == 0:
        return img.new_zeros(0, 128)
    pyramid = gaussian_scale_space(img, None, n_layers, sigma, upsample)
    # scale in octave-0 pixels -> (octave, level) with sigma * 2**(o + s / S) closest to it
    s0 = kp[:, 2] / 2 * (2 if upsample else 1)
    t = torch.log2((s0 / sigma).clamp(min=1e-6)) * n_layers
    t = t.clamp(0, len(pyramid) * n_layers - 1)
    octave = torch.div(torch.round(t), n_layers, rounding_mode="floor").long().clamp(0, len(pyramid) - 1)
    level = (torch.round(t) - octave * n_layers).long().clamp(0, n_layers + 2)
    out = img.new_zeros(len(kp), 128)
    oct_in = octave.to(img.dtype)
    for o, gauss in enumerate(pyramid):
        sel = (octave == o).nonzero(as_tuple=True)[0]
        if len(sel) == 0:
            continue
        x = _to_octave(kp[sel, 0], oct_in[sel], upsample)
        y = _to_octave(kp[sel, 1], oct_in[sel], upsample)
        scale = s0[sel] / 2**o
        grad = _gradients(gauss)
        out[sel] = _descriptors(grad, gauss.shape, level[sel], y, x, scale, kp[sel, 3] % 360.0)
    return out


def detect_and_compute(image: np.ndarray | Tensor, device: torch.device | str | None = None, **kwargs) -> SiftResult:
    """Convenience wrapper: NumPy uint8 (or any :func:`to_gray_tensor` input) in, :class:`SiftResult` out.

    Mirrors ``cv2.SIFT_create(**kwargs).detectAndCompute(image, None)``. Introduced in lecture 1.

    Args:
        image: ``(H, W)`` or ``(H, W, 3)`` uint8 array, or a tensor.
        device: run on this device (e.g. ``cvcourse.config.device()``); results stay there.
        **kwargs: passed to :func:`sift`.
    """
    return sift(to_gray_tensor(image, device=device), **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# OpenCV interop
# ----------------------------------------------------------------------------------------------------------------


def keypoints_from_cv2(keypoints) -> Tensor:
    """``list[cv2.KeyPoint]`` -> ``Tensor[K, 6]`` with columns :data:`KEYPOINT_FIELDS`."""
    rows = [(k.pt[0], k.pt[1], k.size, k.angle, k.response, _cv2_octave(k.octave)) for k in keypoints]
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)


def _cv2_octave(packed: int) -> int:
    """OpenCV packs octave, layer and scale into one int; the octave is the low byte, signed."""
    o = packed & 255
    return o - 256 if o >= 128 else o


def keypoints_to_cv2(keypoints: Tensor) -> list:
    """``Tensor[K, 4+]`` (``x, y, size, angle[, response, octave]``) -> ``list[cv2.KeyPoint]`` for drawing/matching."""
    import cv2

    check_tensor(keypoints, "keypoints")
    rows = keypoints.detach().cpu().double().tolist()
    out = []
    for r in rows:
        resp = r[4] if len(r) > 4 else 0.0
        octave = int(r[5]) & 255 if len(r) > 5 else 0
        out.append(cv2.KeyPoint(float(r[0]), float(r[1]), float(r[2]), float(r[3]), float(resp), octave))
    return out
