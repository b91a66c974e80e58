# Correct: checks every argument against the rules the assignment states (as cvcourse.ops does) and raises
# ValueError/TypeError on bad input. Every hidden input keeps those rules, so it gets full marks.

# -- base: correct_loops --

# -- insert-after: box_area --
def _check_boxes(boxes, name="boxes"):
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must be a Tensor[N, 4], got {getattr(boxes, 'shape', type(boxes))}")
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{name} must hold real numbers, got {boxes.dtype}")
    if boxes.is_floating_point() and not bool(torch.isfinite(boxes).all()):
        raise ValueError(f"{name} has NaN or infinite coordinates")
    if bool(((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any()):
        raise ValueError(f"{name} has a box with x2 < x1 or y2 < y1")


def _check_scores(boxes, scores, iou_threshold):
    _check_boxes(boxes)
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (len(boxes),) or not scores.is_floating_point():
        raise ValueError(f"scores must be a float Tensor[{len(boxes)}], got {getattr(scores, 'shape', scores)}")
    if len(set(scores.tolist())) != len(scores):
        raise ValueError("the scores must be distinct")
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) or not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be a number in [0, 1], got {iou_threshold!r}")


_unchecked_area, _unchecked_iou = box_area, box_iou


def box_area(boxes):
    _check_boxes(boxes)
    return _unchecked_area(boxes)


def box_iou(boxes1, boxes2):
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    return _unchecked_iou(boxes1, boxes2)

# -- cell: nms --
def nms(boxes, scores, iou_threshold):
    _check_scores(boxes, scores, iou_threshold)
    b = boxes.tolist()
    order = sorted(range(len(b)), key=lambda i: -float(scores[i]))
    keep = []
    for i in order:
        if all(_pair_iou(b[i], b[k]) <= iou_threshold for k in keep):
            keep.append(i)
    return torch.tensor(keep, dtype=torch.long)

# -- cell: batched_nms --
def batched_nms(boxes, scores, idxs, iou_threshold):
    _check_scores(boxes, scores, iou_threshold)
    if not isinstance(idxs, torch.Tensor) or idxs.dtype != torch.int64 or tuple(idxs.shape) != (len(boxes),):
        raise ValueError(f"idxs must be an int64 Tensor[{len(boxes)}], got {getattr(idxs, 'dtype', idxs)}")
    kept = []
    for c in sorted(set(idxs.tolist())):
        members = [i for i, k in enumerate(idxs.tolist()) if k == c]
        sub_keep = nms(boxes[members], scores[members], iou_threshold).tolist()
        kept += [members[j] for j in sub_keep]
    kept.sort(key=lambda i: -float(scores[i]))
    return torch.tensor(kept, dtype=torch.int64)
