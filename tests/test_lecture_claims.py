"""Headline claims of the lectures, one function per claim (``test_lNN_<claim>``).

Each test reruns the lecture's experiment on the settings the notebook uses in fast mode (the settings live in
the library, mostly ``cvcourse.experiments``, so that notebook and test cannot drift apart) and checks the
claim the lecture's prose makes from it. Functions are self-contained: each builds what it needs.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn


# each claim trains what the lecture trains, on the fast-mode settings CI runs (tests/conftest.py)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_mode_one_thread")]


# ------------------------------------------------------------------------------------------------ lecture 1

def test_l01_small_cnn_beats_bag_of_words_on_the_same_split():
    from cvcourse.experiments import bag_of_words_run, shapes_settings, small_cnn_run

    settings = shapes_settings()
    bovw = bag_of_words_run(settings, device="cpu")["accuracy"]
    cnn = small_cnn_run(settings, seed=0, device="cpu")["val_acc"][-1]
    assert bovw > 0.25 + 0.08, f"bag of words {bovw:.3f} should be clearly above chance (0.25)"
    assert cnn > bovw + 0.1, f"small CNN {cnn:.3f} vs bag of words {bovw:.3f}"


# ------------------------------------------------------------------------------------------------ lecture 2

def test_l02_fully_connected_layers_hold_the_weights_convolutions_the_compute():
    from cvcourse.models.classic import alexnet_2012
    from cvcourse.models.cost import count_macs, count_parameters

    net = alexnet_2012()
    conv_w = sum(p.numel() for m in net.features.modules() if isinstance(m, nn.Conv2d) for p in m.parameters())
    total_w = count_parameters(net)
    conv_macs, all_macs = count_macs(net.features, (3, 227, 227)), count_macs(net, (3, 227, 227))
    assert (total_w - conv_w) / total_w > 0.9
    assert (all_macs - conv_macs) / all_macs < 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l02_tanh_reaches_25_percent_error_no_later_than_relu(seed):
    """The lecture's verdict ("here tanh was NOT slower than ReLU", the paper's 6x not reproduced), stated as a
    bound that fails in the paper's direction: with the He-normal set-up tanh needs at most as many rounds as ReLU
    (ratio tanh / ReLU <= 1; the paper's claim is a ratio of about 6). Measured 2026-12-02 (fast mode, one thread,
    seeds 0-4): ReLU 7, 7, 8, 8, 11 rounds, tanh 5, 6, 5, 6, 6, ratios 0.71, 0.86, 0.63, 0.75, 0.55. The notebook runs
    seed 0; seeds 1 and 2 check that the verdict is not one seed's accident."""
    from cvcourse.experiments import relu_tanh_run, relu_tanh_settings, rounds_to

    settings = relu_tanh_settings()
    (_, he, he_lr), (_, paper, paper_lr) = settings.setups
    relu = rounds_to(relu_tanh_run(nn.ReLU, he, he_lr, seed, settings, device="cpu"), settings.threshold)
    tanh = rounds_to(relu_tanh_run(nn.Tanh, he, he_lr, seed, settings, device="cpu"), settings.threshold)
    assert relu is not None and tanh is not None, (relu, tanh)  # both reach 25% error in the notebook's budget
    assert tanh <= relu, f"tanh {tanh} vs ReLU {relu} rounds: ReLU was faster here"
    if seed == 0:  # the 2012 initialisation: ReLU does not even reach 25% error in the notebook's budget
        assert rounds_to(relu_tanh_run(nn.ReLU, paper, paper_lr, seed, settings, device="cpu"),
                         settings.threshold) is None


# ------------------------------------------------------------------------------------------------ lecture 3

@pytest.mark.parametrize("seed", [0, 1])
def test_l03_deeper_plain_net_trains_worse_and_shortcuts_fix_it(seed):
    from cvcourse.experiments import degradation_run, degradation_settings

    s = degradation_settings()
    names = (f"plain-{s.shallow}", f"plain-{s.deep}", f"resnet-{s.deep}")
    hist = degradation_run(seed, s, device="cpu", names=names)
    shallow, deep, res = (float(np.mean(hist[n]["train_loss"])) for n in names)
    assert deep > shallow, f"seed {seed}: plain-{s.deep} {deep:.3f} vs plain-{s.shallow} {shallow:.3f}"
    assert res < deep and res < shallow, f"seed {seed}: resnet-{s.deep} {res:.3f}"


