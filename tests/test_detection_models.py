"""Selective search, R-CNN crops, the small Fast/Faster R-CNN and the box widgets of cvcourse.detection."""

import numpy as np
import pytest
import torch

from cvcourse.detection import (
    RCNN,
    MaskHead,
    SmallFasterRCNN,
    SmallMaskRCNN,
    instance_mask_iou,
    mask_iou,
    mask_rcnn_loss,
    paste_masks_in_image,
    project_masks_on_boxes,
    SmallFastRCNN,
    add_context,
    hierarchical_grouping,
    label_proposals,
    selective_search,
    small_backbone,
    warp_regions,
)
from cvcourse.ops import box_iou
from cvcourse.widgets.boxes import intersection_box, iou_widget, nms_keep, plot_iou


def two_rectangles():
    """A grey 64 x 96 image with a red rectangle and a blue one; returns (image, boxes)."""
    img = np.full((64, 96, 3), 128, dtype=np.uint8)
    img[8:30, 10:40] = (220, 30, 30)
    img[35:60, 50:90] = (30, 30, 220)
    return img, torch.tensor([[10.0, 8, 40, 30], [50.0, 35, 90, 60]])


# ---------------------------------------------------------------- selective search
def test_selective_search_finds_both_rectangles():
    img, objects = two_rectangles()
    boxes = selective_search(img, scale=50, min_size=10)
    best = box_iou(objects, boxes).max(dim=1).values
    assert (best > 0.9).all(), best
    assert boxes.dtype == torch.float32 and boxes.shape[1] == 4
    assert len(torch.unique(boxes, dim=0)) == len(boxes)  # no duplicates


def test_selective_search_accepts_tensor_input():
    img, _ = two_rectangles()
    from_tensor = selective_search(torch.from_numpy(img).permute(2, 0, 1).double() / 255, scale=50, min_size=10)
    torch.testing.assert_close(from_tensor, selective_search(img, scale=50, min_size=10))


def test_hierarchical_grouping_ends_with_one_region():
    img, _ = two_rectangles()
    labels = np.zeros((64, 96), dtype=np.int64)  # four quadrants as the initial regions
    labels[:32, 48:] = 1
    labels[32:, :48] = 2
    labels[32:, 48:] = 3
    boxes, merges = hierarchical_grouping(img, labels)
    assert len(merges) == 3 and len(boxes) == 4 + 3
    assert boxes[-1].tolist() == [0, 0, 96, 64]
    assert boxes[0].tolist() == [0, 0, 48, 32]
    with pytest.raises(ValueError, match="similarities must be"):
        hierarchical_grouping(img, labels, similarities=("shape",))


def test_selective_search_rejects_bad_image():
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        selective_search(np.zeros((4, 4, 5)))


# ---------------------------------------------------------------- R-CNN crops
def test_add_context_arithmetic():
    # R-CNN: a 195 px wide box warped to 227 with 16 px each side must grow by 16 * 195 / 195 = 16 px each side
    out = add_context(torch.tensor([[100.0, 50.0, 295.0, 440.0]]), size=227, context=16)
    torch.testing.assert_close(out, torch.tensor([[84.0, 18.0, 311.0, 472.0]]))
    with pytest.raises(ValueError, match="2 \\* context < size"):
        add_context(torch.tensor([[0.0, 0, 1, 1]]), size=8, context=4)


def test_warp_regions_samples_a_ramp_exactly():
    # pixel (y, x) holds x; warping the whole 16-px-wide image to 8 columns averages two bilinear samples per
    # column at x = 2j + 0.5 +- 0.5 (pixel centres at x + 0.5), so column j holds 2j + 0.5
    W = 16
    image = torch.arange(W, dtype=torch.float32).expand(3, 12, W).clone()
    crops = warp_regions(image, torch.tensor([[0.0, 0.0, W, 12.0]]), size=8, context=0)
    assert crops.shape == (1, 3, 8, 8)
    torch.testing.assert_close(crops[0, 1, 3], torch.arange(8, dtype=torch.float32) * 2 + 0.5)


def test_label_proposals():
    props = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 16], [0, 0, 10, 40], [50, 50, 60, 60]])
    labels, matched = label_proposals(props, torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([3]))
    # IoU 1 -> class 3; 100/160 = 0.625 -> class 3; 100/400 = 0.25 -> background; 0 -> background
    assert labels.tolist() == [3, 3, 0, 0]
    torch.testing.assert_close(matched[0], torch.tensor([0.0, 0, 10, 10]))


def test_rcnn_detect_keeps_best_of_duplicates():
    from cvcourse.models.efficientnet import EfficientNetLite

    backbone = EfficientNetLite(stages=((1, 3, 1, 1, 8),), head_channels=8)
    model = RCNN(num_classes=3, crop_size=16, context=1, backbone=backbone)  # 2 SVMs: no background SVM
    assert model.svm_weight.shape == (8, 2)
    with torch.no_grad():
        model.svm_bias.copy_(torch.tensor([-5.0, 5.0]))  # everything looks like class 2, nothing like class 1
    props = torch.tensor([[2.0, 2, 20, 20], [3, 3, 21, 21], [30, 30, 40, 40]])
    out = model.detect(torch.rand(3, 48, 48), props, score_thresh=0.0, nms_thresh=0.3)
    # equal scores: NMS keeps the first of the overlapping pair, and the separate box; zero deltas keep boxes
    torch.testing.assert_close(out["boxes"], props[[0, 2]])
    assert out["labels"].tolist() == [2, 2]
    with pytest.raises(ValueError, match="context"):
        model.detect(torch.rand(3, 48, 48), props, context=5)


