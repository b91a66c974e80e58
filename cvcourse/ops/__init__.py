"""cvcourse.ops: the tensor operations behind detection and segmentation, in pure PyTorch.

Same names, arguments and semantics as ``torchvision.ops`` / ``torch.nn.functional``:

- ``boxes``     box_area, box_convert, box_iou, generalized_box_iou           (lecture 8)
- ``nms``       nms, nms_naive, batched_nms                                      (lecture 8)
"""

from cvcourse.ops.boxes import box_area, box_convert, box_iou, generalized_box_iou
from cvcourse.ops.nms import batched_nms, nms, nms_naive

__all__ = ["box_area", "box_convert", "box_iou", "generalized_box_iou", "nms", "nms_naive", "batched_nms"]