def test_l03_grid_reduction_costs_less_than_conv_then_pool():
    from cvcourse.models.cost import count_macs
    from cvcourse.models.inception import GridReduction

    parallel = count_macs(GridReduction(288), (288, 35, 35))
    conv_then_pool = count_macs(nn.Sequential(nn.Conv2d(288, 768, 3, padding=1), nn.MaxPool2d(3, 2)), (288, 35, 35))
    assert parallel < 0.5 * conv_then_pool


# ------------------------------------------------------------------------------------------------ lecture 4

def test_l04_linear_bottleneck_trains_better_than_relu_at_the_output():
    from cvcourse.experiments import bottleneck_run, bottleneck_settings

    s = bottleneck_settings()
    for seed in s.seeds:
        linear = bottleneck_run(False, seed, s, device="cpu")["train_loss"][-1]
        relu = bottleneck_run(True, seed, s, device="cpu")["train_loss"][-1]
        assert linear < relu, f"seed {seed}: linear {linear:.3f} vs ReLU6 {relu:.3f}"


def test_l04_separable_convolution_saves_close_to_k_squared():
    from cvcourse.models.cost import count_macs

    n, k = 512, 3
    full = count_macs(nn.Conv2d(n, n, k, padding=1, bias=False), (n, 14, 14))
    sep = count_macs(nn.Sequential(nn.Conv2d(n, n, k, padding=1, groups=n, bias=False), nn.Conv2d(n, n, 1, bias=False)),
                     (n, 14, 14))
    assert full / sep == pytest.approx(1 / (1 / n + 1 / k ** 2))


# ------------------------------------------------------------------------------------------------ lecture 5

def test_l05_transformer_stage_needs_fewer_macs_than_layer4():
    from cvcourse.models.cost import count_macs
    from cvcourse.models.resnet import resnet18
    from cvcourse.models.visual_transformer import VTResNet

    vt = VTResNet(resnet18(), num_classes=1000, num_tokens=8, token_channels=1024, num_layers=2).eval()

    def run_vt(f):
        tokens = None
        for layer in vt.vt:
            f, tokens = layer(f, tokens)
        return tokens

    f14 = torch.randn(1, 256, 14, 14)
    assert count_macs(run_vt, f14) < count_macs(resnet18().layer4, f14)


def test_l05_visual_token_heads_learn_the_patch_task_on_frozen_features():
    from cvcourse.experiments import TOKEN_HEADS, patch_feature_maps, token_head_run, token_head_settings

    s = token_head_settings()
    train, val, _ = patch_feature_maps(s, device="cpu")
    chance = 1 / (int(train.tensors[1].max()) + 1)
    acc = {name: token_head_run(name, train, val, s.seeds[0], s, device="cpu")[1]["val_acc"][-1] for name in TOKEN_HEADS}
    assert all(a > 3 * chance for a in acc.values()), acc


# ------------------------------------------------------------------------------------------------ lecture 6

def test_l06_transfer_beats_colour_histograms_on_patches_but_not_pixels_on_digits():
    from cvcourse.experiments import (colour_baseline, digits_transfer, logreg_accuracy, patch_split, pretrained_body,
                                      transfer_settings)
    from cvcourse.transfer import extract_features

    s = transfer_settings()
    body = pretrained_body("cpu")
    train, val = patch_split(s)
    colour = colour_baseline(train, val, s.hist_bins)
    frozen = logreg_accuracy(*extract_features(body, train), *extract_features(body, val))
    assert frozen > colour + 0.05, f"frozen features {frozen:.3f} vs colour histograms {colour:.3f}"
    digits = digits_transfer(s, body)
    assert digits["frozen ImageNet features"] <= digits["raw pixels"], digits


# ------------------------------------------------------------------------- lecture 7: segmentation

L07_SEEDS = (0, 1, 2)


