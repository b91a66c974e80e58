# Hang: nms loops forever on an empty input (test_nms_edges); all else is right.

# -- base: correct_vectorised --

# -- cell: nms --
def nms(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True)
    iou = box_iou(boxes, boxes)
    alive = torch.ones(len(boxes), dtype=torch.bool)
    keep, i = [], 0
    while i < len(order) or not keep:  # bug: never ends when there is no box
        if i < len(order):
            j = int(order[i])
            if alive[j]:
                keep.append(j)
                alive &= iou[j] <= iou_threshold
            i += 1
    return torch.tensor(keep, dtype=torch.int64)

# -- cell: batched_nms --
def batched_nms(boxes, scores, idxs, iou_threshold):
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.int64)
    keep = []
    for c in idxs.unique().tolist():
        members = (idxs == c).nonzero().flatten()
        keep.append(members[nms(boxes[members], scores[members], iou_threshold)])
    if not keep:
        return torch.zeros(0, dtype=torch.int64)
    keep = torch.cat(keep)
    return keep[scores[keep].argsort(descending=True)]
