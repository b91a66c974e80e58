"""R-CNN, small: proposals -> warped crops with context -> CNN -> classifier + box regressor (lecture 8).

The 2013 pipeline: (1) selective search gives ~2000 region proposals per image; (2) each proposal is
enlarged so that, after warping, ``p = 16`` pixels of context surround the original box, and warped to a
fixed square (227 x 227 for AlexNet); (3) a CNN turns each crop into a feature vector; (4) a linear
classifier per class scores it (SVMs in the paper, a softmax here — which is what Fast R-CNN switched to);
(5) a linear regressor refines the box; (6) per-class NMS removes near-duplicates.

The CNN runs once per *proposal*: that is why R-CNN took about 47 s per image on a GPU of its day.

Letters: N regions, S warped size, K classes including background.
Convention: images are ``(3, H, W)`` float in [0, 1]; boxes ``(x1, y1, x2, y2)`` in pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse._checks import check_boxes, check_shape
from cvcourse.detection.box_coder import BoxCoder
from cvcourse.ops import batched_nms, box_iou, clip_boxes_to_image, roi_align
from cvcourse.detection.rpn import BACKGROUND, BACKGROUND_LABEL, IGNORE_LABEL, match_boxes


def add_context(boxes: Tensor, size: int, context: int) -> Tensor:
    """Enlarge boxes so that, once warped to ``size x size``, ``context`` pixels surround the original box.

    A box of width ``w`` warped to ``size`` pixels with ``context`` on both sides occupies
    ``size - 2 * context`` pixels, so it must grow by ``context * w / (size - 2 * context)`` on each side
    (R-CNN: ``size = 227``, ``context = 16``).

    Args:
        boxes (Tensor[N, 4]); size (int): S; context (int): pixels of context in the warped crop.

    Returns:
        Tensor[N, 4]: the enlarged boxes (may extend beyond the image).
    """
    check_boxes(boxes)
    if not 0 <= 2 * context < size:
        raise ValueError(f"context ({context}) must be >= 0 and leave room for the box: 2 * context < size ({size})")
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    px = context * w / (size - 2 * context)
    py = context * h / (size - 2 * context)
    return boxes + torch.stack([-px, -py, px, py], dim=1)


def warp_regions(image: Tensor, boxes: Tensor, size: int = 227, context: int = 16) -> Tensor:
    """Cut each box (plus context) out of an image and warp it, ignoring aspect ratio, to ``size x size``.

    Bilinear sampling via ``roi_align(..., aligned=True)``; outside the image the crop is zero (R-CNN pads
    with the mean colour; on zero-centred inputs that is the same).

    Args:
        image (Tensor[3, H, W]); boxes (Tensor[N, 4]); size (int): S; context (int): pixels of context.

    Returns:
        Tensor[N, 3, S, S].
    """
    check_shape(image, "image", (None, None, None), hint="(C, H, W)")
    boxes = add_context(boxes.to(image), size, context)
    # sampling_ratio=2: 2 x 2 bilinear samples averaged per output pixel (light anti-aliasing)
    return roi_align(image[None], [boxes], (size, size), 1.0, sampling_ratio=2, aligned=True)


def label_proposals(
    proposals: Tensor, gt_boxes: Tensor, gt_labels: Tensor, fg_iou: float = 0.5, bg_iou: float = 0.3
) -> tuple[Tensor, Tensor]:
    """Training labels for proposals: the class of the matched object (IoU >= ``fg_iou``), 0 for
    background (IoU < ``bg_iou``, label :data:`~cvcourse.detection.rpn.BACKGROUND_LABEL` = 0),
    :data:`~cvcourse.detection.rpn.IGNORE_LABEL` (-1) in between (left out).

    Returns:
        (labels Tensor[N] int64, matched ground-truth boxes Tensor[N, 4]; meaningful where label > 0).
    """
    if gt_boxes.numel() == 0:
        return torch.zeros(proposals.shape[0], dtype=torch.int64), proposals.clone()
    m = match_boxes(box_iou(gt_boxes.to(proposals), proposals), fg_iou, bg_iou)
    labels = torch.where(m >= 0, gt_labels[m.clamp(min=0)], torch.where(m == BACKGROUND, BACKGROUND_LABEL, IGNORE_LABEL))
    return labels, gt_boxes.to(proposals)[m.clamp(min=0)]


class RCNN(nn.Module):
    """A small CNN on warped crops with two heads: class logits (K) and class-agnostic box deltas (4).

    Introduced in lecture 8. The paper used AlexNet features (4096-d), SVMs and per-class linear box
    regressors; here one network does all three, trained jointly.

    Args:
        num_classes (int): K including background.
        crop_size (int): S of the warped crops.
        width (int): channels of the first convolution.
    """

    def __init__(self, num_classes: int, crop_size: int = 32, width: int = 32):
        super().__init__()
        self.crop_size = crop_size
        self.box_coder = BoxCoder((10.0, 10.0, 5.0, 5.0))

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, width), block(width, 2 * width), block(2 * width, 2 * width),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(2 * width, num_classes)
        self.box_regressor = nn.Linear(2 * width, 4)

    def forward(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """Args: crops (Tensor[N, 3, S, S]). Returns: logits (Tensor[N, K]), deltas (Tensor[N, 4])."""
        f = self.features(crops)
        return self.classifier(f), self.box_regressor(f)

    def loss(self, crops: Tensor, labels: Tensor, proposals: Tensor, gt_boxes: Tensor) -> dict[str, Tensor]:
        """Cross-entropy on all crops + smooth L1 box loss on foreground crops.

        Args:
            crops (Tensor[N, 3, S, S]); labels (Tensor[N], 0 = background); proposals and gt_boxes
            (Tensor[N, 4]): the proposal each crop came from and its matched object.
        """
        logits, deltas = self(crops)
        pos = labels > 0
        loss_box = deltas.sum() * 0
        if pos.any():
            target = self.box_coder.encode(gt_boxes[pos], proposals[pos])
            loss_box = F.smooth_l1_loss(deltas[pos], target, beta=1 / 9)
        return {"loss_classifier": F.cross_entropy(logits, labels), "loss_box_reg": loss_box}

    @torch.no_grad()
    def detect(
        self, image: Tensor, proposals: Tensor, context: int = 2, score_thresh: float = 0.3, nms_thresh: float = 0.3,
        batch_size: int = 512,
    ) -> dict[str, Tensor]:
        """The full R-CNN test-time pipeline for one image.

        Args:
            image (Tensor[3, H, W]); proposals (Tensor[N, 4]); context (int): as at training time;
            score_thresh (float): minimum class probability; nms_thresh (float): per-class NMS IoU.

        Returns:
            dict with ``boxes`` (Tensor[D, 4]), ``scores`` (Tensor[D]), ``labels`` (Tensor[D]).
        """
        self.eval()
        proposals = proposals.to(image)
        crops = warp_regions(image, proposals, self.crop_size, context)
        logits, deltas = zip(*(self(c) for c in crops.split(batch_size))) if len(proposals) else ((), ())
        K = self.classifier.out_features
        logits = torch.cat(logits) if logits else image.new_zeros((0, K))
        deltas = torch.cat(deltas) if deltas else image.new_zeros((0, 4))
        probs = logits.softmax(-1)
        scores, labels = probs[:, 1:].max(-1)
        labels = labels + 1
        boxes = clip_boxes_to_image(self.box_coder.decode(deltas, proposals), tuple(image.shape[-2:]))
        keep = scores > score_thresh
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = batched_nms(boxes, scores, labels, nms_thresh)
        return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}