# ---------------------------------------------------------------- small detectors
def one_scene():
    image = torch.full((3, 64, 64), 0.5)
    image[:, 10:30, 12:40] = torch.tensor([1.0, 0.1, 0.1])[:, None, None]
    image[:, 40:58, 40:60] = torch.tensor([0.1, 0.1, 1.0])[:, None, None]
    target = {"boxes": torch.tensor([[12.0, 10, 40, 30], [40.0, 40, 60, 58]]), "labels": torch.tensor([1, 2])}
    return image, target


def test_small_faster_rcnn_overfits_one_image():
    torch.manual_seed(0)
    image, target = one_scene()
    model = SmallFasterRCNN(3, backbone=small_backbone(32, 16), anchor_sizes=(16, 32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for _ in range(40):
        losses = model(image[None], [target])
        assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
        loss = sum(losses.values())
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
    model.eval()
    (dets,) = model([image])
    assert dets["boxes"].shape[1] == 4 and dets["labels"].dtype == torch.int64
    assert (dets["scores"][:-1] >= dets["scores"][1:]).all()


def test_small_detectors_check_their_input():
    image, target = one_scene()
    model = SmallFasterRCNN(3, backbone=small_backbone(16, 8))
    with pytest.raises(ValueError, match="targets"):
        model(image[None])  # training mode without targets
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(image[:1][None], [target])
    with pytest.raises(ValueError, match="one size"):
        model([image, image[:, :32]], [target, target])
    fast = SmallFastRCNN(3, backbone=small_backbone(16, 8))
    with pytest.raises(ValueError, match="proposals per image"):
        fast(image[None], [target])
    losses = fast(image[None], [target], proposals=[target["boxes"] + 2])
    assert set(losses) == {"loss_classifier", "loss_box_reg"}


# ---------------------------------------------------------------- Mask R-CNN parts
def disk(size=64, cx=30.0, cy=26.0, r=10.0):
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).to(torch.uint8)


def test_paste_masks_fills_exactly_the_box_and_halves():
    boxes = torch.tensor([[10.0, 8, 30, 20], [40.0, 40, 56, 60]])
    masks = torch.ones(2, 28, 28)
    masks[1, :, 14:] = 0  # left half only
    out = paste_masks_in_image(masks, boxes, (64, 64))
    assert out.shape == (2, 64, 64)
    box0 = torch.zeros(64, 64)
    box0[8:20, 10:30] = 1
    torch.testing.assert_close(out[0] > 0.5, box0 > 0.5)
    left = torch.zeros(64, 64)
    left[40:60, 40:48] = 1
    torch.testing.assert_close(out[1] > 0.5, left > 0.5)
    assert paste_masks_in_image(torch.zeros(0, 28, 28), torch.zeros(0, 4), (5, 7)).shape == (0, 5, 7)
    with pytest.raises(ValueError, match="one mask per box"):
        paste_masks_in_image(masks, boxes[:1], (64, 64))


def test_project_then_paste_gives_back_the_mask():
    gt = torch.stack([disk(), disk(cx=48, cy=44, r=6)])
    boxes = torch.tensor([[20.0, 16, 40, 36], [42.0, 38, 54, 50]])  # tight boxes of the two disks
    targets = project_masks_on_boxes(gt, boxes, torch.tensor([0, 1]), 28)
    assert targets.shape == (2, 28, 28) and set(targets.unique().tolist()) <= {0.0, 1.0}
    back = paste_masks_in_image(targets, boxes, (64, 64)) > 0.5
    assert (mask_iou(back, gt).diagonal() > 0.9).all()
    # a box twice as wide as the object, to its right: only the left half of the target is the object
    wide = project_masks_on_boxes(gt[:1], torch.tensor([[20.0, 16, 60, 36]]), torch.tensor([0]), 28)[0]
    assert wide[:, 14:].sum() == 0 and wide[:, :14].mean() > 0.6


def test_mask_iou_against_counting_pixels():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 9, 11, generator=g) > 0.5
    b = torch.rand(4, 9, 11, generator=g) > 0.5
    b[0] = False
    a[2] = False
    ref = torch.tensor([[(x & y).sum() / (x | y).sum() if (x | y).any() else 0.0 for y in b] for x in a]).float()
    torch.testing.assert_close(mask_iou(a, b), ref)
    assert mask_iou(a[2:], b[:1]).item() == 0.0  # two empty masks: 0, not NaN
    with pytest.raises(ValueError, match="masks2"):
        mask_iou(a, b[:, :5])


