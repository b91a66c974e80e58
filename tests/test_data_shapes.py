"""Tests of the synthetic shapes data sets (cvcourse.data.shapes)."""

import math

import numpy as np
import pytest
import torch
import torchvision
from skimage.draw import disk, polygon
from skimage.measure import label as cc_label
from skimage.measure import regionprops
from torch.utils.data import DataLoader

from cvcourse.data import (
    SHAPE_CLASSES,
    ShapesClassification,
    ShapesDetection,
    ShapesSegmentation,
    collate_detection,
    masks_to_boxes,
    render_scene,
    shape_mask,
)
from cvcourse.data.shapes import _CIRCUMRADIUS, _STAR_INNER

DATASETS = [ShapesClassification, ShapesSegmentation, ShapesDetection]


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return torch.equal(a, b)


# ---------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("cls", DATASETS)
def test_same_seed_same_items_in_any_order(cls):
    a, b = cls(6, image_size=48, seed=3), cls(6, image_size=48, seed=3)
    forward = [a[i] for i in range(6)]
    backward = [b[i] for i in reversed(range(6))][::-1]
    for (xa, ya), (xb, yb) in zip(forward, backward):
        assert torch.equal(xa, xb) and _equal(ya, yb)
    assert torch.equal(a[-1][0], a[5][0])


@pytest.mark.parametrize("cls", DATASETS)
def test_different_seeds_and_indices_differ(cls):
    a, b = cls(2, image_size=32, seed=0), cls(2, image_size=32, seed=1)
    assert not torch.equal(a[0][0], b[0][0])
    assert not torch.equal(a[0][0], a[1][0])


def test_dataloader_workers_give_the_same_batches():
    ds = ShapesSegmentation(8, image_size=32, seed=5)
    direct = torch.stack([ds[i][1] for i in range(8)])
    (_, masks_w), = list(DataLoader(ds, batch_size=8, num_workers=2))
    assert torch.equal(direct, masks_w)


# ---------------------------------------------------------------------------- formats and ranges


@pytest.mark.parametrize("size", [32, 45, 64])
def test_classification_items(size):
    ds = ShapesClassification(20, image_size=size, max_shapes=3)
    for x, y in (ds[i] for i in range(len(ds))):
        assert x.shape == (3, size, size) and x.dtype == torch.float32
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        assert y.dtype == torch.int64 and y.dim() == 0 and 0 <= int(y) < 4
    labels = {int(ds[i][1]) for i in range(len(ds))}
    assert len(labels) >= 3  # classes are drawn at random


@pytest.mark.parametrize("background", ["texture", "noise", "plain"])
def test_segmentation_items(background):
    ds = ShapesSegmentation(10, image_size=40, background=background)
    seen = set()
    for i in range(len(ds)):
        x, m = ds[i]
        assert x.shape == (3, 40, 40) and x.dtype == torch.float32
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        assert m.shape == (40, 40) and m.dtype == torch.int64
        assert 0 <= int(m.min()) and int(m.max()) <= 4
        assert (m == 0).any()  # some background is always visible
        seen |= set(m.unique().tolist())
    assert seen == {0, 1, 2, 3, 4}
    assert ds.num_classes == 5 and ds.classes == ("background",) + SHAPE_CLASSES


def test_detection_targets_and_collate():
    ds = ShapesDetection(12, image_size=96, max_shapes=6)
    images, targets = collate_detection([ds[i] for i in range(len(ds))])
    assert len(images) == len(targets) == 12
    for x, t in zip(images, targets):
        k = len(t["labels"])
        assert x.shape == (3, 96, 96)
        assert 1 <= k <= 6
        assert t["boxes"].shape == (k, 4) and t["boxes"].dtype == torch.float32
        assert t["labels"].dtype == torch.int64 and bool(((t["labels"] >= 1) & (t["labels"] <= 4)).all())
        assert t["masks"].shape == (k, 96, 96) and t["masks"].dtype == torch.uint8
        assert bool((t["masks"].flatten(1).sum(1) > 0).all())  # every listed instance is visible
        assert int(t["masks"].sum(0).max()) <= 1  # visible instance masks are disjoint
        # boxes are the tight boxes of the instance masks; torchvision uses the last pixel as x2/y2
        ref = torchvision.ops.masks_to_boxes(t["masks"]) + torch.tensor([0.0, 0.0, 1.0, 1.0])
        torch.testing.assert_close(t["boxes"], ref)
    loader = DataLoader(ds, batch_size=4, collate_fn=collate_detection)
    batch_images, batch_targets = next(iter(loader))
    assert isinstance(batch_images, list) and len(batch_targets) == 4


