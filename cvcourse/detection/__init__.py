"""Object detection, lectures 8–9: from R-CNN to Faster R-CNN, built from small readable parts.

- :mod:`~cvcourse.detection.box_coder`        box deltas: encode/decode, the R-CNN parametrisation
- :mod:`~cvcourse.detection.selective_search` region proposals by hierarchical grouping (R-CNN)
- :mod:`~cvcourse.detection.localiser`        one object: class + box heads on a frozen CNN
- :mod:`~cvcourse.detection.rcnn`             R-CNN: warped crops, frozen CNN, per-class SVMs and box regressors
- :mod:`~cvcourse.detection.metrics`          precision–recall, AP, mAP (VOC) and mAP@[.5:.95]
- :mod:`~cvcourse.detection.anchors`          anchor boxes (Faster R-CNN)
- :mod:`~cvcourse.detection.rpn`              Region Proposal Network: head, matching, loss, proposals
- :mod:`~cvcourse.detection.roi_heads`        Fast R-CNN head: RoI pool/align, multi-task loss, post-processing
- :mod:`~cvcourse.detection.faster_rcnn`      small Fast / Faster R-CNN, training and prediction helpers
- :mod:`~cvcourse.detection.mask_rcnn`        small Mask R-CNN: mask head, mask targets and loss, pasting, mask IoU
- :mod:`~cvcourse.detection.pretrained`       shipped checkpoints of those models (torchvision weights API)
- :mod:`~cvcourse.detection.plots`            class legends for detection figures
"""

from cvcourse.detection.anchors import AnchorGenerator
from cvcourse.detection.box_coder import BoxCoder, decode_boxes, encode_boxes
from cvcourse.detection.faster_rcnn import (
    SmallFasterRCNN,
    SmallFastRCNN,
    WithProposals,
    predict,
    small_backbone,
    train_detector,
)
from cvcourse.detection.mask_rcnn import (
    MaskHead,
    SmallMaskRCNN,
    instance_mask_iou,
    mask_iou,
    mask_rcnn_loss,
    paste_masks_in_image,
    project_masks_on_boxes,
)
from cvcourse.detection.metrics import (
    average_precision,
    coco_map,
    match_detections,
    mean_average_precision,
    precision_recall,
    proposal_recall,
)
from cvcourse.detection.plots import add_class_legend
from cvcourse.detection.localiser import Localiser, class_accuracy, localisation_loss, mean_box_iou
from cvcourse.detection.pretrained import (
    SmallFasterRCNNWeights,
    SmallFastRCNNWeights,
    SmallMaskRCNNWeights,
    small_fast_rcnn,
    small_faster_rcnn,
    small_mask_rcnn,
)
from cvcourse.detection.rcnn import (RCNN, add_context, fit_box_regressors, hinge_loss, label_proposals, regression_targets,
                                     svm_targets, train_linear_svms, warp_regions)
from cvcourse.detection.roi_heads import (
    FastRCNNHead,
    RoIHeads,
    fast_rcnn_loss,
    postprocess_detections,
    select_training_samples,
)
from cvcourse.detection.rpn import RegionProposalNetwork, RPNHead, filter_proposals, match_boxes, rpn_loss, sample_balanced
from cvcourse.detection.selective_search import hierarchical_grouping, selective_search

__all__ = [
    "AnchorGenerator", "BoxCoder", "decode_boxes", "encode_boxes",
    "SmallFasterRCNN", "SmallFastRCNN", "predict", "small_backbone", "train_detector", "WithProposals",
    "SmallFasterRCNNWeights", "SmallFastRCNNWeights", "small_faster_rcnn", "small_fast_rcnn",
    "MaskHead", "SmallMaskRCNN", "instance_mask_iou", "mask_iou", "mask_rcnn_loss", "paste_masks_in_image",
    "project_masks_on_boxes", "SmallMaskRCNNWeights", "small_mask_rcnn",
    "average_precision", "coco_map", "match_detections", "mean_average_precision", "precision_recall", "proposal_recall",
    "add_class_legend", "RCNN", "add_context", "label_proposals", "warp_regions", "svm_targets", "hinge_loss",
    "train_linear_svms", "regression_targets", "fit_box_regressors",
    "Localiser", "localisation_loss", "class_accuracy", "mean_box_iou",
    "FastRCNNHead", "RoIHeads", "fast_rcnn_loss", "postprocess_detections", "select_training_samples",
    "RegionProposalNetwork", "RPNHead", "filter_proposals", "match_boxes", "rpn_loss", "sample_balanced",
    "hierarchical_grouping", "selective_search",
]
