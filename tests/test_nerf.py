"""cvcourse.nerf: expected values derived by hand (closed forms of the rendering integral, the pinhole projection
as the inverse of ray generation, hand-computed inverse CDFs), not copied from the code under test."""

from __future__ import annotations

import math

import pytest
import torch

from cvcourse.nerf import (FourierMLP, PrimitiveScene, TinyNeRF, encoding_dim, fine_samples, get_rays, look_at,
                           orbit_poses, pinhole_intrinsics, positional_encoding, psnr, render_image, render_rays,
                           sample_pdf, stratified_samples, toy_scene, volume_render)


# ------------------------------------------------------------------------------------------ compositing
def test_single_opaque_sample_gives_its_colour_and_depth():
    t = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    sigma = torch.tensor([[0.0, 1e6, 0.0, 0.0]])           # empty, then a wall at t = 2
    rgb = torch.rand(1, 4, 3, generator=torch.Generator().manual_seed(0))
    out = volume_render(sigma, rgb, t, background=1.0)
    torch.testing.assert_close(out["rgb"], rgb[:, 1])
    torch.testing.assert_close(out["depth"], torch.tensor([2.0]))
    torch.testing.assert_close(out["acc"], torch.tensor([1.0]))
    torch.testing.assert_close(out["weights"], torch.tensor([[0.0, 1.0, 0.0, 0.0]]))


def test_empty_ray_shows_the_background():
    out = volume_render(torch.zeros(2, 5), torch.rand(2, 5, 3), torch.linspace(1, 2, 5).expand(2, 5), background=0.7)
    torch.testing.assert_close(out["rgb"], torch.full((2, 3), 0.7))
    torch.testing.assert_close(out["acc"], torch.zeros(2))


