# Bug: the lecture's literal double loop: a suppressed box still suppresses others.

# -- base: correct_vectorised --

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
