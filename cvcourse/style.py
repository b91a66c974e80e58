"""Neural style transfer (Gatys et al.) and its deformable version (Kim et al., 2020), on the course's
pretrained EfficientNet-Lite0 (paper notebook ``lectures/papers/deformable_style_transfer.ipynb``, extends
lecture 6: what a pretrained network's feature maps know).

Letters: B batch, C channels, H, W image size, N keypoints, M query points.

Convention: keypoints are ``(x, y)`` in pixels, ``x`` the column and ``y`` the row, pixel centres at integer
coordinates (pixel ``(0, 0)`` is the top-left one), so that ``image[..., y, x]`` is the pixel at point ``(x, y)``.
Images are ``(B, 3, H, W)`` floats in [0, 1].

- :func:`gram_matrix`, :func:`style_loss`, :func:`content_loss`: Gatys' losses on feature maps;
- :class:`LiteFeatures`: the feature maps of chosen stages of the pretrained Lite0;
- :func:`tps_fit`, :func:`tps_transform`: the thin-plate spline through matched keypoints;
- :func:`tps_grid`, :func:`warp_image`, :func:`warp_smoothness`: the dense, differentiable warp of an image;
- :func:`stylize`: the optimisation over pixels, plain (Gatys) or deformable (DST).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse._checks import check_shape, check_tensor

__all__ = [
    "LiteFeatures",
    "content_loss",
    "gram_matrix",
    "stylize",
    "style_loss",
    "tps_fit",
    "tps_grid",
    "tps_transform",
    "warp_image",
    "warp_smoothness",
]


# ----------------------------------------------------------------------------------------- Gatys' losses

def gram_matrix(features: Tensor) -> Tensor:
    """Channel correlations of a feature map: ``G[b, i, j] = sum_p F[b, i, p] F[b, j, p] / (H W)``.

    The style representation of Gatys et al.: which channels fire *together*, wherever in the image. Dividing
    by the number of positions makes images of different sizes comparable.

    Args:
        features (Tensor[B, C, H, W]).

    Returns:
        Tensor[B, C, C], symmetric.
    """
    check_tensor(features, "features")
    if features.dim() != 4:
        raise ValueError(f"features must have shape (B, C, H, W), got {tuple(features.shape)}; "
                         "use features.unsqueeze(0) for a single map")
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)  # (B, C, H, W) -> (B, C, HW)
    return f @ f.transpose(1, 2) / (h * w)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference of two feature maps (Gatys' content loss)."""
    if features.shape != target.shape:
        raise ValueError(f"features {tuple(features.shape)} and target {tuple(target.shape)} must have one shape")
    return F.mse_loss(features, target)


def style_loss(features: Sequence[Tensor], target_grams: Sequence[Tensor],
               weights: Sequence[float] | None = None) -> Tensor:
    """``sum_l w_l * mean((G(F_l) - G_l)^2)``: Gatys' style loss over several layers.

    Args:
        features: feature maps ``(B, C_l, H_l, W_l)`` of the image being optimised, one per layer.
        target_grams: Gram matrices ``(B or 1, C_l, C_l)`` of the style image, same layers.
        weights: one weight per layer (default 1 each).
    """
    if len(features) != len(target_grams) or len(features) == 0:
        raise ValueError(f"need one target Gram matrix per feature map (and at least one), got "
                         f"{len(features)} maps and {len(target_grams)} Gram matrices")
    weights = [1.0] * len(features) if weights is None else list(weights)
    if len(weights) != len(features):
        raise ValueError(f"weights needs {len(features)} values, got {len(weights)}")
    loss = features[0].new_zeros(())
    for f, g, w in zip(features, target_grams, weights):
        gram = gram_matrix(f)
        loss = loss + w * F.mse_loss(gram, g.expand_as(gram))
    return loss


