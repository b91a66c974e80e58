# Bug: batched_nms ignores the classes.

# -- base: correct_vectorised --

# -- cell: batched_nms --
def batched_nms(boxes, scores, idxs, iou_threshold):
    return nms(boxes, scores, iou_threshold)
