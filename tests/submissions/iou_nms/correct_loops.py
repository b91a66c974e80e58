# Correct: plain Python loops over lists of floats, a helper of the student's own.

# -- cell: box_area --
def box_area(boxes):
    areas = []
    for x1, y1, x2, y2 in boxes.tolist():
        areas.append((x2 - x1) * (y2 - y1))
    return torch.tensor(areas, dtype=boxes.dtype)

# -- cell: box_iou --
def _pair_iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_iou(boxes1, boxes2):
    rows = [[_pair_iou(a, b) for b in boxes2.tolist()] for a in boxes1.tolist()]
    return torch.tensor(rows, dtype=torch.float64).reshape(len(boxes1), len(boxes2))

# -- cell: nms --
def nms(boxes, scores, iou_threshold):
    b = boxes.tolist()
    order = sorted(range(len(b)), key=lambda i: -float(scores[i]))
    keep = []
    for i in order:
        if all(_pair_iou(b[i], b[k]) <= iou_threshold for k in keep):
            keep.append(i)
    return torch.tensor(keep, dtype=torch.long)

# -- cell: batched_nms --
def batched_nms(boxes, scores, idxs, iou_threshold):
    kept = []
    for c in sorted(set(idxs.tolist())):
        members = [i for i, k in enumerate(idxs.tolist()) if k == c]
        sub_keep = nms(boxes[members], scores[members], iou_threshold).tolist()
        kept += [members[j] for j in sub_keep]
    kept.sort(key=lambda i: -float(scores[i]))
    return torch.tensor(kept, dtype=torch.int64)