class LiteFeatures(nn.Module):
    """Feature maps of chosen stages of the pretrained EfficientNet-Lite0 (lecture 4's network, lecture 6's
    ``pretrained_body``), frozen, for style and content losses.

    Args:
        layers: indices into ``features`` (0 stem, 1..7 stages, 8 head) whose outputs are returned; the
            network is run only up to the deepest one.
        body: a ``Normalized`` Lite0 (feed it images in [0, 1]); default
            :func:`cvcourse.experiments.pretrained_body` (ImageNet weights, offline).

    Shape: ``(B, 3, H, W) -> [Tensor[B, C_l, H / s_l, W / s_l] for l in layers]``.
    """

    def __init__(self, layers: Sequence[int] = (1, 2, 3, 4), body: nn.Module | None = None) -> None:
        super().__init__()
        if body is None:
            from cvcourse.experiments import pretrained_body

            body = pretrained_body()
        stages = body.model.features
        layers = sorted(set(int(i) for i in layers))
        if not layers or layers[0] < 0 or layers[-1] >= len(stages):
            raise ValueError(f"layers must be indices in 0..{len(stages) - 1} of the Lite0 stages, got {layers}")
        self.layers = tuple(layers)
        self.normalize = body.normalize
        self.stages = stages[: layers[-1] + 1]
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "LiteFeatures":
        return super().train(False)  # always eval: BatchNorm statistics stay ImageNet's

    def forward(self, x: Tensor) -> list[Tensor]:
        out, h = [], self.normalize(x)
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if i in self.layers:
                out.append(h)
        return out


# ------------------------------------------------------------------------------------- thin-plate spline

def _tps_kernel(d2: Tensor) -> Tensor:
    # U(r) = r^2 log r^2, with U(0) = 0 (the clamp keeps log finite and the gradient defined at r = 0)
    return d2 * torch.log(d2.clamp_min(1e-20))


def _check_points(points: Tensor, name: str) -> Tensor:
    check_shape(points, name, (None, 2), hint="of (x, y) coordinates")
    if not points.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {points.dtype}")
    return points


def tps_fit(src: Tensor, dst: Tensor, reg: float = 0.0) -> Tensor:
    """Thin-plate spline ``f`` with ``f(src_i) = dst_i``: the smoothest map through matched keypoints.

    ``f(p) = a_0 + A p + sum_i w_i U(|p - src_i|)`` with ``U(r) = r^2 log r^2``; the weights ``w`` and the affine
    part ``(a_0, A)`` solve the linear system ``[[K + reg I, P], [P^T, 0]] [w; a] = [dst; 0]``, ``K_ij =
    U(|src_i - src_j|)``, ``P = [1, src]``. With ``reg = 0`` it interpolates exactly; an affine map is
    reproduced exactly (then ``w = 0``). Mirrors ``scipy.interpolate.RBFInterpolator(src, dst,
    kernel="thin_plate_spline", degree=1, smoothing=reg)`` (scipy's kernel is ``r^2 log r``, half of ours, so
    its ``w`` is twice ours; the map is the same at ``reg = 0``). Differentiable in ``src`` and ``dst``.

    Args:
        src (Tensor[N, 2]): control points, N >= 3, not all on one line.
        dst (Tensor[N, 2]): where they go.
        reg: ``>= 0``; larger values trade exact interpolation for smoothness.

    Returns:
        coefficients (Tensor[N + 3, 2]): ``w`` (N rows), then ``a_0``, then the rows of ``A^T``; pass them to
        :func:`tps_transform` with the same ``src``.
    """
    _check_points(src, "src")
    _check_points(dst, "dst")
    if src.shape != dst.shape:
        raise ValueError(f"src and dst must hold the same number of points, got {tuple(src.shape)} and "
                         f"{tuple(dst.shape)}")
    n = src.shape[0]
    if n < 3:
        raise ValueError(f"a thin-plate spline needs at least 3 point pairs, got {n}")
    if reg < 0:
        raise ValueError(f"reg must be >= 0, got {reg}")
    dtype = src.dtype
    s, d = src.double(), dst.double()
    k = _tps_kernel(torch.cdist(s, s).square()) + reg * torch.eye(n, dtype=s.dtype, device=s.device)  # (N, N)
    p = torch.cat([torch.ones_like(s[:, :1]), s], dim=1)  # (N, 3)
    top = torch.cat([k, p], dim=1)
    bottom = torch.cat([p.T, torch.zeros(3, 3, dtype=s.dtype, device=s.device)], dim=1)
    system = torch.cat([top, bottom], dim=0)  # (N + 3, N + 3)
    rhs = torch.cat([d, torch.zeros(3, 2, dtype=s.dtype, device=s.device)], dim=0)  # (N + 3, 2)
    if torch.linalg.matrix_rank(p).item() < 3:
        raise ValueError("src points all lie on one line (or coincide); a thin-plate spline needs three "
                         "points that span the plane")
    return torch.linalg.solve(system, rhs).to(dtype)


