# Correct: NMS pops from a score-sorted Python list; IoU via a loop over rows.

# -- cell: box_area --
def box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])

# -- cell: box_iou --
def box_iou(boxes1, boxes2):
    rows = []
    for a in boxes1.double():
        lt = torch.max(a[:2], boxes2[:, :2].double())
        rb = torch.min(a[2:], boxes2[:, 2:].double())
        wh = (rb - lt).clamp(min=0)
        inter = wh[:, 0] * wh[:, 1]
        union = (a[2] - a[0]) * (a[3] - a[1]) + box_area(boxes2.double()) - inter
        rows.append(torch.nan_to_num(inter / union, nan=0.0))
    return torch.stack(rows) if rows else torch.zeros(0, len(boxes2))

# -- cell: nms --
def nms(boxes, scores, iou_threshold):
    remaining = sorted(range(len(boxes)), key=lambda i: scores[i].item(), reverse=True)
    keep = []
    while remaining:
        best = remaining.pop(0)
        keep.append(best)
        if remaining:
            ious = box_iou(boxes[best][None], boxes[remaining])[0]
            remaining = [r for r, v in zip(remaining, ious.tolist()) if v <= iou_threshold]
    return torch.tensor(keep, dtype=torch.int64)

# -- cell: batched_nms --
def batched_nms(boxes, scores, idxs, iou_threshold):
    keep = []
    for c in idxs.unique().tolist():
        members = (idxs == c).nonzero().flatten()
        keep.append(members[nms(boxes[members], scores[members], iou_threshold)])
    if not keep:
        return torch.zeros(0, dtype=torch.int64)
    keep = torch.cat(keep)
    return keep[scores[keep].argsort(descending=True)]
