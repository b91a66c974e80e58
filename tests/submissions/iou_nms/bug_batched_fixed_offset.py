# Bug: batched_nms shifts each class by a fixed 10000 pixels and calls nms once. Right while every
# coordinate stays below the offset; boxes of different classes that sit one offset apart merge.

# -- base: correct_vectorised --

# -- cell: batched_nms --
def batched_nms(boxes, scores, idxs, iou_threshold):
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64)
    return nms(boxes.double() + 10000.0 * idxs.double()[:, None], scores, iou_threshold)
