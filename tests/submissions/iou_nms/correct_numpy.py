# Correct: computes in NumPy and converts back; NMS shrinks an index array (the classic loop).

# -- cell: box_area --
import numpy as np


def box_area(boxes):
    b = boxes.numpy()
    return torch.from_numpy((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))

# -- cell: box_iou --
def box_iou(boxes1, boxes2):
    a, b = boxes1.numpy().astype(np.float64), boxes2.numpy().astype(np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None] + ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return torch.from_numpy(out)

# -- cell: nms --
def nms(boxes, scores, iou_threshold):
    iou = box_iou(boxes, boxes).numpy()
    order = np.argsort(-scores.numpy(), kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        order = order[1:][iou[i, order[1:]] <= iou_threshold]
    return torch.as_tensor(keep, dtype=torch.int64)

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
