"""How good is a detector? Precision–recall, average precision and mAP (lecture 8).

A detection is a true positive when its IoU with a not-yet-matched ground-truth box of the same class is
at least a threshold (0.5 in PASCAL VOC); detections are processed in order of decreasing score, and a
second detection of an already found object is a false positive. Sweeping the score threshold gives a
precision–recall curve; **AP** is the area under its upper envelope (VOC "all points" interpolation:
precision at recall r is the best precision at any recall >= r). **mAP** averages AP over classes;
COCO's mAP@[.5:.95] also averages over IoU thresholds 0.50, 0.55, ..., 0.95.

Letters: D detections, G ground-truth boxes.
Convention: boxes are ``(x1, y1, x2, y2)``; predictions are dicts with ``boxes`` Tensor[D, 4], ``scores``
Tensor[D], ``labels`` Tensor[D]; targets are dicts with ``boxes`` Tensor[G, 4] and ``labels`` Tensor[G].
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from cvcourse._checks import check_boxes, check_shape
from cvcourse.ops import box_iou


def match_detections(pred_boxes: Tensor, pred_scores: Tensor, gt_boxes: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Greedy VOC matching of one image's detections (of one class) to its ground truth.

    Args:
        pred_boxes (Tensor[D, 4]); pred_scores (Tensor[D]); gt_boxes (Tensor[G, 4]).
        iou_threshold (float): minimum IoU for a match.

    Returns:
        Tensor[D] (bool): True where the detection is a true positive (in the input order).
    """
    check_boxes(pred_boxes, "pred_boxes")
    check_boxes(gt_boxes, "gt_boxes")
    check_shape(pred_scores, "pred_scores", (pred_boxes.shape[0],), hint="(one score per box)")
    D = pred_boxes.shape[0]
    is_tp = torch.zeros(D, dtype=torch.bool)
    if D == 0 or gt_boxes.shape[0] == 0:
        return is_tp
    iou = box_iou(pred_boxes.float().cpu(), gt_boxes.float().cpu())  # (D, G)
    taken = torch.zeros(gt_boxes.shape[0], dtype=torch.bool)
    for d in torch.argsort(pred_scores.cpu(), descending=True, stable=True).tolist():
        ious = iou[d].masked_fill(taken, -1.0)
        best, g = ious.max(0)
        if best >= iou_threshold:
            is_tp[d] = True
            taken[g] = True
    return is_tp


def precision_recall(scores: Tensor, is_tp: Tensor, num_gt: int) -> tuple[Tensor, Tensor]:
    """Precision and recall after each detection, taken in order of decreasing score.

    Args:
        scores (Tensor[D]); is_tp (Tensor[D], bool); num_gt (int): ground-truth objects in all.

    Returns:
        (precision Tensor[D], recall Tensor[D]), float64.
    """
    check_shape(is_tp, "is_tp", (scores.shape[0],), hint="(one flag per score)")
    order = torch.argsort(scores.cpu(), descending=True, stable=True)
    tp = is_tp.cpu()[order].double().cumsum(0)
    fp = (~is_tp.cpu()[order]).double().cumsum(0)
    precision = tp / (tp + fp).clamp(min=1)
    recall = tp / num_gt if num_gt > 0 else torch.zeros_like(tp)
    return precision, recall


def average_precision(precision: Tensor, recall: Tensor) -> float:
    """Area under the interpolated precision–recall curve (PASCAL VOC 2010+ "all points").

    Args:
        precision (Tensor[D]), recall (Tensor[D]): as returned by :func:`precision_recall`.

    Returns:
        float in [0, 1].
    """
    mrec = torch.cat([torch.zeros(1), recall.double().cpu(), torch.ones(1)])
    mpre = torch.cat([torch.zeros(1), precision.double().cpu(), torch.zeros(1)])
    mpre = torch.flip(torch.cummax(torch.flip(mpre, [0]), 0).values, [0])  # best precision at recall >= r
    steps = torch.nonzero(mrec[1:] != mrec[:-1]).flatten()
    return float(((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]).sum())


def _class_ids(predictions, targets) -> list[int]:
    labels = [t["labels"].reshape(-1) for t in targets] + [p["labels"].reshape(-1) for p in predictions]
    return sorted({int(v) for lab in labels for v in lab.tolist()})