@functools.lru_cache(maxsize=None)
def _l07_scores(seed: int) -> dict[str, dict[str, float]]:
    """Train lecture 7's three models as the notebook does (fast-mode settings) and score them on its validation set."""
    from torch.utils.data import TensorDataset

    from cvcourse import config
    from cvcourse.data import FineShapesSegmentation
    from cvcourse.models.segmentation import lecture7_fit, lecture7_models, lecture7_settings
    from cvcourse.train import BoundaryIoU, MeanIoU, evaluate

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CVCOURSE_FAST", "1")
        s = lecture7_settings()
    train = FineShapesSegmentation(s["train_images"], s["image_size"], seed=s["train_seed"])
    val = FineShapesSegmentation(s["val_images"], s["image_size"], seed=s["val_seed"])
    train, val = TensorDataset(*train.tensors()), TensorDataset(*val.tensors())
    config.seed_everything(seed)
    models = lecture7_models(FineShapesSegmentation.num_classes, s)
    scores = {}
    for name, model in models.items():
        config.seed_everything(seed)
        lecture7_fit(model, train, num_classes=FineShapesSegmentation.num_classes, settings=s, seed=seed, device="cpu",
                     progress=False)
        miou, biou = MeanIoU(FineShapesSegmentation.num_classes), BoundaryIoU(FineShapesSegmentation.num_classes,
                                                                               s["boundary_width"])
        evaluate(model, val, metrics={"miou": miou, "biou": biou}, device="cpu")
        iou = miou.per_class()
        scores[name] = {"miou": miou.compute(), "biou": biou.compute(), "wire_iou": float(iou[2]), "dot_iou": float(iou[3])}
    print(f"l07 seed {seed}:", {n: {k: round(v, 3) for k, v in d.items()} for n, d in scores.items()})  # pytest -s
    return scores


@pytest.mark.parametrize("seed", L07_SEEDS)
def test_l07_skips_win_on_boundary_iou(seed):
    """The U-Net with skips beats the FCN and the U-Net without skips on boundary IoU by a clear margin."""
    s = _l07_scores(seed)
    unet = s["U-Net"]["biou"]
    for other in ("FCN", "U-Net without skips"):
        assert unet >= s[other]["biou"] + 0.1, (seed, s)


@pytest.mark.parametrize("seed", L07_SEEDS)
def test_l07_coarse_models_blur_thin_structures(seed):
    """Without skips (FCN, U-Net without skips) the 2-3 px wires are lost: their IoU stays far below the U-Net's."""
    s = _l07_scores(seed)
    for other in ("FCN", "U-Net without skips"):
        assert s[other]["wire_iou"] <= s["U-Net"]["wire_iou"] - 0.15, (seed, s)


@pytest.mark.parametrize("seed", L07_SEEDS)
def test_l07_unet_finds_the_dots(seed):
    """With skips the U-Net segments the 3-5 px dots (IoU >= 0.3); the coarse models stay far below it."""
    s = _l07_scores(seed)
    assert s["U-Net"]["dot_iou"] >= 0.3, (seed, s)
    for other in ("FCN", "U-Net without skips"):
        assert s[other]["dot_iou"] <= s["U-Net"]["dot_iou"] - 0.15, (seed, s)


@pytest.mark.parametrize("seed", L07_SEEDS)
def test_l07_boundary_iou_is_harsher_than_mean_iou(seed):
    """For the blurring models, boundary IoU is well below mean IoU: the error sits at the edges."""
    s = _l07_scores(seed)
    for other in ("FCN", "U-Net without skips"):
        assert s[other]["biou"] <= s[other]["miou"] - 0.1, (seed, s)


# ---------------------------------------------------------------- lectures 8 and 9: detection
from cvcourse.config import pick
from cvcourse.data import ShapesDetection
from cvcourse.detection import (
    SmallFasterRCNNWeights,
    SmallFastRCNNWeights,
    WithProposals,
    coco_map,
    mean_average_precision,
    predict,
    proposal_recall,
    selective_search,
    small_fast_rcnn,
    small_faster_rcnn,
)
from cvcourse.detection import SmallMaskRCNNWeights, instance_mask_iou, small_mask_rcnn
from cvcourse.ops import box_iou, nms

L09_RECALL = 0.9  # lecture 9's recall target for the proposal comparison
L09_KS = np.arange(1, 101)


@functools.lru_cache(maxsize=None)
def _l09_eval():
    """Lecture 9's checkpoint test set EVAL (same size in fast mode, same seed and data) and its proposals."""
    ds = ShapesDetection(pick(full=300, fast=100), seed=1, **SmallFasterRCNNWeights.SHAPES_V1.meta["dataset_kwargs"])
    return WithProposals(ds, **SmallFastRCNNWeights.SHAPES_V1.meta["recipe"]["proposals"])


def _l09_targets():
    ds = _l09_eval()
    return [ds[i][1] for i in range(len(ds))]


