# Cheat: imports the library functions under other names, and calls the C++ op directly.

# -- base: correct_vectorised --

# -- cell: box_iou --
from torchvision.ops import box_iou as _fast_iou


def box_iou(boxes1, boxes2):
    return _fast_iou(boxes1, boxes2)

# -- cell: nms --
def nms(boxes, scores, iou_threshold):
    return torch.ops.torchvision.nms(boxes.float(), scores, iou_threshold)

# -- cell: batched_nms --
def batched_nms(boxes, scores, idxs, iou_threshold, _impl=__import__("torchvision").ops.batched_nms):
    return _impl(boxes, scores, idxs, iou_threshold)
