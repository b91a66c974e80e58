"""SIFT (cvcourse.features.sift_pipeline) against OpenCV's SIFT and against crafted images with known answers."""

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from cvcourse.features import (
    detect_and_compute,
    difference_of_gaussians,
    gaussian_blur,
    gaussian_scale_space,
    keypoints_from_cv2,
    keypoints_to_cv2,
    scale_space_extrema,
    sift,
    sift_descriptors,
    to_gray_tensor,
)


@pytest.fixture(scope="module")
def camera():
    return skdata.camera()  # (512, 512) uint8


@pytest.fixture(scope="module")
def ours_camera(camera):
    return detect_and_compute(camera)


@pytest.fixture(scope="module")
def opencv_camera(camera):
    kps, desc = cv2.SIFT_create().detectAndCompute(camera, None)
    return keypoints_from_cv2(kps), torch.from_numpy(desc).float()


def _nearest(a: torch.Tensor, b: torch.Tensor):
    """For each keypoint of ``a`` the distance to and index of the nearest keypoint of ``b`` (positions)."""
    d = torch.cdist(a[:, :2].double(), b[:, :2].double())
    dist, idx = d.min(1)
    return dist, idx


# ------------------------------------------------------------------------------------------------ stages


@pytest.mark.parametrize("sigma", [0.8, 1.6, 3.1])
def test_gaussian_blur_matches_opencv(sigma):
    rng = np.random.default_rng(0)
    img = rng.random((37, 50)).astype(np.float32)
    k = 2 * math.ceil(3 * sigma) + 1
    ref = cv2.GaussianBlur(img, (k, k), sigma, borderType=cv2.BORDER_REFLECT_101)
    torch.testing.assert_close(gaussian_blur(torch.from_numpy(img), sigma), torch.from_numpy(ref), atol=1e-5, rtol=1e-4)


def test_gaussian_blur_batched_and_errors():
    x = torch.rand(2, 3, 20, 24)
    torch.testing.assert_close(gaussian_blur(x, 1.0)[1, 2], gaussian_blur(x[1, 2], 1.0))
    with pytest.raises(ValueError, match="sigma must be positive"):
        gaussian_blur(x, 0.0)
    with pytest.raises(ValueError, match="too large"):
        gaussian_blur(torch.rand(5, 5), 3.0)


def test_scale_space_levels_have_the_stated_blur():
    """Level s of octave 0 should equal the input blurred once by sigma * 2**(s/S) (incremental blurs compose)."""
    img = torch.rand(96, 96)
    pyr = gaussian_scale_space(img, n_octaves=2, upsample=False, assumed_blur=0.0)
    assert [tuple(p.shape) for p in pyr] == [(6, 96, 96), (6, 48, 48)]
    direct = gaussian_blur(img, 1.6 * 2 ** (4 / 3))
    inner = (slice(20, -20), slice(20, -20))  # away from the mirrored border
    torch.testing.assert_close(pyr[0][4][inner], direct[inner], atol=2e-3, rtol=0)
    torch.testing.assert_close(pyr[1][0], pyr[0][3][::2, ::2])  # next octave starts from level S, subsampled
    dog = difference_of_gaussians(pyr)
    torch.testing.assert_close(dog[0][2], pyr[0][3] - pyr[0][2])


def test_extrema_equal_max_pool3d_reference():
    g = torch.Generator().manual_seed(0)
    dog = torch.randn(5, 70, 45, generator=g)
    got = scale_space_extrema(dog, threshold=0.5, border=3)
    v = dog[None, None]
    mx = F.max_pool3d(v, 3, stride=1, padding=1)[0, 0]
    mn = -F.max_pool3d(-v, 3, stride=1, padding=1)[0, 0]
    ref = ((dog >= mx) & (dog > 0.5)) | ((dog <= mn) & (dog < -0.5))
    ref[[0, -1]] = False
    ref[:, :3] = False
    ref[:, -3:] = False
    ref[:, :, :3] = False
    ref[:, :, -3:] = False
    assert len(got) > 10
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, ref.nonzero().tolist()))
    with pytest.raises(ValueError, match="border must be >= 1"):
        scale_space_extrema(dog, 0.5, border=0)


@pytest.mark.parametrize("radius", [6.0, 10.0])
def test_blob_gives_keypoint_at_centre_with_scale_r_over_sqrt2(radius):
    """A disc of radius r is detected at its centre at the scale where the Laplacian of Gaussian peaks,
    sigma = r / sqrt(2), i.e. size = 2 sigma = sqrt(2) r."""
    n, cx, cy = 96, 47.3, 50.6
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    # anti-aliased disc: 4x4 supersampling
    sub = (np.arange(4) + 0.5) / 4 - 0.5
    cover = np.zeros((n, n))
    for dy in sub:
        for dx in sub:
            cover += ((xx + dx - cx) ** 2 + (yy + dy - cy) ** 2 <= radius**2) / 16
    img = torch.from_numpy(0.2 + 0.6 * cover).float()
    res = sift(img)
    kp = res.keypoints[0]  # strongest response
    assert abs(kp[0].item() - cx) < 0.5 and abs(kp[1].item() - cy) < 0.5
    assert kp[2].item() == pytest.approx(math.sqrt(2) * radius, rel=0.15)


