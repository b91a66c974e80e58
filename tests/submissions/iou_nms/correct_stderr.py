# Correct, but chatty on stderr: a tqdm progress bar in nms, a warning and a plain stderr line in
# box_area. Only an error may cost points, so this gets full marks.

# -- cell: box_area --
import sys, warnings

from tqdm import tqdm


def box_area(boxes):
    print("box_area: computing", len(boxes), "areas", file=sys.stderr)
    warnings.warn("box_area is called on the slow path", RuntimeWarning)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


# -- cell: box_iou --
def box_iou(boxes1, boxes2):
    b1, b2 = boxes1.float(), boxes2.float()
    x1 = torch.maximum(b1[:, None, 0], b2[None, :, 0])
    y1 = torch.maximum(b1[:, None, 1], b2[None, :, 1])
    x2 = torch.minimum(b1[:, None, 2], b2[None, :, 2])
    y2 = torch.minimum(b1[:, None, 3], b2[None, :, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))

# -- cell: nms --
def nms(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True)
    iou = box_iou(boxes, boxes)
    alive = torch.ones(len(boxes), dtype=torch.bool)
    keep = []
    for i in tqdm(order.tolist(), desc="nms", file=sys.stderr, mininterval=0):
        if alive[i]:
            keep.append(i)
            alive &= iou[i] <= iou_threshold
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
