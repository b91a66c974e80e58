import pytest
import torch

from cvcourse.data import photo_tensor
from cvcourse.data.patches import PATCH_PHOTOS, PhotoPatches


def test_items_are_deterministic_and_well_formed():
    a, b = PhotoPatches(8, seed=3), PhotoPatches(8, seed=3)
    for i in range(8):
        (xa, ya), (xb, yb) = a[i], b[i]
        assert torch.equal(xa, xb) and ya == yb
        assert xa.shape == (3, 64, 64) and xa.dtype == torch.float32
        assert 0 <= xa.min() and xa.max() <= 1
        assert 0 <= int(ya) < len(PATCH_PHOTOS)
    assert not torch.equal(a[0][0], PhotoPatches(8, seed=4)[0][0])


def test_train_and_val_regions_are_disjoint():
    for split, lo, hi in (("train", 0.0, 0.6), ("val", 0.6, 1.0)):
        ds = PhotoPatches(200, split=split, seed=1)
        for i in range(len(ds)):
            label, x0, y0, side, _ = ds.crop_box(i)
            h, w = ds._images[label].shape[1:]
            assert int(lo * w) <= x0 and x0 + side <= int(hi * w)
            assert 0 <= y0 and y0 + side <= h


def test_patch_is_the_crop_of_its_box():
    ds = PhotoPatches(6, split="val", patch_size=40, crop_range=(0.2, 0.3), seed=2)
    for i in range(6):
        label, x0, y0, side, flipped = ds.crop_box(i)
        crop = photo_tensor(ds.classes[label])[:, y0 : y0 + side, x0 : x0 + side]
        crop = crop.flip(-1) if flipped else crop
        expected = torch.nn.functional.interpolate(crop[None], size=(40, 40), mode="bilinear", antialias=True)[0]
        image, target = ds[i]
        assert int(target) == label
        torch.testing.assert_close(image, expected.clamp(0, 1))


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        PhotoPatches(1, split="test")
    with pytest.raises(ValueError, match="unknown photos"):
        PhotoPatches(1, photos=("dog",))
    with pytest.raises(IndexError):
        PhotoPatches(2)[2]