def mean_average_precision(
    predictions: Sequence[dict[str, Tensor]],
    targets: Sequence[dict[str, Tensor]],
    iou_threshold: float = 0.5,
) -> dict:
    """VOC-style mAP: AP per class at one IoU threshold, averaged over classes that have ground truth.

    Introduced in lecture 8. Gives the same numbers as the PASCAL VOC devkit (all-points interpolation,
    no "difficult" flags); ``torchmetrics``' ``MeanAveragePrecision`` differs (COCO's 101-point rule).

    Args:
        predictions (list of dicts): one per image, ``boxes``/``scores``/``labels``.
        targets (list of dicts): one per image, ``boxes``/``labels``.
        iou_threshold (float): IoU needed for a true positive.

    Returns:
        dict with ``"map"`` (float), ``"ap"`` (dict class -> AP) and ``"pr"`` (dict class ->
        (precision, recall) tensors, for plotting).
    """
    if len(predictions) != len(targets):
        raise ValueError(f"got {len(predictions)} predictions for {len(targets)} targets; need one per image")
    ap, pr = {}, {}
    for c in _class_ids(predictions, targets):
        scores, flags, num_gt = [], [], 0
        for p, t in zip(predictions, targets):
            gt = t["boxes"][t["labels"] == c]
            mine = p["labels"] == c
            num_gt += gt.shape[0]
            scores.append(p["scores"][mine].cpu())
            flags.append(match_detections(p["boxes"][mine], p["scores"][mine], gt, iou_threshold))
        if num_gt == 0:
            continue  # a class with no objects has no AP (VOC skips it)
        precision, recall = precision_recall(torch.cat(scores), torch.cat(flags), num_gt)
        ap[c] = average_precision(precision, recall)
        pr[c] = (precision, recall)
    return {"map": sum(ap.values()) / len(ap) if ap else 0.0, "ap": ap, "pr": pr}


def coco_map(
    predictions: Sequence[dict[str, Tensor]],
    targets: Sequence[dict[str, Tensor]],
    iou_thresholds: Sequence[float] = tuple(0.5 + 0.05 * i for i in range(10)),
) -> float:
    """COCO-style mAP@[.5:.95]: :func:`mean_average_precision` averaged over IoU thresholds 0.50..0.95.

    Deviation from the COCO tool: AP uses VOC all-points interpolation rather than 101 recall points,
    and there are no area ranges or per-image detection caps.
    """
    maps = [mean_average_precision(predictions, targets, t)["map"] for t in iou_thresholds]
    return sum(maps) / len(maps)


def proposal_recall(
    proposals: Sequence[Tensor], gt_boxes: Sequence[Tensor], ks: Sequence[int], iou_threshold: float = 0.5
) -> Tensor:
    """Recall of region proposals: the share of objects covered (IoU >= threshold) by one of the first k proposals.

    Introduced in lecture 8 (selective search) and used in lecture 9 to compare it with the RPN. Proposals
    must be sorted best first (the RPN's by objectness; selective search's in the order it returns them).

    Args:
        proposals (list of Tensor[P_b, 4]): per image, xyxy, best first.
        gt_boxes (list of Tensor[G_b, 4]): per image, the objects.
        ks (sequence of int): numbers of proposals kept.
        iou_threshold (float): IoU at which an object counts as found.

    Returns:
        Tensor[len(ks)] (float32): recall for each k (an image with fewer than k proposals uses all of them).
    """
    if len(proposals) != len(gt_boxes):
        raise ValueError(f"got proposals for {len(proposals)} images and ground truth for {len(gt_boxes)}")
    ks = torch.as_tensor(list(ks), dtype=torch.int64)
    found, total = torch.zeros(len(ks)), 0
    for props, gt in zip(proposals, gt_boxes):
        total += gt.shape[0]
        if gt.shape[0] == 0 or props.shape[0] == 0:
            continue
        iou = box_iou(gt.float().cpu(), props.float().cpu())  # (G, P)
        first_hit = torch.where(iou >= iou_threshold, torch.arange(props.shape[0]), props.shape[0]).min(1).values  # (G,)
        found += (first_hit[None, :] < ks[:, None]).sum(1)  # (len(ks), G) -> (len(ks),)
    return found / max(total, 1)