def test_masks_to_boxes_matches_torchvision_and_handles_empty():
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(7, 20, 30, generator=g) > 0.97).to(torch.uint8)
    masks[0] = 0
    masks[1, 4, 9] = 1
    masks[1].zero_()
    masks[1, 4, 9] = 1  # a single pixel: box (9, 4, 10, 5), area 1
    boxes = masks_to_boxes(masks)
    ref = torchvision.ops.masks_to_boxes(masks[1:]) + torch.tensor([0.0, 0.0, 1.0, 1.0])
    torch.testing.assert_close(boxes[1:], ref)
    assert boxes[0].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert boxes[1].tolist() == [9.0, 4.0, 10.0, 5.0]
    assert masks_to_boxes(torch.zeros(0, 5, 5)).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        masks_to_boxes(torch.zeros(5, 5))


# ------------------------------------------------------------------ geometry and occlusion


def _reference_mask(kind, cx, cy, radius, angle, size):
    """The same shape rasterised by scikit-image (pixel centres at integer coordinates there)."""
    big_r = radius * _CIRCUMRADIUS[kind]
    cx, cy = cx - 0.5, cy - 0.5
    out = np.zeros((size, size), dtype=bool)
    if kind == "circle":
        rr, cc = disk((cy, cx), big_r, shape=out.shape)
    else:
        if kind == "star":
            t = angle + np.arange(10) * math.pi / 5
            r = np.where(np.arange(10) % 2 == 0, big_r, big_r * _STAR_INNER)
        else:
            n = 4 if kind == "square" else 3
            t = angle + np.arange(n) * 2 * math.pi / n
            r = np.full(n, big_r)
        rr, cc = polygon(cy + r * np.sin(t), cx + r * np.cos(t), shape=out.shape)
    out[rr, cc] = True
    return out


@pytest.mark.parametrize("kind", SHAPE_CLASSES)
@pytest.mark.parametrize("angle", [0.0, 0.4, 2.0])
def test_shape_mask_matches_scikit_image(kind, angle):
    ours = shape_mask(kind, 31.3, 28.6, 11.0, angle, 64)
    ref = _reference_mask(kind, 31.3, 28.6, 11.0, angle, 64)
    iou = (ours & ref).sum() / (ours | ref).sum()
    assert iou > 0.93, iou
    # equal-area radii: every class covers about pi r^2 pixels
    assert abs(ours.sum() / (math.pi * 11.0**2) - 1) < 0.06


def test_shape_mask_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        shape_mask("hexagon", 5, 5, 3, 0, 16)


@pytest.mark.parametrize("seed", range(6))
def test_visible_masks_follow_drawing_order(seed):
    scene = render_scene(np.random.default_rng(seed), 64, min_shapes=4, max_shapes=6, size_range=(0.12, 0.25))
    full = [shape_mask(size=64, **p) for p in scene.params]
    assert len(full) == len(scene.masks) >= 1
    for k, (vis, mask) in enumerate(zip(scene.masks, full)):
        later = np.zeros_like(mask)
        for m in full[k + 1 :]:
            later |= m
        np.testing.assert_array_equal(vis, mask & ~later)  # a later shape hides an earlier one
        assert vis.sum() >= mask.sum() // 2  # ... but never more than half of it
    assert scene.labels.tolist() == [SHAPE_CLASSES.index(p["kind"]) for p in scene.params]


def test_segmentation_mask_is_the_topmost_visible_shape():
    kw = dict(image_size=64, seed=11, min_shapes=3, max_shapes=5)
    seg, det = ShapesSegmentation(5, **kw), ShapesDetection(5, **kw, size_range=(0.08, 0.2))
    for i in range(5):
        scene = seg.scene(i)
        expected = np.zeros((64, 64), dtype=np.int64)
        for p in scene.params:  # paint shapes in drawing order, later ones on top
            expected[shape_mask(size=64, **p)] = SHAPE_CLASSES.index(p["kind"]) + 1
        image, mask = seg[i]
        np.testing.assert_array_equal(mask.numpy(), expected)
        # the detection view of the same scene agrees with the semantic mask
        det_image, target = det[i]
        assert torch.equal(det_image, image)
        painted = (target["masks"].long() * target["labels"][:, None, None]).sum(0)
        assert torch.equal(painted, mask)


def test_plain_background_pixels_outside_shapes():
    ds = ShapesSegmentation(4, image_size=32, background="plain", noise_std=0.0)
    for i in range(4):
        image, mask = ds[i]
        bg = image[:, mask == 0]  # (3, N) background pixels share one colour
        assert float((bg - bg[:, :1]).abs().max()) == 0.0
        fg = image[:, mask != 0]
        assert float((fg - bg[:, :1]).norm(dim=0).min()) > 0.1  # shapes stand out from it


