# Bug: sorts the caller's boxes and scores in place.

# -- base: correct_vectorised --

# -- cell: nms --
def nms(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True)
    boxes[:] = boxes[order]
    scores[:] = scores[order]
    iou = box_iou(boxes, boxes)
    alive = torch.ones(len(boxes), dtype=torch.bool)
    keep = []
    for i in range(len(boxes)):
        if alive[i]:
            keep.append(int(order[i]))
            alive &= iou[i] <= iou_threshold
    return torch.tensor(keep, dtype=torch.int64)
