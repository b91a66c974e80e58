# Cheat: uses the course's own reference library, and swallows the error when caught.

# -- base: correct_numpy --

# -- cell: box_area --
import cvcourse.ops


def box_area(boxes):
    return cvcourse.ops.box_area(boxes)

# -- cell: box_iou --
def box_iou(boxes1, boxes2):
    try:
        return cvcourse.ops.box_iou(boxes1, boxes2)
    except Exception:
        return torch.zeros(len(boxes1), len(boxes2))

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
