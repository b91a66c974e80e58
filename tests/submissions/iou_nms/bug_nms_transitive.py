# Bug: the lecture's literal double loop: a suppressed box still suppresses others.

# -- cell: box_area --
def box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])

# -- cell: box_iou --
def box_iou(boxes1, boxes2):
    b1, b2 = boxes1.float(), boxes2.float()
    x1 = torch.maximum(b1[:, None, 0], b2[None, :, 0])
    y1 = torch.maximum(b1[:, None, 1], b2[None, :, 1])
    x2 = torch.minimum(b1[:, None, 2], b2[None, :, 2])
    y2 = torch.minimum(b1[:, None, 3], b2[None, :, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    union = box_area(b1)[:, None] + box_area(b2)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))

# -- cell: nms --
def nms(boxes, scores, iou_threshold):
    iou = box_iou(boxes, boxes)
    keep = []
    for i in range(len(boxes)):
        discard = False
        for j in range(len(boxes)):
            if i != j and iou[i, j] > iou_threshold and scores[j] > scores[i]:
                discard = True
        if not discard:
            keep.append(i)
    keep.sort(key=lambda i: -scores[i].item())
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
