"""Matching, homographies and bag of visual words (cvcourse.features.matching / bovw)."""

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data as skdata
from skimage.feature import match_descriptors as sk_match

from cvcourse.features import (
    BagOfVisualWords,
    apply_homography,
    dense_keypoints,
    dense_sift,
    detect_and_compute,
    homography_dlt,
    match_descriptors,
    ransac_homography,
    repeatability,
    stereo_match_correct,
)


def _rand_homography(rng, strength=0.2):
    Hm = np.eye(3) + rng.normal(0, strength, (3, 3)) * np.array([[1, 1, 20], [1, 1, 20], [1e-3, 1e-3, 0]])
    return torch.from_numpy(Hm)


# ------------------------------------------------------------------------------------------------ matching


@pytest.mark.parametrize("cross_check", [False, True])
@pytest.mark.parametrize("ratio", [0.6, 0.8, 1.0])
def test_match_descriptors_equals_skimage(ratio, cross_check):
    rng = np.random.default_rng(1)
    d1 = rng.random((60, 16)).astype(np.float32)
    d2 = np.concatenate([d1[:30] + rng.normal(0, 0.05, (30, 16)), rng.random((45, 16))]).astype(np.float32)
    ref = sk_match(d1, d2, max_ratio=ratio, cross_check=cross_check)
    got, dist = match_descriptors(torch.from_numpy(d1), torch.from_numpy(d2), ratio, cross_check)
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, ref.tolist()))
    torch.testing.assert_close(dist, torch.from_numpy(d1[got[:, 0]] - d2[got[:, 1]]).norm(dim=1))


def test_match_descriptors_edge_cases_and_errors():
    m, d = match_descriptors(torch.zeros(0, 8), torch.rand(5, 8))
    assert m.shape == (0, 2) and m.dtype == torch.long and d.shape == (0,)
    m, _ = match_descriptors(torch.rand(3, 8), torch.rand(1, 8))  # one candidate: no ratio test possible
    assert m[:, 1].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match=r"desc2 must have shape \(N, 8\)"):
        match_descriptors(torch.rand(3, 8), torch.rand(3, 4))
    with pytest.raises(ValueError, match="max_ratio"):
        match_descriptors(torch.rand(3, 8), torch.rand(3, 8), max_ratio=0)


# ------------------------------------------------------------------------------------------------ homographies


def test_homography_dlt_exact_and_equal_to_opencv():
    rng = np.random.default_rng(0)
    Hm = _rand_homography(rng)
    src = torch.from_numpy(rng.uniform(0, 300, (12, 2)))
    dst = apply_homography(Hm, src)
    got = homography_dlt(src, dst)
    torch.testing.assert_close(got, Hm / Hm[2, 2], atol=1e-6, rtol=1e-6)
    ref, _ = cv2.findHomography(src.numpy(), dst.numpy(), 0)
    torch.testing.assert_close(got, torch.from_numpy(ref), atol=1e-4, rtol=1e-4)  # OpenCV refines its DLT solution


def test_apply_homography_matches_opencv():
    rng = np.random.default_rng(3)
    Hm = _rand_homography(rng)
    pts = rng.uniform(0, 200, (20, 2))
    ref = cv2.perspectiveTransform(pts[None], Hm.numpy())[0]
    torch.testing.assert_close(apply_homography(Hm, torch.from_numpy(pts)), torch.from_numpy(ref))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_dlt_recovers_any_homography_and_inverse_maps_back(seed):
    rng = np.random.default_rng(seed)
    Hm = _rand_homography(rng, 0.1)
    src = torch.from_numpy(rng.uniform(0, 100, (8, 2)))
    dst = apply_homography(Hm, src)
    got = homography_dlt(src, dst)
    back = apply_homography(torch.linalg.inv(got), dst)
    torch.testing.assert_close(back, src, atol=1e-5, rtol=0)


def test_ransac_ignores_outliers():
    rng = np.random.default_rng(0)
    Hm = _rand_homography(rng)
    src = torch.from_numpy(rng.uniform(0, 400, (150, 2)))
    dst = apply_homography(Hm, src) + torch.from_numpy(rng.normal(0, 0.3, (150, 2)))
    outlier = torch.from_numpy(rng.random(150) < 0.4)
    dst[outlier] = torch.from_numpy(rng.uniform(0, 400, (int(outlier.sum()), 2)))
    got, inl = ransac_homography(src.float(), dst.float(), threshold=2.0)
    probe = torch.tensor([[0.0, 0.0], [400.0, 0.0], [0.0, 400.0], [400.0, 400.0]], dtype=torch.float64)
    err = (apply_homography(got.double(), probe) - apply_homography(Hm, probe)).norm(dim=1)
    assert err.max() < 1.5
    far = (apply_homography(Hm, src) - dst).norm(dim=1) > 4  # outliers that landed far from the model
    assert not (inl & far).any()
    assert inl[~outlier].float().mean() > 0.95


def test_ransac_errors():
    with pytest.raises(ValueError, match="at least 4"):
        ransac_homography(torch.rand(3, 2), torch.rand(3, 2))
    with pytest.raises(ValueError, match=r"dst must have shape \(5, 2\)"):
        ransac_homography(torch.rand(5, 2), torch.rand(4, 2))
    with pytest.raises(ValueError, match="at least 4 point pairs"):
        homography_dlt(torch.rand(3, 2), torch.rand(3, 2))


