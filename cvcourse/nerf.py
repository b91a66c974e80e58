"""Neural radiance fields (NeRF) in miniature: encoding, rays, sampling, volume rendering, a small field.

Paper notebook ``lectures/papers/nerf.ipynb`` (Mildenhall et al., "NeRF: Representing Scenes as Neural Radiance
Fields for View Synthesis", 2020). A scene is a function ``field(x) -> (sigma, rgb)``: volume density and colour
at 3-D points. A pixel's colour is the volume-rendering integral along its camera ray, approximated by sampling
the ray and compositing the samples; it is differentiable, so a network field can be fitted to photos by an L2
loss on pixels.

- :func:`positional_encoding`, :func:`encoding_dim`  the Fourier features ``sin(2^k pi x), cos(2^k pi x)``
- :func:`pinhole_intrinsics`, :func:`look_at`, :func:`orbit_poses`  cameras
- :func:`get_rays`                                   one ray per pixel of a pinhole camera
- :func:`stratified_samples`                        depths ``t`` along rays, one uniform draw per bin
- :func:`volume_render`                             alpha compositing: weights, expected colour and depth
- :func:`sample_pdf`, :func:`fine_samples`          hierarchical sampling by the inverse CDF of the weights
- :class:`FourierMLP`, :class:`NeRFField`, :class:`TinyNeRF`  the networks
- :func:`render_rays`, :func:`render_image`          coarse (+ fine) rendering of any field
- :class:`PrimitiveScene`, :func:`toy_scene`        an analytic scene of coloured spheres and boxes

Conventions. Cameras follow the paper's (OpenGL / Blender) convention: in camera coordinates x points right, y
up, and the camera looks along **-z**. ``c2w`` is the ``(3, 4)`` (or ``(4, 4)``) camera-to-world matrix
``[R | c]`` whose columns are the camera's axes and centre in world coordinates. Pixel ``(row v, column u)`` has
its centre at ``(u + 0.5, v + 0.5)`` in continuous image coordinates; the intrinsics ``K`` are the usual
``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``. Ray directions are unit vectors, so a depth ``t`` is a distance.

Letter legend: N rays, S samples per ray, H, W image size, D input dimension, L frequencies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from cvcourse._checks import check_shape, check_tensor

__all__ = [
    "positional_encoding", "encoding_dim", "pinhole_intrinsics", "look_at", "orbit_poses", "get_rays",
    "stratified_samples", "volume_render", "sample_pdf", "fine_samples", "FourierMLP", "NeRFField", "TinyNeRF",
    "render_rays", "render_image", "PrimitiveScene", "toy_scene", "psnr",
]

Field = Callable[[Tensor], tuple[Tensor, Tensor]]  # points (P, 3) -> sigma (P,), rgb (P, 3)


# ----------------------------------------------------------------------------------------------- encoding
def encoding_dim(in_dim: int, num_freqs: int, include_input: bool = True) -> int:
    """Output size of :func:`positional_encoding`: ``in_dim * (2 * num_freqs + include_input)``."""
    if in_dim < 1 or num_freqs < 0:
        raise ValueError(f"in_dim must be >= 1 and num_freqs >= 0, got in_dim={in_dim}, num_freqs={num_freqs}")
    return in_dim * (2 * num_freqs + int(include_input))


def positional_encoding(x: Tensor, num_freqs: int, include_input: bool = True) -> Tensor:
    """The paper's encoding gamma(p) = (sin(2^0 pi p), cos(2^0 pi p), ..., sin(2^(L-1) pi p), cos(2^(L-1) pi p)).

    Applied to every coordinate separately. Deep networks are biased towards low frequencies; these features let
    an MLP represent fine detail (paper, section 5.1). Like the official code, the raw input is prepended when
    ``include_input`` is true (the paper's equation omits it).

    Args:
        x (Tensor[..., D]): coordinates, ideally in [-1, 1].
        num_freqs: L, the number of octaves; 0 with ``include_input`` returns ``x`` itself.
        include_input: prepend ``x``.

    Returns:
        Tensor[..., D * (2L + include_input)], laid out as ``[x, sin(f_0 x), cos(f_0 x), sin(f_1 x), ...]`` with
        ``f_k = 2^k pi`` and each block of size D.
    """
    check_tensor(x, "x")
    if x.dim() < 1 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor of shape (..., D), got {x.dtype} {tuple(x.shape)}")
    if num_freqs < 0:
        raise ValueError(f"num_freqs must be >= 0, got {num_freqs}")
    if num_freqs == 0 and not include_input:
        raise ValueError("num_freqs=0 with include_input=False would give an empty encoding")
    parts = [x] if include_input else []
    for k in range(num_freqs):
        f = (2.0 ** k) * math.pi
        parts += [torch.sin(f * x), torch.cos(f * x)]
    return torch.cat(parts, dim=-1)


# ----------------------------------------------------------------------------------------------- cameras
def pinhole_intrinsics(focal: float, height: int, width: int) -> Tensor:
    """``K = [[f, 0, W/2], [0, f, H/2], [0, 0, 1]]``: square pixels, principal point at the image centre."""
    if focal <= 0 or height < 1 or width < 1:
        raise ValueError(f"focal must be > 0 and the image size positive, got focal={focal}, size=({height}, {width})")
    return torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def look_at(eye: Sequence[float] | Tensor, target: Sequence[float] | Tensor = (0.0, 0.0, 0.0),
            up: Sequence[float] | Tensor = (0.0, 0.0, 1.0)) -> Tensor:
    """Camera-to-world matrix ``(3, 4)`` of a camera at ``eye`` looking at ``target`` (the camera's -z axis)."""
    eye, target, up = (torch.as_tensor(v, dtype=torch.float32) for v in (eye, target, up))
    forward = target - eye
    if forward.norm() == 0:
        raise ValueError("eye and target must differ")
    back = -forward / forward.norm()                            # camera +z points away from the target
    right = torch.linalg.cross(up, back)
    if right.norm() < 1e-8:
        raise ValueError(f"up {up.tolist()} is parallel to the viewing direction; choose another up vector")
    right = right / right.norm()
    cam_up = torch.linalg.cross(back, right)
    return torch.stack([right, cam_up, back, eye], dim=1)      # columns: x, y, z axes and centre


def orbit_poses(n: int, radius: float, elevation_deg: float = 30.0, azimuth_offset_deg: float = 0.0) -> Tensor:
    """``n`` cameras evenly spaced in azimuth on a circle around the origin (z up), all looking at it.

    Returns:
        Tensor[n, 3, 4] camera-to-world matrices.
    """
    if n < 1 or radius <= 0:
        raise ValueError(f"n must be >= 1 and radius > 0, got n={n}, radius={radius}")
    el = math.radians(elevation_deg)
    poses = []
    for i in range(n):
        az = math.radians(azimuth_offset_deg) + 2 * math.pi * i / n
        eye = (radius * math.cos(el) * math.cos(az), radius * math.cos(el) * math.sin(az), radius * math.sin(el))
        poses.append(look_at(eye))
    return torch.stack(poses)


def _check_pose(c2w: Tensor) -> Tensor:
    check_tensor(c2w, "c2w")
    if c2w.shape not in ((3, 4), (4, 4)):
        raise ValueError(f"c2w must be a (3, 4) or (4, 4) camera-to-world matrix, got {tuple(c2w.shape)}")
    return c2w[:3].float()


def get_rays(height: int, width: int, intrinsics: Tensor, c2w: Tensor) -> tuple[Tensor, Tensor]:
    """One ray per pixel centre of a pinhole camera.

    In camera coordinates pixel ``(v, u)`` looks along ``((u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1)`` (y up,
    looking along -z); the direction is rotated by ``c2w``'s rotation and normalised; all rays start at the
    camera centre. So the principal point's ray is the camera's -z axis, ``-c2w[:3, 2]``. Mirrors ``get_rays`` of
    the official NeRF code with two deviations: pixel centres (+0.5, the code uses integer corners) and unit
    directions (the code keeps z = -1, so its ``t`` is depth along the axis, ours is distance along the ray).

    Args:
        height, width: image size in pixels.
        intrinsics (Tensor[3, 3]): ``K`` (see :func:`pinhole_intrinsics`).
        c2w (Tensor[3, 4] or Tensor[4, 4]): camera-to-world pose.

    Returns:
        origins (Tensor[H, W, 3]) and unit directions (Tensor[H, W, 3]) in world coordinates.
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got ({height}, {width})")
    check_shape(intrinsics, "intrinsics", (3, 3), hint="(the pinhole matrix K)")
    pose = _check_pose(c2w)
    K = intrinsics.float().to(pose.device)
    v, u = torch.meshgrid(torch.arange(height, device=pose.device, dtype=torch.float32) + 0.5,
                          torch.arange(width, device=pose.device, dtype=torch.float32) + 0.5, indexing="ij")
    dirs_cam = torch.stack([(u - K[0, 2]) / K[0, 0], -(v - K[1, 2]) / K[1, 1], -torch.ones_like(u)], dim=-1)
    dirs = dirs_cam @ pose[:, :3].T                             # (H, W, 3) camera -> world
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origins = pose[:, 3].expand_as(dirs)
    return origins, dirs


# ----------------------------------------------------------------------------------------------- sampling
def stratified_samples(n_rays: int, near: float, far: float, n_samples: int, perturb: bool = True,
                       generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
    """Depths along rays by stratified sampling (paper, eq. 2): ``[near, far]`` cut into ``n_samples`` equal bins,
    one uniform draw in each bin (``perturb=True``) or the bin centres (``perturb=False``).

    Returns:
        Tensor[N, S], sorted along each row.
    """
    if n_rays < 0 or n_samples < 1:
        raise ValueError(f"n_rays must be >= 0 and n_samples >= 1, got {n_rays}, {n_samples}")
    if not 0 <= near < far:
        raise ValueError(f"need 0 <= near < far, got near={near}, far={far}")
    edges = torch.linspace(near, far, n_samples + 1, device=device)
    lower, width = edges[:-1], edges[1:] - edges[:-1]
    if perturb:
        u = torch.rand(n_rays, n_samples, generator=generator, device="cpu" if generator is not None else device)
        u = u.to(edges.device)
    else:
        u = torch.full((n_rays, n_samples), 0.5, device=edges.device)
    return lower + width * u


def volume_render(sigma: Tensor, rgb: Tensor, t: Tensor, background: float = 0.0,
                  t_far: float | None = None) -> dict[str, Tensor]:
    """Alpha compositing of samples along rays (paper, eq. 3).

    With ``delta_i = t_{i+1} - t_i``: ``alpha_i = 1 - exp(-sigma_i delta_i)``, transmittance
    ``T_i = prod_{j<i} (1 - alpha_j)`` (exclusive cumulative product), weights ``w_i = T_i alpha_i``; colour
    ``sum_i w_i c_i + (1 - sum_i w_i) * background``, depth ``sum_i w_i t_i`` (not normalised; equals the surface
    distance for an opaque surface). The last interval ends at ``t_far``; without it, it is 1e10 long (the ray ends
    inside the last sample), as in the paper's code, which pairs that with a ReLU density that can be exactly 0.
    With a softplus density and a background colour, pass ``t_far``.

    Args:
        sigma (Tensor[N, S]): densities >= 0.
        rgb (Tensor[N, S, 3]): colours.
        t (Tensor[N, S]): sample depths, increasing along each row.
        background: colour of what the ray sees when it leaves the volume (1.0 for white).
        t_far: where the ray leaves the volume (>= the last sample), or None for an infinite last interval.

    Returns:
        ``{"rgb": (N, 3), "depth": (N,), "acc": (N,) opacity, "weights": (N, S), "transmittance": (N, S)}``.
    """
    check_tensor(sigma, "sigma")
    if sigma.dim() != 2:
        raise ValueError(f"sigma must have shape (N, S), got {tuple(sigma.shape)}")
    check_shape(rgb, "rgb", (sigma.shape[0], sigma.shape[1], 3))
    check_shape(t, "t", tuple(sigma.shape))
    if bool((t[:, 1:] < t[:, :-1]).any()):
        raise ValueError("t must be increasing along each ray (sort the samples first)")
    if t_far is not None and t.numel() and bool((t[:, -1] > t_far).any()):
        raise ValueError(f"t_far={t_far} lies before the last sample {t[:, -1].max().item():.4g}")
    last = torch.full_like(t[:, :1], 1e10) if t_far is None else t_far - t[:, -1:]
    delta = torch.cat([t[:, 1:] - t[:, :-1], last], dim=1)                 # (N, S)
    alpha = 1.0 - torch.exp(-sigma.clamp(min=0) * delta)
    ones = torch.ones_like(alpha[:, :1])
    trans = torch.cumprod(torch.cat([ones, 1.0 - alpha + 1e-10], dim=1), dim=1)[:, :-1]  # exclusive product
    weights = trans * alpha
    acc = weights.sum(dim=1)
    colour = (weights[..., None] * rgb).sum(dim=1) + (1.0 - acc[:, None]) * background
    return {"rgb": colour, "depth": (weights * t).sum(dim=1), "acc": acc, "weights": weights, "transmittance": trans}


def sample_pdf(bins: Tensor, weights: Tensor, n_samples: int, deterministic: bool = False,
               generator: torch.Generator | None = None) -> Tensor:
    """Draw from the piecewise-constant density with weight ``weights[:, i]`` on ``[bins[:, i], bins[:, i+1]]``.

    Inverse-transform sampling: normalise the weights to a pdf, build its CDF at the bin edges, draw ``u`` uniform
    in [0, 1] (evenly spaced with ``deterministic=True``) and invert the CDF linearly inside the bin it falls in.
    Samples are not sorted. Mirrors ``sample_pdf`` of the official NeRF code.

    Args:
        bins (Tensor[N, M + 1]): increasing bin edges.
        weights (Tensor[N, M]): non-negative weights (need not sum to 1; an all-zero row becomes uniform).
        n_samples: samples per ray.

    Returns:
        Tensor[N, n_samples] (no gradient flows to ``bins`` or ``weights``).
    """
    check_tensor(bins, "bins"); check_tensor(weights, "weights")
    if weights.dim() != 2 or bins.shape != (weights.shape[0], weights.shape[1] + 1):
        raise ValueError(f"need weights (N, M) and bins (N, M + 1), got weights {tuple(weights.shape)} and "
                         f"bins {tuple(bins.shape)}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if bool((weights < 0).any()):
        raise ValueError("weights must be non-negative")
    bins, weights = bins.detach(), weights.detach() + 1e-5      # the small floor keeps empty rows uniform
    pdf = weights / weights.sum(dim=1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, dim=1)], dim=1)   # (N, M + 1)
    cdf[:, -1] = 1.0
    n = weights.shape[0]
    if deterministic:
        u = ((torch.arange(n_samples, device=bins.device, dtype=bins.dtype) + 0.5) / n_samples).expand(n, n_samples)
    else:
        u = torch.rand(n, n_samples, generator=generator,
                       device="cpu" if generator is not None else bins.device).to(bins)
    u = u.contiguous()
    idx = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[1] - 1)           # bin i+1 edge index
    c0, c1 = cdf.gather(1, idx - 1), cdf.gather(1, idx)
    b0, b1 = bins.gather(1, idx - 1), bins.gather(1, idx)
    frac = ((u - c0) / (c1 - c0).clamp(min=1e-10)).clamp(0, 1)
    return b0 + frac * (b1 - b0)


def fine_samples(t_coarse: Tensor, weights: Tensor, n_fine: int, deterministic: bool = False) -> Tensor:
    """The paper's hierarchical sampling: ``n_fine`` depths drawn from the coarse weights, merged with the coarse
    depths and sorted. Bins are the midpoints between coarse samples (the first and last weights are dropped,
    as in the official code).

    Args:
        t_coarse (Tensor[N, S]), weights (Tensor[N, S]) with S >= 3.

    Returns:
        Tensor[N, S + n_fine], sorted.
    """
    check_shape(weights, "weights", tuple(t_coarse.shape))
    if t_coarse.shape[1] < 3:
        raise ValueError(f"need at least 3 coarse samples per ray, got {t_coarse.shape[1]}")
    mids = 0.5 * (t_coarse[:, 1:] + t_coarse[:, :-1])          # (N, S - 1) edges of S - 2 bins
    t_new = sample_pdf(mids, weights[:, 1:-1], n_fine, deterministic=deterministic)
    return torch.sort(torch.cat([t_coarse, t_new], dim=1), dim=1).values


# ----------------------------------------------------------------------------------------------- networks
class FourierMLP(nn.Module):
    """Coordinate MLP: positional encoding (``num_freqs`` octaves; 0 = raw coordinates only), then ``depth``
    hidden ``Linear + ReLU`` layers of ``width``, then a linear output layer.

    Used for the notebook's 2-D image fit (``in_dim=2``, ``out_dim=3``) and inside :class:`NeRFField`. The paper's
    field has 8 layers of 256 with a skip connection; ours is smaller for CPU budgets.
    """

    def __init__(self, in_dim: int, out_dim: int, num_freqs: int = 6, width: int = 128, depth: int = 3):
        super().__init__()
        if depth < 1 or width < 1 or out_dim < 1:
            raise ValueError(f"depth, width and out_dim must be >= 1, got {depth}, {width}, {out_dim}")
        self.in_dim, self.num_freqs = in_dim, num_freqs
        layers: list[nn.Module] = []
        d = encoding_dim(in_dim, num_freqs)
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """x (Tensor[P, in_dim]) -> Tensor[P, out_dim] (no output activation)."""
        check_tensor(x, "x")
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"x must have {self.in_dim} coordinates in its last dimension, got {tuple(x.shape)}")
        return self.head(self.features(positional_encoding(x, self.num_freqs)))


class NeRFField(nn.Module):
    """A radiance field ``x -> (sigma, rgb)`` as a :class:`FourierMLP` with 4 outputs.

    Deviation from the paper: no viewing-direction input (our scene is matte, so colour does not depend on the
    view) and softplus instead of ReLU on the density (a ReLU that starts at zero density everywhere can stay
    there in a short run), shifted by -1 so that an untrained field starts nearly empty. ``scale`` maps the scene
    box to about [-1, 1] before encoding.
    """

    def __init__(self, num_freqs: int = 6, width: int = 64, depth: int = 3, scale: float = 1.0):
        super().__init__()
        self.mlp = FourierMLP(3, 4, num_freqs=num_freqs, width=width, depth=depth)
        self.scale = scale

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (Tensor[P, 3]) -> sigma (Tensor[P]), rgb (Tensor[P, 3]) in (0, 1)."""
        out = self.mlp(x * self.scale)
        return nn.functional.softplus(out[:, 0] - 1.0), torch.sigmoid(out[:, 1:])


def render_rays(coarse: Field, origins: Tensor, dirs: Tensor, near: float, far: float, n_coarse: int,
                n_fine: int = 0, fine: Field | None = None, perturb: bool = True,
                background: float = 0.0) -> dict[str, dict[str, Tensor]]:
    """Render rays through a field: stratified coarse samples, then (``n_fine > 0``) fine samples drawn from the
    coarse weights and evaluated, with the coarse ones, by ``fine`` (default: the coarse field itself).

    Args:
        coarse, fine: fields mapping points ``(P, 3)`` to ``(sigma (P,), rgb (P, 3))``: a network or a scene.
        origins, dirs (Tensor[N, 3]): rays (unit directions).
        near, far: the depth range sampled.
        n_coarse, n_fine: samples per ray of each pass.
        perturb: random stratified and inverse-CDF draws (training) or deterministic ones (evaluation).

    Returns:
        ``{"coarse": volume_render(...)}`` plus ``"fine"`` when ``n_fine > 0``.
    """
    check_shape(origins, "origins", (None, 3)); check_shape(dirs, "dirs", (origins.shape[0], 3))
    if n_fine < 0:
        raise ValueError(f"n_fine must be >= 0, got {n_fine}")

    def run(f: Field, t: Tensor) -> dict[str, Tensor]:
        pts = origins[:, None, :] + t[..., None] * dirs[:, None, :]            # (N, S, 3)
        sigma, rgb = f(pts.reshape(-1, 3))                                     # (N * S,), (N * S, 3)
        return volume_render(sigma.view(t.shape), rgb.view(*t.shape, 3), t, background=background, t_far=far)

    t = stratified_samples(origins.shape[0], near, far, n_coarse, perturb=perturb, device=origins.device)
    out = {"coarse": run(coarse, t)}
    if n_fine > 0:
        t_all = fine_samples(t, out["coarse"]["weights"], n_fine, deterministic=not perturb)
        out["fine"] = run(fine if fine is not None else coarse, t_all)
    return out


@torch.no_grad()
def render_image(field_c: Field, height: int, width: int, intrinsics: Tensor, c2w: Tensor, near: float, far: float,
                 n_coarse: int, n_fine: int = 0, field_f: Field | None = None, background: float = 0.0,
                 chunk: int = 4096) -> dict[str, Tensor]:
    """Render a whole view deterministically (``perturb=False``), in chunks of rays.

    Returns:
        ``{"coarse": (3, H, W), "fine": (3, H, W) when n_fine > 0, "depth": (H, W) and "acc": (H, W), the
        opacity, of the last pass}``.
    """
    dev = intrinsics.device if not isinstance(field_c, nn.Module) else next(field_c.parameters()).device
    o, d = get_rays(height, width, intrinsics.to(dev), c2w.to(dev))
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    parts: dict[str, list[Tensor]] = {}
    for s in range(0, o.shape[0], chunk):
        out = render_rays(field_c, o[s:s + chunk], d[s:s + chunk], near, far, n_coarse, n_fine, field_f,
                          perturb=False, background=background)
        for k, v in out.items():
            parts.setdefault(k, []).append(v["rgb"])
        for k in ("depth", "acc"):
            parts.setdefault(k, []).append(out["fine" if n_fine else "coarse"][k])
    result = {k: torch.cat(parts[k]).view(height, width, 3).permute(2, 0, 1) for k in out}  # (H*W, 3) -> (3, H, W)
    for k in ("depth", "acc"):
        result[k] = torch.cat(parts[k]).view(height, width)
    return result


class TinyNeRF(nn.Module):
    """A coarse and a fine :class:`NeRFField` (the paper's two networks) with the rendering settings.

    ``forward(rays)`` takes ``rays (Tensor[N, 6])`` = origins and unit directions and returns the fine pass's
    colours ``(N, 3)`` (the coarse pass's when ``n_fine=0``); :meth:`loss` is the paper's training loss, the sum of
    the coarse and the fine squared errors, in the ``step_fn`` form that :func:`cvcourse.train.fit` accepts.
    """

    def __init__(self, near: float, far: float, n_coarse: int = 32, n_fine: int = 32, num_freqs: int = 6,
                 width: int = 64, depth: int = 3, scale: float = 1.0, background: float = 1.0):
        super().__init__()
        self.coarse = NeRFField(num_freqs, width, depth, scale)
        self.fine = NeRFField(num_freqs, width, depth, scale) if n_fine > 0 else None
        self.near, self.far, self.n_coarse, self.n_fine, self.background = near, far, n_coarse, n_fine, background

    def render(self, rays: Tensor, perturb: bool | None = None) -> dict[str, dict[str, Tensor]]:
        check_shape(rays, "rays", (None, 6), hint="(origins and directions)")
        perturb = self.training if perturb is None else perturb
        return render_rays(self.coarse, rays[:, :3], rays[:, 3:], self.near, self.far, self.n_coarse, self.n_fine,
                           self.fine, perturb=perturb, background=self.background)

    def forward(self, rays: Tensor) -> Tensor:
        out = self.render(rays)
        return out["fine" if self.n_fine else "coarse"]["rgb"]

    @staticmethod
    def loss(model: "TinyNeRF", batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """``{"coarse": MSE, "fine": MSE}`` of a ``(rays, colours)`` batch (``fit(..., step_fn=TinyNeRF.loss)``)."""
        rays, target = batch
        out = model.render(rays)
        return {k: nn.functional.mse_loss(v["rgb"], target) for k, v in out.items()}

    @torch.no_grad()
    def render_image(self, height: int, width: int, intrinsics: Tensor, c2w: Tensor) -> dict[str, Tensor]:
        """A whole view, coarse and fine (see :func:`render_image`)."""
        return render_image(self.coarse, height, width, intrinsics, c2w, self.near, self.far, self.n_coarse,
                            self.n_fine, self.fine, background=self.background)


# ----------------------------------------------------------------------------------------------- the scene
@dataclass
class PrimitiveScene:
    """Spheres and axis-aligned boxes of constant density, with edges softened over about ``edge`` units.

    Primitive k has density ``sigma * s(z_k)``, ``s`` the logistic sigmoid and ``z_k = (r - |x - c|) / edge`` for a
    sphere (centre c, radius r) or ``z_k = -max_i(|x_i - c_i| - h_i) / edge`` for a box (half-sizes h); the scene's
    density is the sum. Colours are view-independent (a matte scene) but vary in space, to give the network some
    detail to learn: a sphere is lit from above, ``colour * (0.65 + 0.35 n_z)`` with ``n = (x - c) / r``; a box
    carries a checkerboard of ``checker``-sized squares in x and y alternating ``colour`` and ``0.6 * colour``.
    Where primitives overlap the colour is the density-weighted mean. Calling the scene gives ``(sigma, rgb)``
    like a network field, so the same renderer (:func:`render_image`) makes the ground-truth views.
    """

    spheres: list[tuple[tuple[float, float, float], float, tuple[float, float, float]]] = field(default_factory=list)
    boxes: list[tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]] = \
        field(default_factory=list)
    sigma: float = 30.0
    edge: float = 0.02
    checker: float = 0.3

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (Tensor[P, 3]) -> sigma (Tensor[P]), rgb (Tensor[P, 3])."""
        check_shape(x, "x", (None, 3))
        if not self.spheres and not self.boxes:
            raise ValueError("the scene has no primitives")
        logits, cols = [], []                                   # density of primitive k is sigma * sigmoid(logit_k)
        as_t = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device)  # noqa: E731
        for centre, radius, colour in self.spheres:
            rel = x - as_t(centre)
            logits.append((radius - rel.norm(dim=1)) / self.edge)
            shade = 0.65 + 0.35 * (rel[:, 2] / radius).clamp(-1, 1)
            cols.append(shade[:, None] * as_t(colour))
        for centre, half, colour in self.boxes:
            rel = x - as_t(centre)
            logits.append(-(rel.abs() - as_t(half)).amax(dim=1) / self.edge)
            cell = torch.floor(rel[:, 0] / self.checker) + torch.floor(rel[:, 1] / self.checker)
            tone = 1.0 - 0.4 * torch.remainder(cell, 2)
            cols.append(tone[:, None] * as_t(colour))
        z = torch.stack(logits, dim=1)                                      # (P, K)
        share = torch.softmax(nn.functional.logsigmoid(z), dim=1)          # d_k / sum_j d_j, stable far away
        rgb = (share[..., None] * torch.stack(cols, dim=1)).sum(1)         # (P, K, 3) -> (P, 3)
        return self.sigma * torch.sigmoid(z).sum(1), rgb


def toy_scene() -> PrimitiveScene:
    """The notebook's scene inside [-1, 1]^3: a red, a green and a blue sphere on a checkered slab (a box)."""
    return PrimitiveScene(
        spheres=[((0.3, 0.0, 0.0), 0.3, (0.95, 0.2, 0.1)),
                 ((-0.3, 0.35, -0.05), 0.25, (0.1, 0.8, 0.25)),
                 ((-0.2, -0.4, -0.08), 0.22, (0.2, 0.35, 0.95))],
        boxes=[((0.0, 0.0, -0.38), (0.6, 0.6, 0.08), (0.9, 0.8, 0.45))],
    )


def psnr(pred: Tensor, target: Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]: ``-10 log10(MSE)``."""
    check_tensor(pred, "pred"); check_tensor(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    mse = (pred.float() - target.float()).pow(2).mean().item()
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)