def tps_transform(points: Tensor, src: Tensor, coefficients: Tensor) -> Tensor:
    """Evaluate the spline of :func:`tps_fit` (fitted on control points ``src``) at ``points (Tensor[M, 2])``.

    Returns:
        Tensor[M, 2].
    """
    _check_points(points, "points")
    _check_points(src, "src")
    check_shape(coefficients, "coefficients", (src.shape[0] + 3, 2), hint="(from tps_fit with the same src)")
    u = _tps_kernel(torch.cdist(points.double(), src.double()).square()).to(points.dtype)  # (M, N)
    w, a0, a = coefficients[:-3], coefficients[-3], coefficients[-2:]
    return u @ w + a0 + points @ a


def _pixel_grid(size: tuple[int, int], like: Tensor) -> Tensor:
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h, dtype=like.dtype, device=like.device),
                            torch.arange(w, dtype=like.dtype, device=like.device), indexing="ij")
    return torch.stack([xs, ys], dim=-1)  # (H, W, 2) as (x, y)


def tps_grid(src: Tensor, dst: Tensor, size: tuple[int, int], reg: float = 0.0) -> Tensor:
    """Sampling grid of the warp that moves the content at ``src`` to ``dst``, in pixels.

    Backward mapping, as ``grid_sample`` needs it: the spline is fitted from ``dst`` to ``src``, so
    ``grid[y, x]`` says where in the *input* the output pixel ``(x, y)`` reads from, and ``grid`` at
    ``dst_i`` is ``src_i``.

    Args:
        src, dst (Tensor[N, 2]): matched keypoints ``(x, y)`` in pixels.
        size: output ``(H, W)``.

    Returns:
        Tensor[H, W, 2] of ``(x, y)`` pixel coordinates.
    """
    h, w = size
    coef = tps_fit(dst, src, reg)
    pix = _pixel_grid((h, w), src)
    return tps_transform(pix.reshape(-1, 2), dst, coef).reshape(h, w, 2)  # (HW, 2) -> (H, W, 2)


def warp_image(image: Tensor, src: Tensor | None = None, dst: Tensor | None = None, *, grid: Tensor | None = None,
               reg: float = 0.0) -> Tensor:
    """Warp images so that what was at ``src`` lands at ``dst`` (thin-plate spline, bilinear sampling).

    Differentiable in ``image``, ``src`` and ``dst`` (``torch.nn.functional.grid_sample`` with
    ``align_corners=True``; outside the image it repeats the border pixels). A pure translation ``dst = src + t`` by whole pixels
    shifts the image by ``t`` exactly.

    Args:
        image (Tensor[B, C, H, W]).
        src, dst (Tensor[N, 2]): matched keypoints ``(x, y)`` in pixels; or
        grid (Tensor[H, W, 2]): a sampling grid from :func:`tps_grid` instead.
        reg: spline regularisation (see :func:`tps_fit`).

    Returns:
        Tensor[B, C, H, W].
    """
    check_tensor(image, "image")
    if image.dim() != 4:
        raise ValueError(f"image must have shape (B, C, H, W), got {tuple(image.shape)}")
    h, w = image.shape[-2:]
    if grid is None:
        if src is None or dst is None:
            raise ValueError("give either src and dst keypoints or a sampling grid")
        grid = tps_grid(src, dst, (h, w), reg)
    check_shape(grid, "grid", (h, w, 2), hint="(the image's H, W, then (x, y))")
    scale = grid.new_tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    norm = grid * scale - 1.0  # pixels -> [-1, 1] (align_corners=True)
    norm = norm.to(image.dtype).unsqueeze(0).expand(image.shape[0], h, w, 2)
    return F.grid_sample(image, norm, mode="bilinear", padding_mode="border", align_corners=True)


def warp_smoothness(grid: Tensor) -> Tensor:
    """Total variation of a warp's displacement field: mean ``|d(grid - identity)|`` between neighbour pixels.

    Zero for any translation; grows when neighbouring pixels move differently (the paper's regulariser of the
    2D warp field). ``grid (Tensor[H, W, 2])`` in pixels, as from :func:`tps_grid`.
    """
    check_shape(grid, "grid", (None, None, 2))
    disp = grid - _pixel_grid(tuple(grid.shape[:2]), grid)
    dy = (disp[1:] - disp[:-1]).abs().mean()
    dx = (disp[:, 1:] - disp[:, :-1]).abs().mean()
    return dx + dy


# ------------------------------------------------------------------------------------- the optimisation

