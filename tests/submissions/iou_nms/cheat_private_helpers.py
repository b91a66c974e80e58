# Cheat: the private helpers of cvcourse.ops submodules (not in cvcourse.ops.__all__), and an exec'd copy
# of torchvision's own box_area source.

# -- base: correct_vectorised --

# -- cell: box_area --
import inspect

import torchvision.ops.boxes as _tvb

_ns = {"torch": torch, "Tensor": torch.Tensor, "_upcast": lambda t: t, "_log_api_usage_once": lambda f: None}
exec(inspect.getsource(_tvb.box_area), _ns)
box_area = _ns["box_area"]

# -- cell: box_iou --
from cvcourse.ops.boxes import _inter_union


def box_iou(boxes1, boxes2):
    inter, union = _inter_union(boxes1.double(), boxes2.double())
    return torch.where(union > 0, inter / union.clamp(min=1e-300), torch.zeros_like(inter)).float()

# -- cell: nms --
import importlib

_cn = importlib.import_module("cvcourse.ops.nms")  # (cvcourse.ops.nms is also the name of the function)


def nms(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True)
    b = boxes.double()[order]
    return order[_cn._nms_sorted(b, _cn._threshold(float(iou_threshold), b.dtype))]
