# Bug: torchvision's offset trick, each class shifted by (largest coordinate + 1). With only negative
# coordinates that offset is negative and small, and shifted classes land on each other.

# -- base: correct_vectorised --

# -- cell: batched_nms --
def batched_nms(boxes, scores, idxs, iou_threshold):
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64)
    b = boxes.double()
    return nms(b + (idxs.double() * (b.max() + 1))[:, None], scores, iou_threshold)
