"""R-CNN's per-class linear SVMs and box regressors, and lecture 8's localiser (cvcourse.detection)."""

import pytest
import torch

from cvcourse.detection import BoxCoder
from cvcourse.detection.localiser import Localiser, class_accuracy, localisation_loss, mean_box_iou
from cvcourse.detection.rcnn import (SVM_IGNORE, SVM_NEGATIVE, SVM_POSITIVE, fit_box_regressors, hinge_loss,
                                     regression_targets, svm_targets, train_linear_svms)
from cvcourse.models.efficientnet import EfficientNetLite


def test_hinge_loss_is_zero_beyond_the_margin_and_ignores_zeros():
    targets = torch.tensor([[SVM_POSITIVE], [SVM_NEGATIVE], [SVM_IGNORE]])
    assert hinge_loss(torch.tensor([[1.5], [-1.0], [50.0]]), targets).item() == 0.0
    # positive at score 0 costs 1 (weighted 1/2); negative at +1 costs 2 (weighted 1/2)
    torch.testing.assert_close(hinge_loss(torch.tensor([[0.0], [1.0], [0.0]]), targets), torch.tensor(1.5))


def test_svms_without_background_separate_a_toy_problem():
    # three blobs: class 1, class 2 and "background" (negative for both SVMs, no SVM of its own)
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[4.0, 0.0], [0.0, 4.0], [-3.0, -3.0]])
    cls = torch.arange(3).repeat_interleave(40)
    x = centres[cls] + 0.5 * torch.randn(120, 2, generator=g)
    targets = torch.full((120, 2), SVM_NEGATIVE)
    targets[cls == 0, 0] = SVM_POSITIVE
    targets[cls == 1, 1] = SVM_POSITIVE
    w, b, used = train_linear_svms(x, targets, first_negatives=10, mining_rounds=2)
    scores = x @ w + b
    assert w.shape == (2, 2) and b.shape == (2,)
    pred = torch.where(scores.max(1).values > 0, scores.argmax(1), 2)  # background = no class above 0
    assert torch.equal(pred, cls)
    assert used[0] == 20 and used[-1] > used[0]  # mining added the negatives inside the margin


def test_svm_targets_one_vs_rest():
    gt = torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]])
    labels = torch.tensor([1, 2])
    regions = torch.cat([gt, torch.tensor([[1.0, 1, 10, 10], [40.0, 40, 50, 50], [0.0, 0, 10, 20]])])
    y = svm_targets(regions, gt, labels, num_classes=3)
    assert y.tolist() == [
        [SVM_POSITIVE, SVM_NEGATIVE, SVM_NEGATIVE],  # gt of class 1
        [SVM_NEGATIVE, SVM_POSITIVE, SVM_NEGATIVE],  # gt of class 2: a negative for class 1
        [SVM_IGNORE, SVM_NEGATIVE, SVM_NEGATIVE],  # IoU 0.81 with class 1: neither (only ground truth is positive)
        [SVM_NEGATIVE, SVM_NEGATIVE, SVM_NEGATIVE],  # nothing there
        [SVM_IGNORE, SVM_NEGATIVE, SVM_NEGATIVE],  # IoU 0.5
    ]
    with pytest.raises(ValueError, match="1..3"):
        svm_targets(regions, gt, torch.tensor([0, 2]), num_classes=3)


def test_box_regressor_targets_round_trip_and_are_learnt():
    g = torch.Generator().manual_seed(0)
    gt = torch.tensor([[10.0, 10, 30, 40], [50.0, 5, 60, 25]])
    labels = torch.tensor([1, 2])
    jitter = torch.randn(200, 4, generator=g)
    regions = gt[torch.arange(200) % 2] + jitter
    lab, deltas = regression_targets(regions, gt, labels, min_iou=0.6)
    assert set(lab.tolist()) <= {1, 2, -1} and (lab > 0).sum() > 150
    coder = BoxCoder()
    torch.testing.assert_close(coder.decode(deltas, regions), gt[torch.arange(200) % 2], atol=1e-4, rtol=0)
    # features that determine the deltas linearly: the class-specific ridge regressor recovers them
    feats = torch.cat([deltas, torch.randn(200, 3, generator=g)], 1)
    W, bias = fit_box_regressors(feats, lab, deltas, num_classes=3, ridge=1e-6)
    m = lab == 1
    torch.testing.assert_close(feats[m] @ W[0] + bias[0], deltas[m], atol=1e-4, rtol=0)
    assert W[2].abs().sum() == 0  # class 3 had no samples: zero deltas


def test_localiser_shapes_loss_and_metrics():
    backbone = EfficientNetLite()  # Lite0's layout, random weights (the test needs no ImageNet)
    model = Localiser(num_classes=4, image_size=32, backbone=backbone).eval()
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 8)
    boxes = out[:, 4:]
    assert (boxes[:, 2:] >= boxes[:, :2]).all()  # a valid box whatever the weights
    assert not any(p.requires_grad for p in model.backbone.parameters())
    targets = torch.tensor([[2.0, 0.1, 0.1, 0.5, 0.5], [0.0, 0.2, 0.3, 0.9, 0.8]])
    perfect = torch.cat([torch.nn.functional.one_hot(targets[:, 0].long(), 4) * 20.0, targets[:, 1:]], 1)
    assert class_accuracy(perfect, targets) == 1.0 and mean_box_iou(perfect, targets) == pytest.approx(1.0)
    assert localisation_loss(perfect, targets).item() < 1e-6
    with pytest.raises(ValueError, match="targets"):
        localisation_loss(perfect, targets[:, :4])
    with pytest.raises(ValueError, match="images"):
        model(torch.rand(2, 3, 48, 48))