@functools.lru_cache(maxsize=None)
def _l09_preds(name: str):
    if name == "faster":
        return predict(small_faster_rcnn(weights=SmallFasterRCNNWeights.SHAPES_V1), _l09_eval().dataset)
    if name.startswith("mask_"):
        weights = {"mask_align": SmallMaskRCNNWeights.SHAPES_V1, "mask_pool": SmallMaskRCNNWeights.SHAPES_POOL_V1}[name]
        return predict(small_mask_rcnn(weights=weights), _l09_eval().dataset)
    weights = {"fast_pool": SmallFastRCNNWeights.SHAPES_V1, "fast_align": SmallFastRCNNWeights.SHAPES_ALIGN_V1}[name]
    return predict(small_fast_rcnn(weights=weights), _l09_eval())


def _l09_k_for(curve):
    hit = np.nonzero(curve.numpy() >= L09_RECALL)[0]
    return int(L09_KS[hit[0]]) if len(hit) else None


def test_l09_faster_rcnn_checkpoint_reaches_map50_0_7_on_held_out_images():
    targets = _l09_targets()
    preds = _l09_preds("faster")
    assert mean_average_precision(preds, targets)["map"] >= 0.7
    assert coco_map(preds, targets) >= 0.4


def test_l09_faster_rcnn_beats_fast_rcnn_on_the_same_images():
    targets = _l09_targets()
    faster = mean_average_precision(_l09_preds("faster"), targets)["map"]
    fast = mean_average_precision(_l09_preds("fast_pool"), targets)["map"]
    assert faster > fast + 0.1, (faster, fast)


def test_l09_rpn_reaches_recall_with_fewer_proposals_than_selective_search():
    ds = _l09_eval()
    model = small_faster_rcnn(weights=SmallFasterRCNNWeights.SHAPES_V1)
    with torch.no_grad():
        rpn = [model.rpn(model.backbone(ds[i][0][None]), ds[i][0].shape[-2:])[0][0] for i in range(len(ds))]
    gts = [t["boxes"] for t in _l09_targets()]
    k_rpn = _l09_k_for(proposal_recall(rpn, gts, L09_KS, 0.5))
    k_ss = _l09_k_for(proposal_recall(ds.proposals, gts, L09_KS, 0.5))
    assert k_rpn is not None, "the RPN never reaches the recall target"
    assert k_ss is None or k_rpn < k_ss, (k_rpn, k_ss)


def test_l09_roi_align_beats_roi_pool_at_iou_0_75():
    targets = _l09_targets()
    align = mean_average_precision(_l09_preds("fast_align"), targets, 0.75)["map"]
    pool = mean_average_precision(_l09_preds("fast_pool"), targets, 0.75)["map"]
    assert align > pool, (align, pool)


L09_MIN_MASK_IOU = 0.6  # lecture 9: the shipped Mask R-CNN covers the held-out objects with mask IoU >= 0.6 (the bar)


def test_l09_mask_rcnn_checkpoint_reaches_mask_iou_0_6():
    # about 6 CPU-s (100 images through the small Mask R-CNN)
    assert instance_mask_iou(_l09_preds("mask_align"), _l09_targets()) >= L09_MIN_MASK_IOU


def test_l09_roi_align_beats_roi_pool_on_mask_iou():
    # about 12 CPU-s (both mask checkpoints on lecture 9's 100 held-out images)
    targets = _l09_targets()
    align = instance_mask_iou(_l09_preds("mask_align"), targets)
    pool = instance_mask_iou(_l09_preds("mask_pool"), targets)
    assert align > pool, (align, pool)


def test_l08_library_nms_and_box_iou_equal_the_lecture_loops():
    # lecture 8's plain-Python IoU and greedy NMS loop, against the library, on random boxes
    def iou_pair(a, b):
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
        return ix * iy / union if union > 0 else 0.0

    def nms_lecture(boxes, scores, lam):
        order, keep = scores.argsort(descending=True).tolist(), []
        while order:
            i = order.pop(0)
            keep.append(i)
            order = [j for j in order if iou_pair(boxes[i].tolist(), boxes[j].tolist()) <= lam]
        return torch.tensor(keep, dtype=torch.int64)

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(30, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(30, 2, generator=g) * 30], 1)
    scores = torch.rand(30, generator=g)
    naive = torch.tensor([[iou_pair(a.tolist(), b.tolist()) for b in boxes] for a in boxes])
    torch.testing.assert_close(naive, box_iou(boxes, boxes), atol=1e-6, rtol=0)
    for lam in (0.3, 0.5, 0.7):
        assert torch.equal(nms_lecture(boxes, scores, lam), nms(boxes, scores, lam))