def test_constant_image_has_no_keypoints():
    res = sift(torch.full((64, 80), 0.5))
    assert res.keypoints.shape == (0, 6) and res.descriptors.shape == (0, 128)


# ------------------------------------------------------------------------------------------------ against OpenCV


def test_keypoints_repeat_opencv(ours_camera, opencv_camera):
    """Same algorithm and defaults as OpenCV, so nearly every keypoint should have an OpenCV twin within 2 px
    at a similar size (the differences: kernel truncation and 3 sigma vs 4 sigma, sub-pixel conventions)."""
    ours, (ref, _) = ours_camera.keypoints, opencv_camera
    assert abs(len(ours) - len(ref)) < 0.1 * len(ref)
    for a, b in ((ours, ref), (ref, ours)):
        dist, idx = _nearest(a, b)
        size_ok = (a[:, 2] / b[idx, 2] - 1).abs() < 0.25
        assert ((dist < 2) & size_ok).float().mean() > 0.9


def test_orientations_agree_with_opencv(ours_camera, opencv_camera):
    ours, (ref, _) = ours_camera.keypoints, opencv_camera
    d = torch.cdist(ours[:, :2], ref[:, :2])
    near = (d < 1.0) & ((ours[:, None, 2] / ref[None, :, 2] - 1).abs() < 0.1)
    diff = (ours[:, None, 3] - ref[None, :, 3] + 180) % 360 - 180  # (K_ours, K_cv) angle differences
    close = (near & (diff.abs() < 10)).any(1)
    has_twin = near.any(1)
    assert has_twin.float().mean() > 0.85
    assert close[has_twin].float().mean() > 0.85


def test_descriptor_matches_opencv_at_its_keypoints(camera, opencv_camera):
    """Same layout as OpenCV (4x4 cells x 8 bins, same orientation sense): at OpenCV's keypoints our descriptor
    should be nearly parallel to OpenCV's (its uint8 values normalised to unit length)."""
    ref_kp, ref_desc = opencv_camera
    ours = sift_descriptors(camera, ref_kp[:300])
    ref = F.normalize(ref_desc[:300], dim=1)
    cos = (ours * ref).sum(1)
    assert cos.median() > 0.97
    assert (cos > 0.9).float().mean() > 0.9


def test_rotation_by_90_degrees_shifts_angles_and_keeps_descriptors(camera, ours_camera):
    """np.rot90 maps pixels exactly: a keypoint at (x, y) moves to (y, W - 1 - x), its angle drops by 90 degrees
    and its descriptor (measured relative to that angle) stays the same."""
    a = ours_camera
    b = detect_and_compute(np.ascontiguousarray(np.rot90(camera)))
    W = camera.shape[1]
    moved = torch.stack([a.keypoints[:, 1], W - 1 - a.keypoints[:, 0]], 1)
    d = torch.cdist(moved, b.keypoints[:, :2])
    same = (d < 0.5) & ((a.keypoints[:, None, 2] / b.keypoints[None, :, 2] - 1).abs() < 0.05)
    diff = (b.keypoints[None, :, 3] - (a.keypoints[:, None, 3] - 90) + 180) % 360 - 180
    pair = same & (diff.abs() < 3)
    i, j = pair.float().argmax(1), pair.any(1)
    assert j.float().mean() > 0.8  # most keypoints reappear with the rotated angle
    desc_dist = (a.descriptors[j] - b.descriptors[i[j]]).norm(dim=1)
    assert desc_dist.median() < 0.1


def test_keypoints_cv2_round_trip(ours_camera):
    kp = ours_camera.keypoints[:20]
    back = keypoints_from_cv2(keypoints_to_cv2(kp))
    torch.testing.assert_close(back, kp.float(), atol=1e-4, rtol=1e-5)


def test_sift_on_device_agrees_with_cpu(device, camera):
    crop = camera[100:260, 150:330]
    cpu = detect_and_compute(crop)
    dev = detect_and_compute(crop, device=device)
    assert dev.keypoints.device.type == device.type
    assert abs(len(dev.keypoints) - len(cpu.keypoints)) <= 2
    dist, idx = _nearest(cpu.keypoints, dev.keypoints.cpu())
    assert (dist < 0.05).float().mean() > 0.95


# ------------------------------------------------------------------------------------------------ inputs


def test_to_gray_tensor_inputs():
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ref = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    torch.testing.assert_close(to_gray_tensor(rgb), torch.from_numpy(ref), atol=1 / 255, rtol=0)
    chw = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(to_gray_tensor(chw), to_gray_tensor(rgb))
    assert to_gray_tensor(torch.rand(1, 20, 30)).shape == (20, 30)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"image must have shape \(H, W\)"):
        sift(torch.rand(2, 3, 40, 40))
    with pytest.raises(TypeError, match="must be float"):
        sift(torch.zeros(40, 40, dtype=torch.uint8))
    with pytest.raises(ValueError, match="too small"):
        sift(torch.rand(10, 40))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        sift([[0.0] * 40] * 40)
    with pytest.raises(ValueError, match="edge_threshold"):
        sift(torch.rand(40, 40), edge_threshold=1.0)
    with pytest.raises(ValueError, match=r"keypoints must have shape \(K, 4\+\)"):
        sift_descriptors(torch.rand(40, 40), torch.zeros(3, 2))