def test_sift_matching_recovers_rotation_and_scale():
    """End to end: camera rotated by 30 degrees and scaled by 0.7; SIFT + ratio test + RANSAC finds the warp."""
    cam = skdata.camera()[96:416, 96:416]  # (320, 320): keeps the test fast
    A = cv2.getRotationMatrix2D((160, 160), 30, 0.7)
    warped = cv2.warpAffine(cam, A, (320, 320), flags=cv2.INTER_LINEAR)
    a, b = detect_and_compute(cam), detect_and_compute(warped)
    m, _ = match_descriptors(a.descriptors, b.descriptors, 0.8)
    got, inl = ransac_homography(a.keypoints[m[:, 0], :2], b.keypoints[m[:, 1], :2])
    true = torch.from_numpy(np.vstack([A, [0, 0, 1]]))
    probe = torch.tensor([[60.0, 60.0], [260.0, 60.0], [60.0, 260.0], [260.0, 260.0]], dtype=torch.float64)
    err = (apply_homography(got.double(), probe) - apply_homography(true, probe)).norm(dim=1)
    assert inl.sum() >= 30
    assert err.max() < 2.0


# ------------------------------------------------------------------------------------------------ bag of words


def test_dense_keypoints_grid():
    kp = dense_keypoints(32, 48, step=8, size=12)
    assert kp.shape == (4 * 6, 6)
    assert kp[:, 0].unique().tolist() == [4, 12, 20, 28, 36, 44]
    assert (kp[:, 2] == 12).all() and (kp[:, 3] == 0).all()
    with pytest.raises(ValueError, match="step >= 1"):
        dense_keypoints(32, 32, step=0)


def test_dense_sift_shape_and_norm():
    desc = dense_sift(skdata.camera()[:64, :96], step=16, size=12)
    assert desc.shape == (4 * 6, 128)
    torch.testing.assert_close(desc.norm(dim=1), torch.ones(24))


def test_bag_of_words_finds_clusters_and_counts_words():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 16, generator=g) * 5
    labels = torch.randint(0, 5, (2000,), generator=g)
    desc = centres[labels] + 0.1 * torch.randn(2000, 16, generator=g)
    bow = BagOfVisualWords(n_words=5, seed=0).fit([desc[:1000], desc[1000:]])
    # every true centre has a word next to it
    assert torch.cdist(centres, bow.vocabulary).min(1).values.max() < 0.1
    words = bow.words(desc)
    brute = ((desc[:, None] - bow.vocabulary[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(words, brute)
    h = bow.histogram(desc[:100])
    counts = torch.bincount(brute[:100], minlength=5).float()
    torch.testing.assert_close(h, (counts / 100).sqrt())
    hs = bow.transform([desc[:100], desc[:0]])
    assert hs.shape == (2, 5) and (hs[1] == 0).all()


def test_bag_of_words_errors():
    with pytest.raises(RuntimeError, match="call fit"):
        BagOfVisualWords(4).histogram(torch.rand(3, 8))
    with pytest.raises(ValueError, match="at least n_words"):
        BagOfVisualWords(10).fit(torch.rand(5, 8))
    with pytest.raises(ValueError, match="n_words must be >= 2"):
        BagOfVisualWords(1)
    bow = BagOfVisualWords(2).fit(torch.rand(20, 8))
    with pytest.raises(TypeError, match="one descriptor tensor per image"):
        bow.transform(torch.rand(3, 8))


# ------------------------------------------------------------------------------------------------ evaluation


def test_repeatability_counts_partners_within_tolerance():
    kp = torch.tensor([[10.0, 10.0, 4.0], [50.0, 20.0, 4.0], [30.0, 70.0, 8.0], [90.0, 90.0, 4.0]])
    assert repeatability(kp, kp) == 1.0
    shifted = kp + torch.tensor([1.5, 0.0, 0.0])
    assert repeatability(kp, shifted, tol=2.0) == 1.0
    assert repeatability(kp, shifted, tol=1.0) == 0.0
    bigger = kp * torch.tensor([1.0, 1.0, 1.5])
    assert repeatability(kp, bigger, size_tol=0.25) == 0.0
    assert repeatability(kp, bigger, size_tol=None) == 1.0
    # a known zoom by 2: positions and sizes double; points mapped outside a 101 x 101 image are not counted
    Hm = torch.diag(torch.tensor([2.0, 2.0, 1.0]))
    zoomed = kp * 2
    assert repeatability(kp, zoomed[:2], Hm=Hm, shape2=(101, 101)) == 1.0
    assert repeatability(kp, zoomed[:1], Hm=Hm, shape2=(101, 101)) == 0.5


def test_stereo_match_correct_uses_disparity():
    disp = torch.full((20, 30), 5.0)
    disp[:, :3] = float("inf")
    left = torch.tensor([[10.0, 4.0], [10.0, 4.0], [10.0, 4.0], [1.0, 4.0]])
    right = torch.tensor([[5.0, 4.0], [6.5, 5.0], [5.0, 7.0], [-4.0, 4.0]])
    assert stereo_match_correct(left, right, disp).tolist() == [True, True, False, False]
    with pytest.raises(ValueError, match=r"pts2 must have shape \(4, 2\)"):
        stereo_match_correct(left, right[:2], disp)