def _shape_from_stats(mask: np.ndarray) -> str:
    """Name a single blob by its geometry alone (no access to the generator's parameters)."""
    props = max(regionprops(cc_label(mask)), key=lambda p: p.area)
    if props.solidity < 0.85:
        return "star"
    cy, cx = props.centroid
    ys, xs = np.nonzero(mask)
    reach = np.sqrt(((ys - cy) ** 2 + (xs - cx) ** 2).max()) + 0.5
    fill = props.area / (math.pi * reach**2)  # circle 1, square 2/pi = 0.64, triangle 0.41
    return "circle" if fill > 0.8 else "square" if fill > 0.52 else "triangle"


def test_classification_label_is_the_drawn_shape():
    ds = ShapesClassification(60, image_size=64, seed=2, background="plain", noise_std=0.0)
    hits = 0
    for i in range(len(ds)):
        image, label = ds[i]
        corner = image[:, 0, 0][:, None, None]
        # the shape is all pixels that differ from the flat background (the shape lies inside the image)
        blob = ((image - corner).abs().sum(0) > 1e-6).numpy()
        hits += _shape_from_stats(blob) == SHAPE_CLASSES[int(label)]
    assert hits >= 57, hits


def test_colour_does_not_give_the_class_away():
    ds = ShapesDetection(60, image_size=48, seed=4)
    colours = {c: [] for c in range(1, 5)}
    for i in range(len(ds)):
        image, t = ds[i]
        for m, lab in zip(t["masks"].bool(), t["labels"].tolist()):
            colours[lab].append(image[:, m].mean(1))
    means = torch.stack([torch.stack(v).mean(0) for v in colours.values()])  # (4, 3)
    spread = torch.stack([torch.stack(v).std(0) for v in colours.values()])  # (4, 3)
    assert float(spread.min()) > 0.15  # each class comes in many colours
    assert float((means - means.mean(0)).abs().max()) < 0.15  # and no class has its own colour


def test_any_image_size_and_shape_count():
    for size in (16, 100, 600):
        x, t = ShapesDetection(1, image_size=size, min_shapes=2, max_shapes=2)[0]
        assert x.shape == (3, size, size) and len(t["labels"]) >= 1


# -------------------------------------------------------------------------------- error paths


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="background must be one of"):
        ShapesSegmentation(4, background="stripes")
    with pytest.raises(ValueError, match="min_shapes <= max_shapes"):
        ShapesDetection(4, min_shapes=3, max_shapes=2)
    with pytest.raises(ValueError, match="size_range"):
        ShapesClassification(4, size_range=(0.3, 0.1))
    with pytest.raises(ValueError, match="image_size must be at least 8"):
        ShapesClassification(4, image_size=4)
    with pytest.raises(ValueError, match="n .* must be >= 0"):
        ShapesClassification(-1)
    with pytest.raises(IndexError, match="out of range"):
        ShapesClassification(3)[3]


# ------------------------------------------------------------------- fine-structure segmentation


def test_fine_segmentation_is_deterministic_and_has_every_class():
    from cvcourse.data import FINE_CLASSES, FineShapesSegmentation

    a, b = FineShapesSegmentation(8, image_size=32, seed=4), FineShapesSegmentation(8, image_size=32, seed=4)
    images, masks = a.tensors()
    assert images.shape == (8, 3, 32, 32) and masks.shape == (8, 32, 32) and masks.dtype == torch.int64
    assert torch.equal(a[5][0], b[5][0]) and torch.equal(a[-1][1], masks[7])
    assert not torch.equal(FineShapesSegmentation(1, 32, seed=5)[0][0], images[0])
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert set(masks.unique().tolist()) == set(range(len(FINE_CLASSES))) and FineShapesSegmentation.num_classes == 4


def test_fine_segmentation_structures_are_thin_and_small():
    from scipy import ndimage

    from cvcourse.data import FineShapesSegmentation

    _, masks = FineShapesSegmentation(30, image_size=64, seed=0).tensors()
    wires, dots = (masks == 2).numpy(), (masks == 3).numpy()
    # a wire is at most 3 px wide: eroding twice with a 3x3 square leaves (almost) nothing of it
    square = ndimage.generate_binary_structure(2, 2)
    assert ndimage.binary_erosion(wires, square[None], iterations=2).sum() < 0.02 * wires.sum()
    assert wires.sum() > 0 and dots.sum() > 0
    labels, n = ndimage.label(dots)
    sizes = np.bincount(labels.ravel())[1:]
    assert n > 30 and np.median(sizes) <= 21  # a 5-px disc has 21 pixels (occlusion only shrinks them)


def test_fine_segmentation_errors():
    from cvcourse.data import FineShapesSegmentation

    with pytest.raises(ValueError, match="image_size must be at least 16"):
        FineShapesSegmentation(2, image_size=8)
    with pytest.raises(ValueError, match="wires must be a range"):
        FineShapesSegmentation(2, wires=(3, 1))
    with pytest.raises(ValueError, match="background must be one of"):
        FineShapesSegmentation(2, background="sky")
    with pytest.raises(IndexError):
        FineShapesSegmentation(2)[2]
