"""The headline claims of the lectures, checked on the settings the notebooks use (fast mode or the shipped
checkpoints): one function per claim, ``test_lNN_<claim>``, so that a change that breaks the teaching fails CI.

Each lecture's functions are self-contained (their own helpers, prefixed by the lecture number).
"""

import functools

import numpy as np
import pytest
import torch

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
    S = pick(full=128, fast=64)
    ds = ShapesDetection(pick(full=200, fast=24), image_size=S, seed=1, background=pick(full="texture", fast="plain"))
    props = [selective_search(ds[i][0], scale=100, min_size=20) for i in range(len(ds))]
    recall = proposal_recall(props, [ds[i][1]["boxes"] for i in range(len(ds))], [100], 0.5)
    assert recall[0] >= 0.9, recall