def stylize(content: Tensor, style: Tensor, features: nn.Module, *, steps: int = 100, lr: float = 0.02,
            content_layers: Sequence[int] = (3,), content_weight: float = 1.0, style_weight: float = 1.0,
            src: Tensor | None = None, dst: Tensor | None = None, keypoint_weight: float = 30.0,
            smoothness_weight: float = 100.0, warp_lr: float = 1.0) -> tuple[Tensor, dict[str, list[float]]]:
    """Style transfer by optimising the pixels (Gatys et al.), or Deformable Style Transfer (Kim et al.).

    Gatys: start from the content image ``X = I_c`` and minimise ``content_weight * L_content(X, I_c) +
    style_weight * L_style(X, I_s)`` over the pixels of ``X`` with Adam (clamped to [0, 1] after each step).

    DST (when ``src`` and ``dst`` are given): also optimise displacements ``theta`` of the content keypoints
    ``src``; ``W(X, theta)`` is ``X`` warped by the thin-plate spline moving ``src`` to ``src + theta``. The loss
    becomes ``content_weight * L_content(X, I_c) + style_weight * (L_style(X) + L_style(W(X, theta))) +
    keypoint_weight * mean |src + theta - dst|^2 + smoothness_weight * TV(warp field)``
    (distances in pixels), and the result is the warped, stylised ``W(X, theta)``: style *and* shape.

    Args:
        content (Tensor[1, 3, H, W]), style (Tensor[1, 3, H', W']): images in [0, 1].
        features: ``features(x) -> list of feature maps`` (a :class:`LiteFeatures`); all its layers are style
            layers; ``content_layers`` picks content layers by the stage index in ``features.layers``.
        steps, lr: Adam steps and pixel learning rate.
        src (Tensor[N, 2]): keypoints ``(x, y)`` of the content image; dst: the matching style keypoints.
        keypoint_weight, smoothness_weight: the weights of the keypoint and warp-smoothness terms.
        warp_lr: Adam learning rate of ``theta`` (pixels per step).

    Returns:
        ``(result, history)``: result Tensor[1, 3, H, W]; history ``{"content", "style", "total"}`` (and, for
        DST, ``"style_warped"``, ``"keypoints"`` (mean keypoint distance in pixels), ``"smoothness"``), one
        value per step; ``history["theta"]`` is the final ``theta`` as a list for DST.
    """
    for name, img in (("content", content), ("style", style)):
        check_tensor(img, name)
        if img.dim() != 4 or img.shape[0] != 1 or img.shape[1] != 3:
            raise ValueError(f"{name} must be one RGB image of shape (1, 3, H, W), got {tuple(img.shape)}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if (src is None) != (dst is None):
        raise ValueError("give both src and dst keypoints (DST) or neither (Gatys)")
    layers = tuple(getattr(features, "layers", ()))
    missing = [i for i in content_layers if i not in layers]
    if missing:
        raise ValueError(f"content_layers {missing} are not among the feature layers {layers}")
    picks = [layers.index(i) for i in content_layers]
    with torch.no_grad():
        target_content = [features(content)[i] for i in picks]
        target_grams = [gram_matrix(f) for f in features(style)]
    x = content.detach().clone().requires_grad_(True)
    params = [{"params": [x], "lr": lr}]
    deformable = src is not None
    if deformable:
        _check_points(src, "src")
        check_shape(dst, "dst", tuple(src.shape))
        theta = torch.zeros_like(src, requires_grad=True)
        params.append({"params": [theta], "lr": warp_lr})
    opt = torch.optim.Adam(params)
    h, w = content.shape[-2:]
    history: dict[str, list] = {"content": [], "style": [], "total": []}
    if deformable:
        history.update(style_warped=[], keypoints=[], smoothness=[])

    def warped_of(img: Tensor) -> tuple[Tensor, Tensor]:
        grid = tps_grid(src, src + theta, (h, w))
        return warp_image(img, grid=grid), grid

    for _ in range(steps):
        opt.zero_grad()
        feats = features(x)
        lc = sum(content_loss(feats[i], t) for i, t in zip(picks, target_content))
        ls = style_loss(feats, target_grams)
        total = content_weight * lc + style_weight * ls
        if deformable:
            warped, grid = warped_of(x)
            lsw = style_loss(features(warped), target_grams)
            lk = (src + theta - dst).square().sum(1).mean()
            lt = warp_smoothness(grid)
            total = total + style_weight * lsw + keypoint_weight * lk + smoothness_weight * lt
            history["style_warped"].append(lsw.item())
            history["keypoints"].append((src + theta - dst).norm(dim=1).mean().item())
            history["smoothness"].append(lt.item())
        total.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        history["content"].append(lc.item())
        history["style"].append(ls.item())
        history["total"].append(total.item())
    with torch.no_grad():
        if deformable:
            history["theta"] = theta.detach().tolist()
            return warped_of(x)[0].detach(), history
        return x.detach(), history
