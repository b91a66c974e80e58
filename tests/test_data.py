"""Tests of cvcourse.data: bundled photos, the digits data set and the real-data loaders' offline errors."""

import socket
import time

import numpy as np
import pytest
import skimage.data
import torch
import torchvision
from sklearn.datasets import load_digits, load_sample_image

from cvcourse.data import (
    PHOTO_NAMES,
    DatasetUnavailableError,
    DigitsDataset,
    PennFudanPed,
    cifar10,
    describe_photo,
    load_photo,
    oxford_pets,
    penn_fudan,
    photo_tensor,
    stereo_motorcycle,
)

# --------------------------------------------------------------------------------------- photos

EXPECTED_SIZES = {
    "chelsea": (300, 451),
    "coffee": (400, 600),
    "astronaut": (512, 512),
    "rocket": (427, 640),
    "camera": (512, 512),
    "motorcycle_left": (500, 741),
    "motorcycle_right": (500, 741),
    "china": (427, 640),
    "flower": (427, 640),
    "brick": (512, 512),
    "grass": (512, 512),
    "gravel": (512, 512),
}


def test_photo_names_are_the_documented_ones():
    assert set(PHOTO_NAMES) == set(EXPECTED_SIZES)


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_photos_load_offline_with_expected_shapes(name):
    image = load_photo(name)
    assert image.dtype == np.uint8 and image.shape == EXPECTED_SIZES[name] + (3,)
    assert image.std() > 10  # a real picture, not a blank array
    t = photo_tensor(name)
    assert t.shape == (3,) + EXPECTED_SIZES[name] and t.dtype == torch.float32
    torch.testing.assert_close(t, torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    assert describe_photo(name)


def test_photos_match_their_sources():
    np.testing.assert_array_equal(load_photo("chelsea"), skimage.data.chelsea())
    np.testing.assert_array_equal(load_photo("china"), load_sample_image("china.jpg"))
    camera = load_photo("camera")
    for c in range(3):  # grey images are repeated over three channels
        np.testing.assert_array_equal(camera[:, :, c], skimage.data.camera())


def test_load_photo_returns_a_fresh_copy():
    a = load_photo("coffee")
    a[:] = 0
    assert load_photo("coffee").any()


def test_unknown_photo_lists_the_names():
    with pytest.raises(ValueError, match="unknown photo 'lena'.*chelsea.*flower"):
        load_photo("lena")
    with pytest.raises(ValueError, match="choose one of"):
        photo_tensor("Chelsea")


def test_stereo_motorcycle_marks_unknown_disparity_as_nan():
    left, right, disparity = stereo_motorcycle()
    ref_left, ref_right, ref_disp = skimage.data.stereo_motorcycle()
    np.testing.assert_array_equal(left, ref_left)
    np.testing.assert_array_equal(right, ref_right)
    assert disparity.dtype == np.float32 and disparity.shape == left.shape[:2]
    np.testing.assert_array_equal(np.isnan(disparity), ~np.isfinite(ref_disp))
    known = np.isfinite(ref_disp)
    np.testing.assert_array_equal(disparity[known], ref_disp[known])
    np.testing.assert_array_equal(load_photo("motorcycle_left"), left)


# --------------------------------------------------------------------------------------- digits


def test_digits_split_is_disjoint_stratified_and_complete():
    train, test = DigitsDataset(train=True, image_size=8), DigitsDataset(train=False, image_size=8)
    digits = load_digits()
    assert len(train) + len(test) == len(digits.target)
    # at size 8 the images are the raw data scaled to [0, 1]; match every item back to a source image
    source = {}
    for img, lab in zip(digits.images.astype(np.float32) / 16, digits.target):
        source.setdefault(img.tobytes(), set()).add(int(lab))
    seen = {True: set(), False: set()}
    for is_train, ds in ((True, train), (False, test)):
        for img, lab in zip(ds.images[:, 0].numpy(), ds.labels.tolist()):
            key = img.tobytes()
            assert lab in source[key]
            seen[is_train].add(key)
        assert torch.equal(ds.images[:, 0], ds.images[:, 2])
    assert not seen[True] & seen[False]  # no image is in both splits
    counts = torch.bincount(test.labels, minlength=10).float() / torch.bincount(
        torch.from_numpy(digits.target), minlength=10
    )
    assert float(counts.min()) > 0.17 and float(counts.max()) < 0.23  # about 20 % of every class


def test_digits_items_and_determinism():
    ds = DigitsDataset(train=True, image_size=32)
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(ds.images.min()) >= 0 and float(ds.images.max()) <= 1
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert torch.equal(DigitsDataset(train=True, image_size=32).images, ds.images)
    assert set(ds.labels.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="image_size must be positive"):
        DigitsDataset(image_size=0)


# ------------------------------------------------------------------------- real data sets offline


@pytest.fixture
def no_network(monkeypatch):
    """Make every name lookup fail, as on a machine without internet (so no test ever downloads)."""

    def refuse(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known (network disabled by the test)")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


LOADERS = {
    "cifar10": (lambda root, download: cifar10(train=True, download=download, root=root), "ShapesClassification"),
    "oxford_pets": (lambda root, download: oxford_pets(download=download, root=root), "ShapesSegmentation"),
    "penn_fudan": (lambda root, download: penn_fudan(download=download, root=root), "ShapesDetection"),
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_missing_files_raise_dataset_unavailable(name, tmp_path, no_network):
    load, alternative = LOADERS[name]
    root = tmp_path / "empty"
    with pytest.raises(DatasetUnavailableError, match=f"internet.*{root}.*cvcourse.data.{alternative}"):
        load(root, False)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_download_offline_fails_quickly_with_the_same_error(name, tmp_path, no_network):
    load, alternative = LOADERS[name]
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match=f"downloading it failed.*{alternative}") as info:
        load(tmp_path, True)
    assert isinstance(info.value, RuntimeError)
    assert info.value.__cause__ is not None  # the original network error is kept
    assert time.perf_counter() - start < 30  # no long hang


def test_default_root_is_under_cvcourse_data(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path / "cache"))
    with pytest.raises(DatasetUnavailableError, match=str(tmp_path / "cache" / "cifar10")):
        cifar10()


def test_penn_fudan_reads_the_official_folder_layout(tmp_path):
    from PIL import Image

    folder = tmp_path / "PennFudanPed"
    (folder / "PNGImages").mkdir(parents=True)
    (folder / "PedMasks").mkdir()
    rng = np.random.default_rng(0)
    ids = np.zeros((30, 40), dtype=np.uint8)
    ids[2:10, 5:9] = 1
    ids[12:29, 20:38] = 2
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(folder / "PNGImages" / "FudanPed00001.png")
    Image.fromarray(ids).save(folder / "PedMasks" / "FudanPed00001_mask.png")
    ds = PennFudanPed(root=tmp_path)
    assert len(ds) == 1
    image, target = ds[0]
    assert image.shape == (3, 30, 40) and float(image.max()) <= 1
    assert target["labels"].tolist() == [1, 1]
    assert target["masks"].shape == (2, 30, 40) and target["masks"].dtype == torch.uint8
    assert target["boxes"].tolist() == [[5.0, 2.0, 9.0, 10.0], [20.0, 12.0, 38.0, 29.0]]
    ref = torchvision.ops.masks_to_boxes(target["masks"]) + torch.tensor([0.0, 0.0, 1.0, 1.0])
    torch.testing.assert_close(target["boxes"], ref)


# ----------------------------------------------------------------------------- materialise

def test_materialise_stacks_every_item_in_order():
    from cvcourse.data import DigitsDataset, ShapesDetection, materialise

    ds = DigitsDataset(train=False, image_size=8)
    t = materialise(ds)
    x, y = t.tensors
    assert x.shape == (len(ds), 3, 8, 8) and y.shape == (len(ds),) and y.dtype == torch.long
    for i in (0, 7, len(ds) - 1):
        assert torch.equal(x[i], ds[i][0]) and int(y[i]) == int(ds[i][1])

    det = ShapesDetection(3, image_size=32, seed=0, max_shapes=1)
    images, boxes = materialise(det, lambda item: (item[0], item[1]["boxes"][0])).tensors
    assert images.shape == (3, 3, 32, 32) and torch.equal(boxes[2], det[2][1]["boxes"][0])


def test_materialise_errors():
    from cvcourse.data import materialise

    with pytest.raises(ValueError, match="empty"):
        materialise([])
    with pytest.raises(ValueError, match="different shapes"):
        materialise([(torch.zeros(2), 0), (torch.zeros(3), 1)])
    with pytest.raises(ValueError, match="fields"):
        materialise([(torch.zeros(2), 0), (torch.zeros(2),)])
    with pytest.raises(TypeError, match="fields="):
        materialise([(torch.zeros(2), {"boxes": 1})])