def test_mask_loss_uses_only_the_true_class():
    logits = torch.randn(3, 5, 28, 28, requires_grad=True)
    labels = torch.tensor([1, 4, 2])
    targets = (torch.rand(3, 28, 28) > 0.5).float()
    loss = mask_rcnn_loss(logits, labels, targets)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits[torch.arange(3), labels], targets)
    torch.testing.assert_close(loss, ref)
    loss.backward()
    used = torch.zeros(3, 5, dtype=torch.bool)
    used[torch.arange(3), labels] = True
    assert (logits.grad.abs().sum((2, 3))[~used] == 0).all() and (logits.grad.abs().sum((2, 3))[used] > 0).all()
    assert mask_rcnn_loss(logits[:0], labels[:0], targets[:0]).item() == 0.0
    with pytest.raises(ValueError, match="mask_targets"):
        mask_rcnn_loss(logits, labels, targets[:, :14])


def test_instance_mask_iou_counts_misses_and_wrong_classes():
    gt_masks = torch.stack([disk(), disk(cx=48, cy=44, r=6)])
    target = {"boxes": torch.tensor([[20.0, 16, 40, 36], [42.0, 38, 54, 50]]), "labels": torch.tensor([1, 2]),
              "masks": gt_masks}
    perfect = {"boxes": target["boxes"], "labels": target["labels"], "scores": torch.tensor([0.9, 0.8]),
               "masks": gt_masks[:, None].float()}
    assert instance_mask_iou([perfect], [target]) == pytest.approx(1.0)
    one = {k: v[:1] for k, v in perfect.items()}
    assert instance_mask_iou([one], [target]) == pytest.approx(0.5)  # the missed object counts 0
    wrong = {**perfect, "labels": torch.tensor([2, 1])}
    assert instance_mask_iou([wrong], [target]) == 0.0
    low = {**perfect, "scores": torch.tensor([0.9, 0.1])}
    assert instance_mask_iou([low], [target], score_threshold=0.5) == pytest.approx(0.5)


def test_small_mask_rcnn_learns_the_masks_of_one_image():
    torch.manual_seed(0)
    image, target = one_scene()
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 10:30, 12:40] = 1
    masks[1] = disk(cx=50, cy=49, r=9)
    target = {**target, "masks": masks}
    model = SmallMaskRCNN(3, backbone=small_backbone(32, 16), anchor_sizes=(16, 32), mask_width=16)
    with pytest.raises(ValueError, match="masks"):
        model(image[None], [{k: v for k, v in target.items() if k != "masks"}])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for _ in range(40):
        losses = model(image[None], [target])
        assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}
        first = float(losses["loss_mask"].detach()) if first is None else first
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    assert float(losses["loss_mask"].detach()) < 0.6 * first
    model.eval()
    (dets,) = model([image])
    assert dets["masks"].shape == (len(dets["boxes"]), 1, 64, 64)
    assert 0 <= dets["masks"].min() and dets["masks"].max() <= 1


def test_frozen_detector_keeps_its_weights_and_statistics():
    image, target = one_scene()
    target = {**target, "masks": torch.zeros(2, 64, 64, dtype=torch.uint8)}
    model = SmallMaskRCNN(3, backbone=small_backbone(16, 8), mask_width=8).freeze_detector()
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("mask_head.")}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    assert not model.backbone.training and model.mask_head.training
    sum(model(image[None], [target]).values()).backward()
    opt.step()
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="pooler"):
        MaskHead(16, 3, pooler="max")


# ---------------------------------------------------------------- widgets
def test_intersection_box_and_iou_plot():
    a, b = torch.tensor([0.0, 0, 10, 10]), torch.tensor([5.0, 5, 15, 20])
    torch.testing.assert_close(intersection_box(a, b), torch.tensor([5.0, 5, 10, 10]))
    assert intersection_box(a, torch.tensor([10.0, 0, 20, 10])) is None  # touching edges: no overlap
    ax = plot_iou(a, b)
    assert ax.get_title() == f"IoU = {25 / (100 + 150 - 25):.3f}"
    w = iou_widget()  # a plot_widget: the controls and the drawn figure, rendered once headless
    sliders = [c for c in w.children if hasattr(c, "description") and c.description.startswith("box")]
    # the sliders name the corners by the course's (x1, y1, x2, y2) convention, and their labels are shown whole
    assert [c.description for c in sliders] == [f"box {b}: {k}" for b in "AB" for k in ("x1", "y1", "x2", "y2")]
    assert all(c.style.description_width == "initial" for c in sliders)


def test_nms_keep_thresholds_and_classes():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [20, 20, 30, 30]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.1])
    assert nms_keep(boxes, scores, iou_threshold=0.5).tolist() == [0, 3]
    assert nms_keep(boxes, scores, iou_threshold=0.5, score_threshold=0.2).tolist() == [0]
    # another class is not suppressed
    assert nms_keep(boxes, scores, torch.tensor([1, 1, 2, 1]), iou_threshold=0.5).tolist() == [0, 2, 3]
    # IoU of boxes 0 and 1 is 81/119 = 0.68: a threshold above that keeps both
    assert nms_keep(boxes[:2], scores[:2], iou_threshold=0.7).tolist() == [0, 1]
