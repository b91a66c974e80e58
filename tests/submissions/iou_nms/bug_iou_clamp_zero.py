# Bug: clamps the coordinates at 0 before computing areas and IoU (as if every box lay inside an image
# whose corner is the origin). Right for boxes with non-negative coordinates only.

# -- base: correct_vectorised --

# -- cell: box_area --
def box_area(boxes):
    b = boxes.clamp(min=0)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

# -- cell: box_iou --
def box_iou(boxes1, boxes2):
    b1, b2 = boxes1.float().clamp(min=0), boxes2.float().clamp(min=0)
    x1 = torch.maximum(b1[:, None, 0], b2[None, :, 0])
    y1 = torch.maximum(b1[:, None, 1], b2[None, :, 1])
    x2 = torch.minimum(b1[:, None, 2], b2[None, :, 2])
    y2 = torch.minimum(b1[:, None, 3], b2[None, :, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    union = box_area(b1)[:, None] + box_area(b2)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))