def test_l08_selective_search_covers_the_shapes():
    # lecture 8's setting: test images of seed 1, scale 100 and min_size 20; recall at IoU 0.5 with all proposals
    ds = ShapesDetection(pick(full=200, fast=24), image_size=64, seed=1, background="plain")  # same data in both modes
    props = [selective_search(ds[i][0], scale=100, min_size=20) for i in range(len(ds))]
    recall = proposal_recall(props, [ds[i][1]["boxes"] for i in range(len(ds))], [100], 0.5)
    assert recall[0] >= 0.9, recall


def test_l08_frozen_feature_localiser_finds_the_class_and_the_box():
    # lecture 8's localiser on its settings (held-out seed 1); about 15 CPU-s with one thread
    from cvcourse.config import seed_everything
    from cvcourse.detection.localiser import (Localiser, class_accuracy, feature_dataset, localisation_loss,
                                              localiser_settings, mean_box_iou, single_object_data)
    from cvcourse.train import fit

    s = localiser_settings()
    seed_everything(0)
    loc = Localiser(4, s.image_size)
    train = feature_dataset(loc, *single_object_data(s.n_train, 0, s))
    test = feature_dataset(loc, *single_object_data(s.n_test, 1, s))
    h = fit(loc.head, train, test, epochs=s.epochs, lr=s.lr, loss_fn=localisation_loss,
            metrics={"acc": class_accuracy, "iou": mean_box_iou}, batch_size=s.batch_size, device="cpu", progress=False)
    assert h["val_acc"][-1] >= 0.8, h["val_acc"]
    assert h["val_iou"][-1] >= 0.6, h["val_iou"]


@functools.lru_cache(maxsize=1)
def _l08_rcnn():
    """Lecture 8's R-CNN trained on the notebook's fast settings (48 train / 24 held-out images, seeds 0 / 1),
    with its held-out images and their proposals; about 25 CPU-s, shared by the two R-CNN claims."""
    from cvcourse.detection.rcnn import RCNN, regression_targets, svm_targets

    train, test = (ShapesDetection(n, image_size=64, seed=s, background="plain") for n, s in ((48, 0), (24, 1)))
    rcnn = RCNN(num_classes=5, crop_size=64, context=4)
    feats, svm_y, reg_labels, reg_deltas = [], [], [], []
    for i in range(len(train)):
        image, target = train[i]
        regions = torch.cat([target["boxes"], selective_search(image, scale=100, min_size=20)])
        feats.append(rcnn.region_features(image, regions))
        svm_y.append(svm_targets(regions, target["boxes"], target["labels"], 4))
        lab, d = regression_targets(regions, target["boxes"], target["labels"], min_iou=0.6)
        reg_labels.append(lab); reg_deltas.append(d)
    rcnn.fit_svms(torch.cat(feats), torch.cat(svm_y), steps=150, mining_rounds=2)
    rcnn.fit_box_regressors(torch.cat(feats), torch.cat(reg_labels), torch.cat(reg_deltas), ridge=100.0)
    props = [selective_search(test[i][0], scale=100, min_size=20) for i in range(len(test))]
    return rcnn, test, props


def test_l08_rcnn_svms_without_background_svm_detect_held_out_shapes():
    rcnn, test, props = _l08_rcnn()
    assert rcnn.svm_weight.shape[1] == 4  # one SVM per object class, none for the background
    preds = [rcnn.detect(test[i][0], props[i]) for i in range(len(test))]
    result = mean_average_precision(preds, [test[i][1] for i in range(len(test))], iou_threshold=0.5)
    assert result["map"] >= 0.7, result["ap"]


def test_l08_rcnn_box_regressors_pay_at_iou_0_75():
    """The class-specific box regressors (step 4) raise mAP@0.75 clearly; at IoU 0.5 they may change little."""
    rcnn, test, props = _l08_rcnn()
    targets = [test[i][1] for i in range(len(test))]
    with_reg = [rcnn.detect(test[i][0], props[i]) for i in range(len(test))]
    W, b = rcnn.box_weight.clone(), rcnn.box_bias.clone()
    try:
        rcnn.box_weight.zero_(); rcnn.box_bias.zero_()  # zero deltas: every box stays its proposal
        without = [rcnn.detect(test[i][0], props[i]) for i in range(len(test))]
    finally:
        rcnn.box_weight.copy_(W); rcnn.box_bias.copy_(b)
    gain = (mean_average_precision(with_reg, targets, iou_threshold=0.75)["map"]
            - mean_average_precision(without, targets, iou_threshold=0.75)["map"])
    print(f"l08 regressor gain at IoU 0.75: {gain:+.3f}")  # pytest -s
    assert gain >= 0.08, gain
