"""The Fast R-CNN head: RoI pooling on a shared feature map, then classification and box regression
(lecture 9).

R-CNN ran the CNN once per region; Fast R-CNN runs it once per *image* and cuts each region out of the
feature map with RoI pooling (or, in Mask R-CNN, RoI Align), which turns a region of any size into a
fixed ``S x S`` grid. Two fully connected layers follow, then two siblings: a softmax over ``K`` classes
(background is class 0) and ``4K`` class-specific box deltas. The multi-task loss is cross-entropy plus a
smooth L1 term on the deltas of the true class, for foreground regions only.

Letters: B images, C channels, S RoI output size, R regions of the batch, K classes including background,
G ground-truth boxes of one image, D detections.
Convention: boxes are ``(x1, y1, x2, y2)`` in image pixels; labels are 1..K-1, 0 is background.

Mirrors ``torchvision.models.detection.roi_heads`` (``fastrcnn_loss``, ``RoIHeads``) and
``faster_rcnn.TwoMLPHead`` / ``FastRCNNPredictor``, for one feature map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse.detection.box_coder import BoxCoder
from cvcourse.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes, roi_align, roi_pool
from cvcourse.detection.rpn import BACKGROUND, BACKGROUND_LABEL, IGNORE, IGNORE_LABEL, match_boxes, sample_balanced


POOLERS = ("align", "pool")


def check_pooler(pooler: str) -> str:
    """Validate a RoI head's ``pooler`` argument (``"align"`` or ``"pool"``) and return it."""
    if pooler not in POOLERS:
        raise ValueError(f"pooler must be 'align' or 'pool', got {pooler!r}")
    return pooler


def pool_regions(features: Tensor, boxes: list[Tensor], roi_size: int, spatial_scale: float, pooler: str) -> Tensor:
    """Cut every box out of the feature map as a ``roi_size x roi_size`` grid, the one RoI cut of the R-CNN heads.

    ``pooler="pool"`` is Fast R-CNN's RoI max pooling (quantised); ``"align"`` is Mask R-CNN's RoI Align
    (bilinear sampling, ``sampling_ratio=2``, ``aligned=True``).

    Args:
        features (Tensor[B, C, h, w]); boxes (list of B Tensor[P_b, 4] in image pixels);
        spatial_scale (float): feature-map size / image size (1 / stride).

    Returns:
        Tensor[R, C, S, S] with ``R = sum(P_b)``.
    """
    size = (roi_size, roi_size)
    if pooler == "pool":
        return roi_pool(features, boxes, size, spatial_scale)
    return roi_align(features, boxes, size, spatial_scale, sampling_ratio=2, aligned=True)