def test_homogeneous_medium_transmittance_is_beer_lambert():
    # constant density: T(t) = exp(-sigma (t - t0)) exactly, whatever the spacing; opacity to t_far likewise
    g = torch.Generator().manual_seed(1)
    t = torch.sort(torch.rand(3, 40, generator=g) * 3 + 1, dim=1).values.double()
    s = 0.8
    out = volume_render(torch.full_like(t, s), torch.rand(3, 40, 3, generator=g).double(), t, t_far=4.5)
    torch.testing.assert_close(out["transmittance"], torch.exp(-s * (t - t[:, :1])), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(out["acc"], 1 - torch.exp(-s * (4.5 - t[:, 0])), rtol=1e-6, atol=1e-8)
    # the expected depth of a uniform medium on [t0, inf) with fine samples approaches t0 + 1 / sigma
    tt = torch.linspace(0, 40, 40001, dtype=torch.float64)[None]
    depth = volume_render(torch.full_like(tt, s), torch.zeros(1, 40001, 3, dtype=torch.float64), tt)["depth"]
    assert abs(depth.item() - 1 / s) < 1e-3


def test_volume_render_gradcheck():
    g = torch.Generator().manual_seed(2)
    sigma = torch.rand(2, 5, generator=g, dtype=torch.float64).requires_grad_()
    rgb = torch.rand(2, 5, 3, generator=g, dtype=torch.float64).requires_grad_()
    t = torch.linspace(0.5, 2.0, 5, dtype=torch.float64).expand(2, 5)
    assert torch.autograd.gradcheck(lambda a, b: volume_render(a, b, t, background=1.0, t_far=2.5)["rgb"],
                                    (sigma, rgb))


# ------------------------------------------------------------------------------------------ encoding
def test_encoding_dimensions_match_the_paper():
    # the paper: L = 10 for x (60 numbers), L = 4 for the direction (24); the official code adds the input
    assert encoding_dim(3, 10, include_input=False) == 60 and encoding_dim(3, 4, include_input=False) == 24
    assert encoding_dim(3, 10) == 63
    assert positional_encoding(torch.zeros(7, 5, 3), 10).shape == (7, 5, 63)


def test_encoding_values_and_frequencies_by_hand():
    x = torch.tensor([[0.25, -0.5]], dtype=torch.float64)
    r2 = math.sqrt(0.5)
    # [x, sin(pi x), cos(pi x), sin(2 pi x), cos(2 pi x)], each block holding both coordinates
    expected = torch.tensor([[0.25, -0.5, r2, -1.0, r2, 0.0, 1.0, 0.0, 0.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(positional_encoding(x, 2), expected, atol=1e-12, rtol=0)
    # the k-th pair oscillates with period 2 / 2^k: shifting x by that period leaves it unchanged
    xs = torch.linspace(-1, 1, 11, dtype=torch.float64)[:, None]
    k = 3
    e0, e1 = positional_encoding(xs, 4, False), positional_encoding(xs + 2 / 2 ** k, 4, False)
    torch.testing.assert_close(e0[:, 2 * k:2 * k + 2], e1[:, 2 * k:2 * k + 2], atol=1e-9, rtol=0)


# ------------------------------------------------------------------------------------------ rays
def test_principal_pixel_looks_along_the_camera_axis():
    pose = look_at((2.0, -1.0, 1.5))
    H, W = 9, 11                                           # odd: the centre pixel's centre is the principal point
    o, d = get_rays(H, W, pinhole_intrinsics(10.0, H, W), pose)
    forward = -torch.tensor([2.0, -1.0, 1.5]) / math.sqrt(4 + 1 + 2.25)   # towards the origin
    torch.testing.assert_close(d[H // 2, W // 2], forward)
    torch.testing.assert_close(o, torch.tensor([2.0, -1.0, 1.5]).expand(H, W, 3))
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(H, W))


def test_rays_project_back_to_their_pixel_centres():
    # the pinhole projection (world -> camera -> pixel) must invert ray generation, for any depth
    pose = orbit_poses(5, 3.0, 20.0)[2]
    K = torch.tensor([[30.0, 0.0, 12.0], [0.0, 25.0, 7.0], [0.0, 0.0, 1.0]])
    o, d = get_rays(10, 20, K, pose)
    p = o + 2.7 * d                                        # points on the rays
    q = (p - pose[:, 3]) @ pose[:, :3]                     # camera coordinates, R^T (p - c)
    u = K[0, 0] * q[..., 0] / -q[..., 2] + K[0, 2]
    v = -K[1, 1] * q[..., 1] / -q[..., 2] + K[1, 2]
    vv, uu = torch.meshgrid(torch.arange(10.0) + 0.5, torch.arange(20.0) + 0.5, indexing="ij")
    torch.testing.assert_close(u, uu, atol=1e-4, rtol=0)
    torch.testing.assert_close(v, vv, atol=1e-4, rtol=0)


def test_look_at_is_a_rotation_and_orbit_cameras_face_the_origin():
    poses = orbit_poses(6, 2.0, 30.0)
    for p in poses:
        torch.testing.assert_close(p[:, :3].T @ p[:, :3], torch.eye(3), atol=1e-6, rtol=0)
        assert abs(p[:, 3].norm().item() - 2.0) < 1e-6
        torch.testing.assert_close(-p[:, 2], -p[:, 3] / 2.0)       # -z axis points at the origin
        assert abs(p[2, 3].item() - 2.0 * math.sin(math.radians(30))) < 1e-6


# ------------------------------------------------------------------------------------------ sampling
def test_stratified_samples_one_per_bin():
    t = stratified_samples(100, 2.0, 6.0, 8, generator=torch.Generator().manual_seed(0))
    lo = 2.0 + 0.5 * torch.arange(8)
    assert bool(((t >= lo) & (t <= lo + 0.5)).all())
    assert t.std(0).min() > 0.1                            # really random inside the bins
    torch.testing.assert_close(stratified_samples(3, 2.0, 6.0, 8, perturb=False), (lo + 0.25).expand(3, 8))


def test_inverse_cdf_by_hand():
    # pdf 1/4 on [0, 1] and 3/4 on [1, 2]: F^-1(u) = 4u for u < 1/4, else 1 + (u - 1/4) / (3/4)
    bins, w = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[1.0, 3.0]])
    got = sample_pdf(bins, w, 4, deterministic=True)       # u = 1/8, 3/8, 5/8, 7/8
    torch.testing.assert_close(got, torch.tensor([[0.5, 1 + 1 / 6, 1.5, 1 + 5 / 6]]), atol=1e-4, rtol=0)


def test_inverse_cdf_puts_samples_where_the_weights_are():
    bins = torch.linspace(0, 4, 5).expand(2, 5)
    w = torch.tensor([[1.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 2.0]])
    s = sample_pdf(bins, w, 20000, generator=torch.Generator().manual_seed(0))
    share = torch.stack([torch.histc(r, bins=4, min=0, max=4) for r in s]) / 20000
    torch.testing.assert_close(share, torch.tensor([[0.25, 0.0, 0.75, 0.0], [0.0, 0.0, 0.0, 1.0]]),
                               atol=0.015, rtol=0)     # binomial standard deviation about 0.003
    # an all-zero row falls back to uniform sampling
    flat = sample_pdf(bins[:1], torch.zeros(1, 4), 20000, generator=torch.Generator().manual_seed(1))
    assert abs(flat.mean().item() - 2.0) < 0.05


def test_fine_samples_concentrate_at_the_surface():
    t = torch.linspace(1, 5, 16).expand(1, 16)
    w = torch.zeros(1, 16); w[0, 8] = 1.0                  # all weight at the 9th coarse sample
    tf = fine_samples(t, w, 32, deterministic=True)
    assert tf.shape == (1, 48) and bool((tf[:, 1:] >= tf[:, :-1]).all())
    new = tf[0][~torch.isin(tf[0], t[0])]
    lo, hi = 0.5 * (t[0, 7] + t[0, 8]), 0.5 * (t[0, 8] + t[0, 9])   # the bin around that sample
    assert bool(((new >= lo - 1e-4) & (new <= hi + 1e-4)).float().mean() > 0.95)


# ------------------------------------------------------------------------------------------ scene, fields
def test_scene_density_and_an_opaque_sphere_render():
    ball = PrimitiveScene(spheres=[((0.0, 0.0, 0.0), 0.5, (0.2, 0.4, 1.0))], sigma=200.0, edge=0.005)
    sigma, _ = ball(torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]))
    assert abs(sigma[0].item() - 200.0) < 1e-3 and sigma[1].item() < 1e-6
    # camera on the x axis: the centre ray hits the sphere where the normal is horizontal (shade 0.65)
    H = W = 15
    out = render_image(ball, H, W, pinhole_intrinsics(20.0, H, W), look_at((3.0, 0.0, 0.0)), 1.0, 5.0, 400,
                       background=1.0)
    torch.testing.assert_close(out["coarse"][:, H // 2, W // 2], 0.65 * torch.tensor([0.2, 0.4, 1.0]),
                               atol=0.02, rtol=0)
    assert abs(out["depth"][H // 2, W // 2].item() - 2.5) < 0.03    # the surface is at distance 3 - 0.5
    torch.testing.assert_close(out["coarse"][:, 0, 0], torch.ones(3))   # corner ray misses: background
    assert out["acc"][0, 0].item() < 1e-3 and out["acc"][H // 2, W // 2].item() > 0.999


def test_render_rays_coarse_and_fine_shapes():
    scene = toy_scene()
    o, d = get_rays(4, 5, pinhole_intrinsics(6.0, 4, 5), look_at((2.5, 0.0, 1.0)))
    out = render_rays(scene, o.reshape(-1, 3), d.reshape(-1, 3), 1.4, 3.6, 16, 8)
    assert set(out) == {"coarse", "fine"}
    assert out["coarse"]["weights"].shape == (20, 16) and out["fine"]["weights"].shape == (20, 24)
    assert bool((out["fine"]["acc"] <= 1 + 1e-6).all())


def test_tiny_nerf_forward_and_loss():
    torch.manual_seed(0)
    m = TinyNeRF(1.0, 3.0, n_coarse=8, n_fine=4, num_freqs=2, width=16, depth=2)
    rays = torch.cat([torch.zeros(5, 3), torch.nn.functional.normalize(torch.randn(5, 3), dim=1)], dim=1)
    rgb = m(rays)
    assert rgb.shape == (5, 3) and bool(((rgb >= 0) & (rgb <= 1)).all())
    losses = TinyNeRF.loss(m, (rays, torch.zeros(5, 3)))
    assert set(losses) == {"coarse", "fine"}
    sum(losses.values()).backward()
    assert m.coarse.mlp.head.weight.grad is not None and m.fine.mlp.head.weight.grad is not None
    assert FourierMLP(2, 3, num_freqs=0, width=8, depth=1)(torch.zeros(4, 2)).shape == (4, 3)


def test_psnr_by_hand():
    a = torch.zeros(3, 4, 4)
    assert abs(psnr(a + 0.1, a) - 20.0) < 1e-6         # MSE 0.01 -> 20 dB
    assert psnr(a, a) == float("inf")


# ------------------------------------------------------------------------------------------ bad input
def test_bad_input_errors():
    with pytest.raises(ValueError, match="num_freqs must be >= 0"):
        positional_encoding(torch.zeros(2, 3), -1)
    with pytest.raises(ValueError, match="floating-point"):
        positional_encoding(torch.zeros(2, 3, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match=r"c2w must be a \(3, 4\) or \(4, 4\)"):
        get_rays(4, 4, pinhole_intrinsics(5.0, 4, 4), torch.eye(3))
    with pytest.raises(ValueError, match="intrinsics must have shape"):
        get_rays(4, 4, torch.eye(4), torch.eye(4))
    with pytest.raises(ValueError, match="near < far"):
        stratified_samples(4, 3.0, 2.0, 8)
    with pytest.raises(ValueError, match="increasing"):
        volume_render(torch.ones(1, 3), torch.ones(1, 3, 3), torch.tensor([[1.0, 3.0, 2.0]]))
    with pytest.raises(ValueError, match="rgb must have shape"):
        volume_render(torch.ones(1, 3), torch.ones(1, 3), torch.tensor([[1.0, 2.0, 3.0]]))
    with pytest.raises(ValueError, match=r"bins \(N, M \+ 1\)"):
        sample_pdf(torch.zeros(2, 4), torch.ones(2, 4), 5)
    with pytest.raises(ValueError, match="non-negative"):
        sample_pdf(torch.linspace(0, 1, 3)[None], torch.tensor([[1.0, -1.0]]), 5)
    with pytest.raises(ValueError, match="parallel"):
        look_at((0.0, 0.0, 3.0))                          # looking straight down the default up vector
    with pytest.raises(ValueError, match="no primitives"):
        PrimitiveScene()(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.zeros(3), torch.zeros(4))


def test_rendering_agrees_across_devices(device):
    # the same field rendered on `device` (CPU always, CUDA when present) matches the CPU render
    torch.manual_seed(0)
    m = TinyNeRF(1.4, 3.6, n_coarse=12, n_fine=12, num_freqs=3, width=16, depth=2).eval()
    K, pose = pinhole_intrinsics(8.0, 6, 7), look_at((2.5, 0.5, 1.0))
    ref = m.render_image(6, 7, K, pose)
    got = m.to(device).render_image(6, 7, K, pose)
    assert got["fine"].device.type == device.type
    torch.testing.assert_close(got["fine"].cpu(), ref["fine"], atol=1e-4, rtol=1e-4)
    scene_img = render_image(toy_scene(), 6, 7, K.to(device), pose.to(device), 1.4, 3.6, 32)["coarse"]
    torch.testing.assert_close(scene_img.cpu(), render_image(toy_scene(), 6, 7, K, pose, 1.4, 3.6, 32)["coarse"],
                               atol=1e-4, rtol=1e-4)
