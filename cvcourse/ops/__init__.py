"""cvcourse.ops: the tensor operations behind detection and segmentation, in pure PyTorch.

Same names, arguments and semantics as ``torchvision.ops`` / ``torch.nn.functional``:

- ``boxes``     box_area, box_convert, box_iou, generalized_box_iou           (lecture 8),
                clip_boxes_to_image, remove_small_boxes                        (lecture 9)
- ``nms``       nms, nms_naive, batched_nms                                      (lecture 8)
- ``upsample``  nearest_unpool2d, max_unpool2d, conv_transpose2d               (lecture 7)
- ``roi``       roi_pool, roi_align                                            (lecture 9)
"""

from cvcourse.ops.boxes import box_area, box_convert, box_iou, clip_boxes_to_image, generalized_box_iou, remove_small_boxes
from cvcourse.ops.nms import batched_nms, nms, nms_naive
from cvcourse.ops.roi import roi_align, roi_pool
from cvcourse.ops.upsample import conv_transpose2d, max_unpool2d, nearest_unpool2d

__all__ = ["box_area", "box_convert", "box_iou", "generalized_box_iou", "clip_boxes_to_image", "remove_small_boxes", "nms", "nms_naive", "batched_nms",
           "nearest_unpool2d", "max_unpool2d", "conv_transpose2d", "roi_pool", "roi_align"]