class FastRCNNHead(nn.Module):
    """RoI pool/align -> flatten -> FC -> FC -> (class logits, per-class box deltas).

    Introduced in lecture 9. ``pooler="pool"`` is Fast R-CNN's RoI max pooling (quantised);
    ``pooler="align"`` is Mask R-CNN's RoI Align (bilinear sampling, ``aligned=True``).

    Args:
        in_channels (int): C of the feature map.
        num_classes (int): K, including the background class 0.
        roi_size (int): S, the side of the pooled grid.
        hidden (int): width of the two fully connected layers.
        pooler (str): ``"align"`` or ``"pool"``.
    """

    def __init__(self, in_channels: int, num_classes: int, roi_size: int = 7, hidden: int = 256, pooler: str = "align"):
        super().__init__()
        check_pooler(pooler)
        if num_classes < 2:
            raise ValueError(f"num_classes counts the background too, so it must be at least 2, got {num_classes}")
        self.roi_size, self.pooler, self.num_classes = roi_size, pooler, num_classes
        self.fc6 = nn.Linear(in_channels * roi_size * roi_size, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.cls_score = nn.Linear(hidden, num_classes)
        self.bbox_pred = nn.Linear(hidden, 4 * num_classes)

    def pool(self, features: Tensor, proposals: list[Tensor], spatial_scale: float) -> Tensor:
        """Cut every proposal out of the feature map as an ``S x S`` grid.

        Args:
            features (Tensor[B, C, h, w]); proposals (list of B Tensor[P_b, 4] in image pixels);
            spatial_scale (float): feature-map size / image size (1 / stride).

        Returns:
            Tensor[R, C, S, S] with ``R = sum(P_b)``.
        """
        return pool_regions(features, proposals, self.roi_size, spatial_scale, self.pooler)

    def forward(self, features: Tensor, proposals: list[Tensor], spatial_scale: float) -> tuple[Tensor, Tensor]:
        """Returns: class_logits (Tensor[R, K]) and box_deltas (Tensor[R, 4K])."""
        x = self.pool(features, proposals, spatial_scale).flatten(1)  # (R, C, S, S) -> (R, C*S*S)
        x = F.relu(self.fc7(F.relu(self.fc6(x))))
        return self.cls_score(x), self.bbox_pred(x)


def fast_rcnn_loss(
    class_logits: Tensor, box_deltas: Tensor, labels: Tensor, regression_targets: Tensor
) -> dict[str, Tensor]:
    """Multi-task loss: cross-entropy over classes + smooth L1 on the true class' deltas (foreground only).

    The box term is divided by the number of regions R (not of foreground regions), as in torchvision's
    ``fastrcnn_loss``.

    Args:
        class_logits (Tensor[R, K]); box_deltas (Tensor[R, 4K]); labels (Tensor[R], int64, 0 = background);
        regression_targets (Tensor[R, 4]): encoded ground-truth boxes for each region.

    Returns:
        dict with ``"loss_classifier"`` and ``"loss_box_reg"``.
    """
    R = class_logits.shape[0]
    if labels.shape != (R,) or regression_targets.shape != (R, 4) or box_deltas.shape[0] != R:
        raise ValueError(
            f"expected labels (R,), regression_targets (R, 4) and box_deltas (R, 4K) with R = {R}, got "
            f"{tuple(labels.shape)}, {tuple(regression_targets.shape)}, {tuple(box_deltas.shape)}"
        )
    loss_cls = F.cross_entropy(class_logits, labels)
    pos = torch.nonzero(labels > 0).flatten()
    deltas = box_deltas.reshape(R, -1, 4)[pos, labels[pos]]  # (R, 4K) -> (R, K, 4) -> (p, 4)
    loss_box = F.smooth_l1_loss(deltas, regression_targets[pos], beta=1 / 9, reduction="sum") / max(R, 1)
    return {"loss_classifier": loss_cls, "loss_box_reg": loss_box}


def select_training_samples(
    proposals: list[Tensor],
    targets: list[dict[str, Tensor]],
    box_coder: BoxCoder,
    fg_iou_thresh: float = 0.5,
    bg_iou_thresh: float = 0.5,
    batch_size_per_image: int = 128,
    positive_fraction: float = 0.25,
    return_matches: bool = False,
) -> tuple[list[Tensor], Tensor, Tensor] | tuple[list[Tensor], Tensor, Tensor, list[Tensor]]:
    """Label proposals by IoU with the ground truth and draw a balanced sample for the loss.

    The ground-truth boxes themselves are added to the proposals (so early in training, when the RPN
    proposes nothing useful, the head still sees positives).

    Args:
        proposals (list of Tensor[P_b, 4]); targets (list of dict with ``"boxes"`` Tensor[G, 4] and
        ``"labels"`` Tensor[G] int64 in 1..K-1).
        return_matches (bool): also return, per image, the index of each sampled region's matched
            ground-truth box (what Mask R-CNN needs to find the region's true mask).

    Returns:
        (sampled proposals per image, labels Tensor[R], regression_targets Tensor[R, 4]) and, with
        ``return_matches``, a list of Tensor[R_b] int64 (ground-truth index; :data:`BACKGROUND` for background).
    """
    out_props, out_labels, out_targets, out_matches = [], [], [], []
    for props, t in zip(proposals, targets):
        gt, gt_labels = t["boxes"].to(props), t["labels"].to(props.device)
        props = torch.cat([props, gt])
        matches = match_boxes(box_iou(gt, props), fg_iou_thresh, bg_iou_thresh)
        labels = gt_labels[matches.clamp(min=0)] if gt.numel() else torch.zeros_like(matches)
        labels = torch.where(matches == BACKGROUND, torch.full_like(labels, BACKGROUND_LABEL), labels)
        labels = torch.where(matches == IGNORE, torch.full_like(labels, IGNORE_LABEL), labels)
        pos, neg = sample_balanced(labels, batch_size_per_image, positive_fraction)
        idx = torch.cat([pos, neg])
        props, labels = props[idx], labels[idx]
        matched_gt = gt[matches[idx].clamp(min=0)] if gt.numel() else props
        out_props.append(props)
        out_labels.append(labels)
        out_targets.append(box_coder.encode(matched_gt, props))
        out_matches.append(matches[idx])
    if return_matches:
        return out_props, torch.cat(out_labels), torch.cat(out_targets), out_matches
    return out_props, torch.cat(out_labels), torch.cat(out_targets)


def postprocess_detections(
    class_logits: Tensor,
    box_deltas: Tensor,
    proposals: list[Tensor],
    image_size: tuple[int, int],
    box_coder: BoxCoder,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    min_size: float = 1e-2,
) -> list[dict[str, Tensor]]:
    """Softmax scores, class-specific boxes, per-class NMS: the final detections of each image.

    Args:
        class_logits (Tensor[R, K]); box_deltas (Tensor[R, 4K]); proposals (list of Tensor[P_b, 4]);
        image_size (tuple[int, int]): ``(H, W)`` to clip to.

    Returns:
        list of dicts (one per image) with ``"boxes"`` Tensor[D, 4], ``"scores"`` Tensor[D] and
        ``"labels"`` Tensor[D] (int64, 1..K-1) sorted by decreasing score.
    """
    K = class_logits.shape[1]
    counts = [p.shape[0] for p in proposals]
    all_props = torch.cat(proposals) if proposals else class_logits.new_zeros((0, 4))
    boxes = box_coder.decode(box_deltas, all_props).reshape(-1, K, 4)  # (R, 4K) -> (R, K, 4)
    scores = F.softmax(class_logits, dim=-1)
    results = []
    for b, s in zip(boxes.split(counts), scores.split(counts)):
        b = clip_boxes_to_image(b, image_size)[:, 1:].reshape(-1, 4)  # drop background: (P, K-1, 4) -> (P*(K-1), 4)
        lab = torch.arange(1, K, device=s.device).repeat(s.shape[0])  # (P*(K-1),)
        s = s[:, 1:].reshape(-1)
        keep = remove_small_boxes(b, min_size)
        keep = keep[s[keep] > score_thresh]
        b, s, lab = b[keep], s[keep], lab[keep]
        keep = batched_nms(b, s, lab, nms_thresh)[:detections_per_img]
        results.append({"boxes": b[keep], "scores": s[keep], "labels": lab[keep]})
    return results


class RoIHeads(nn.Module):
    """:class:`FastRCNNHead` with its training-time sampling, loss and inference-time post-processing.

    Introduced in lecture 9. Mirrors ``torchvision.models.detection.roi_heads.RoIHeads`` (boxes only) with
    torchvision's defaults (box coder weights ``(10, 10, 5, 5)``, 512 -> here 128 regions per image).

    Args:
        head (FastRCNNHead): the network part.
        fg_iou_thresh, bg_iou_thresh, batch_size_per_image, positive_fraction: see
            :func:`select_training_samples`.
        score_thresh, nms_thresh, detections_per_img: see :func:`postprocess_detections`.
    """

    def __init__(
        self,
        head: FastRCNNHead,
        fg_iou_thresh: float = 0.5,
        bg_iou_thresh: float = 0.5,
        batch_size_per_image: int = 128,
        positive_fraction: float = 0.25,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
    ):
        super().__init__()
        self.head = head
        self.box_coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
        self.fg_iou_thresh, self.bg_iou_thresh = fg_iou_thresh, bg_iou_thresh
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img

    def sample(self, proposals: list[Tensor], targets: list[dict[str, Tensor]] | None):
        """:func:`select_training_samples` with this head's settings, matches included:
        ``(proposals per image, labels Tensor[R], regression_targets Tensor[R, 4], matched indices per image)``."""
        if targets is None:
            raise ValueError("targets (dicts with 'boxes' and 'labels') are required in training mode")
        return select_training_samples(
            proposals, targets, self.box_coder, self.fg_iou_thresh, self.bg_iou_thresh,
            self.batch_size_per_image, self.positive_fraction, return_matches=True,
        )

    def forward(
        self,
        features: Tensor,
        proposals: list[Tensor],
        image_size: tuple[int, int],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Args:
            features (Tensor[B, C, h, w]); proposals (list of B Tensor[P_b, 4]); image_size ``(H, W)``;
            targets (list of dicts with ``"boxes"`` and ``"labels"``; required in training mode).

        Returns:
            (detections, losses): detections per image in eval mode (empty list in training mode) and a
            loss dict in training mode (empty in eval mode).
        """
        spatial_scale = features.shape[-1] / image_size[1]
        if self.training:
            proposals, labels, reg_targets, _ = self.sample(proposals, targets)
            logits, deltas = self.head(features, proposals, spatial_scale)
            return [], fast_rcnn_loss(logits, deltas, labels, reg_targets)
        logits, deltas = self.head(features, proposals, spatial_scale)
        return postprocess_detections(
            logits, deltas, proposals, image_size, self.box_coder,
            self.score_thresh, self.nms_thresh, self.detections_per_img,
        ), {}
