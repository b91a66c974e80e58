# Cheat: library functions held where the old alias walk did not look: a list, a dict, a
# functools.partial, an attribute of an object of the student's own class.

# -- base: correct_vectorised --

# -- cell: box_area --
import functools

import cvcourse.ops
import torchvision

_TOOLS = [cvcourse.ops.box_area]


def box_area(boxes):
    return _TOOLS[0](boxes)

# -- cell: box_iou --
_BY_NAME = {"iou": torchvision.ops.box_iou}


def box_iou(boxes1, boxes2):
    return _BY_NAME["iou"](boxes1.float(), boxes2.float())

# -- cell: nms --
_fast_nms = functools.partial(cvcourse.ops.nms)


def nms(boxes, scores, iou_threshold):
    return _fast_nms(boxes.float(), scores, float(iou_threshold))

# -- cell: batched_nms --
class _Toolbox:
    def __init__(self):
        self.run = cvcourse.ops.batched_nms


_toolbox = _Toolbox()


def batched_nms(boxes, scores, idxs, iou_threshold):
    return _toolbox.run(boxes.float(), scores, idxs, float(iou_threshold))
