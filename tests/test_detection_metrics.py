"""Precision–recall, AP and mAP of cvcourse.detection.metrics, against hand-computed examples."""

import pytest
import torch

from cvcourse.detection import average_precision, coco_map, match_detections, mean_average_precision, precision_recall
from cvcourse.ops import box_iou


def det(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels, dtype=torch.int64)}


def gt(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64)}


# Two images, one class (label 1), three objects: g1, g2 in image A, g3 in image B.
G1, G2, G3 = [0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 70, 70]
TARGETS = [gt([G1, G2], [1, 1]), gt([G3], [1])]
# Detections by decreasing score:
#   0.9 on g1 -> TP;  0.8 on g1 again -> FP (duplicate);  0.7 on g3 -> TP;  0.6 on nothing -> FP;  0.5 on g2 -> TP
PREDS = [
    det([G1, [1, 1, 11, 11], [80, 80, 90, 90], G2], [0.9, 0.8, 0.6, 0.5], [1, 1, 1, 1]),
    det([[50, 50, 70, 69]], [0.7], [1]),
]
# cumulative TP: 1 1 2 2 3, FP: 0 1 1 2 2 -> precision 1, 1/2, 2/3, 1/2, 3/5; recall 1/3, 1/3, 2/3, 2/3, 1
# interpolated precision (best precision at recall >= r): r=1/3 -> 1, r=2/3 -> 2/3, r=1 -> 3/5
# AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5 = 15/45 + 10/45 + 9/45 = 34/45
AP_HAND = 34 / 45


def test_precision_recall_by_hand():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    is_tp = torch.tensor([True, False, True, False, True])
    precision, recall = precision_recall(scores, is_tp, num_gt=3)
    torch.testing.assert_close(precision, torch.tensor([1, 1 / 2, 2 / 3, 1 / 2, 3 / 5], dtype=torch.float64))
    torch.testing.assert_close(recall, torch.tensor([1 / 3, 1 / 3, 2 / 3, 2 / 3, 1], dtype=torch.float64))
    assert average_precision(precision, recall) == pytest.approx(AP_HAND)


def test_map_by_hand():
    result = mean_average_precision(PREDS, TARGETS)
    assert result["ap"][1] == pytest.approx(AP_HAND)
    assert result["map"] == pytest.approx(AP_HAND)


def test_map_averages_over_classes_with_ground_truth():
    targets = [gt([G1, G2, [40, 0, 60, 20]], [1, 1, 2]), gt([G3], [1])]
    preds = [
        det([G1, [1, 1, 11, 11], [80, 80, 90, 90], G2, [40, 0, 60, 20], [0, 40, 10, 50]],
            [0.9, 0.8, 0.6, 0.5, 0.95, 0.9], [1, 1, 1, 1, 2, 3]),  # class 3 has no objects: skipped
        PREDS[1],
    ]
    result = mean_average_precision(preds, targets)
    assert set(result["ap"]) == {1, 2}
    assert result["ap"][2] == pytest.approx(1.0)
    assert result["map"] == pytest.approx((AP_HAND + 1.0) / 2)


def test_iou_exactly_at_threshold_is_a_match():
    # IoU of [0, 0, 10, 10] and [0, 0, 10, 20] is 100 / 200 = 0.5
    assert match_detections(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([1.0]), torch.tensor([[0.0, 0, 10, 20]]), 0.5).tolist() == [True]
    assert match_detections(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([1.0]), torch.tensor([[0.0, 0, 10, 20]]), 0.51).tolist() == [False]


def test_higher_score_claims_the_object_first():
    # the input order is not the score order: the 0.9 box (IoU 0.81) must win over the 0.3 exact box
    flags = match_detections(torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 9, 9]]), torch.tensor([0.3, 0.9]),
                             torch.tensor([[0.0, 0, 10, 10]]))
    assert flags.tolist() == [False, True]


def test_edge_cases():
    empty = det([], [], [])
    assert mean_average_precision([empty], [gt([G1], [1])])["map"] == 0.0  # missed everything
    assert mean_average_precision([det([G1], [0.5], [1])], [gt([], [])])["map"] == 0.0  # nothing to find
    perfect = mean_average_precision([det([G1, G2], [0.9, 0.8], [1, 2])], [gt([G1, G2], [1, 2])])
    assert perfect["map"] == 1.0
    with pytest.raises(ValueError, match="one per image"):
        mean_average_precision(PREDS, TARGETS[:1])


def test_coco_map_is_stricter():
    # the image-B detection has IoU 380/400 = 0.95 with g3: matched at every threshold up to 0.95
    # the exact boxes match at all ten thresholds; so COCO mAP equals the VOC one here ...
    assert coco_map(PREDS, TARGETS) == pytest.approx(AP_HAND)
    # ... but a loose box (IoU 0.64) only counts for thresholds 0.50..0.60: 3 of 10
    loose = [det([[0, 0, 8, 8]], [0.9], [1])]
    assert coco_map(loose, [gt([G1], [1])]) == pytest.approx(0.3)


def test_proposal_recall_counts_first_k_proposals():
    from cvcourse.detection import proposal_recall

    objects = [torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), torch.tensor([[5.0, 5, 15, 15]]), torch.zeros(0, 4)]
    props = [torch.tensor([[50.0, 50, 60, 60], [0, 0, 10, 11], [21, 21, 30, 30]]), torch.zeros(0, 4),
             torch.tensor([[0.0, 0, 5, 5]])]
    # image 0: object 0 found by proposal 1, object 1 by proposal 2; image 1 has no proposals
    assert proposal_recall(props, objects, [1, 2, 3, 50]).tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3])
    # a stricter IoU: [21, 21, 30, 30] has IoU 0.81 with [20, 20, 30, 30], [0, 0, 10, 11] has 0.91
    assert proposal_recall(props, objects, [3], iou_threshold=0.85).tolist() == pytest.approx([1 / 3])
    # brute force on random boxes
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(2, 40, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(2, 40, 2, generator=g) * 20], -1)
    gts, ps = [boxes[0, :6], boxes[1, :4]], [boxes[0, 6:], boxes[1, 4:]]
    for k in (1, 5, 20):
        hits = sum(int((box_iou(t, p[:k]) >= 0.5).any(1).sum()) for t, p in zip(gts, ps))
        assert proposal_recall(ps, gts, [k])[0].item() == pytest.approx(hits / 10)
    with pytest.raises(ValueError, match="proposals for 1 images"):
        proposal_recall(props[:1], objects, [1])
