"""A small Mask R-CNN: the course's Faster R-CNN plus a mask head (lecture 9).

For every positive region, the mask head RoI-aligns a ``14 x 14`` patch of the shared feature map, runs a
few 3x3 convolutions, doubles the resolution with a 2x2 transposed convolution and predicts one
``28 x 28`` mask *per class* with a sigmoid. Only the mask of the region's true class enters the loss
(binary cross-entropy per pixel), so classes do not compete for pixels: classifying is the box head's job.
The training target is the ground-truth instance mask cut out under the region's box and resampled to
``28 x 28``. At test time the mask of the predicted class is pasted into its detected box at image
resolution (torchvision returns these probabilities; threshold them at 0.5 for a binary mask).

Letters: B images, C channels, H, W image size, G ground-truth objects of one image, P positive regions,
K classes including the background, M mask side (28), D detections.
Convention: boxes are ``(x1, y1, x2, y2)`` in image pixels, continuous coordinates (pixel ``(i, j)`` covers
``[j, j+1) x [i, i+1)``); masks are ``(N, H, W)``, 1 inside the object.

Mirrors ``torchvision.models.detection.MaskRCNN`` (``MaskRCNNHeads``, ``MaskRCNNPredictor``,
``maskrcnn_loss``, ``paste_masks_in_image``) for one feature map, without its transform.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse._checks import check_boxes, check_shape
from cvcourse.detection.faster_rcnn import SmallFasterRCNN, _as_batch
from cvcourse.detection.roi_heads import check_pooler, fast_rcnn_loss, pool_regions
from cvcourse.ops import box_iou, roi_align

MASK_THRESHOLD = 0.5  #: probability above which a pasted mask pixel belongs to the object


class MaskHead(nn.Module):
    """RoI pool/align ``R x R`` -> ``n`` x (3x3 conv, ReLU) -> 2x2 transposed conv -> 1x1 conv to K masks.

    Introduced in lecture 9 (the figure of Mask R-CNN's head, with fewer and narrower convolutions).

    Args:
        in_channels (int): C of the feature map.
        num_classes (int): K, including the background (whose mask is never used).
        roi_size (int): R, side of the pooled patch (14 in Mask R-CNN); the masks are ``2R x 2R``.
        convs (int): number of 3x3 convolutions (4 in Mask R-CNN).
        width (int): their channels (256 in Mask R-CNN).
        pooler (str): ``"align"`` (Mask R-CNN) or ``"pool"`` (Fast R-CNN's quantised RoI pooling).
    """

    def __init__(self, in_channels: int, num_classes: int, roi_size: int = 14, convs: int = 3, width: int = 64,
                 pooler: str = "align"):
        super().__init__()
        check_pooler(pooler)
        if num_classes < 2:
            raise ValueError(f"num_classes counts the background too, so it must be at least 2, got {num_classes}")
        self.roi_size, self.pooler, self.num_classes = roi_size, pooler, num_classes
        layers: list[nn.Module] = []
        for i in range(convs):
            layers += [nn.Conv2d(in_channels if i == 0 else width, width, 3, padding=1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.upsample = nn.ConvTranspose2d(width, width, 2, stride=2)
        self.predictor = nn.Conv2d(width, num_classes, 1)

    def pool(self, features: Tensor, boxes: list[Tensor], spatial_scale: float) -> Tensor:
        """Tensor[B, C, h, w] and B Tensor[P_b, 4] (image pixels) -> Tensor[P, C, R, R]."""
        return pool_regions(features, boxes, self.roi_size, spatial_scale, self.pooler)

    def forward(self, features: Tensor, boxes: list[Tensor], spatial_scale: float) -> Tensor:
        """Returns: mask logits Tensor[P, K, 2R, 2R] (one mask per class for every box)."""
        x = self.features(self.pool(features, boxes, spatial_scale))  # (P, C, R, R) -> (P, width, R, R)
        return self.predictor(F.relu(self.upsample(x)))  # (P, width, 2R, 2R) -> (P, K, 2R, 2R)


def project_masks_on_boxes(gt_masks: Tensor, boxes: Tensor, matched_idxs: Tensor, size: int) -> Tensor:
    """The mask-head targets: each box's matched ground-truth mask, cut out under the box, as ``size x size``.

    Args:
        gt_masks (Tensor[G, H, W]): instance masks of one image (any dtype, 1 inside).
        boxes (Tensor[P, 4]): regions in image pixels; matched_idxs (Tensor[P], int64): index into ``gt_masks``.
        size (int): M, side of the target.

    Returns:
        Tensor[P, M, M] float in {0, 1} (bilinear resampling thresholded at 0.5, as torchvision).
    """
    check_shape(gt_masks, "gt_masks", (None, None, None), hint="(G, H, W) instance masks")
    check_boxes(boxes, "boxes")
    rois = torch.cat([matched_idxs.to(boxes)[:, None], boxes], 1)  # (P, 5): (mask index, x1, y1, x2, y2)
    cut = roi_align(gt_masks[:, None].to(boxes), rois, (size, size), 1.0, sampling_ratio=2, aligned=True)
    return (cut[:, 0] >= 0.5).to(boxes)


def mask_rcnn_loss(mask_logits: Tensor, labels: Tensor, mask_targets: Tensor) -> Tensor:
    """Per-pixel binary cross-entropy on the mask of each region's *true* class only.

    Args:
        mask_logits (Tensor[P, K, M, M]); labels (Tensor[P], int64 in 1..K-1); mask_targets (Tensor[P, M, M]).

    Returns:
        scalar Tensor (0 with a gradient when there are no positive regions).
    """
    P = mask_logits.shape[0]
    if labels.shape != (P,) or mask_targets.shape != (P, *mask_logits.shape[-2:]):
        raise ValueError(f"expected labels (P,) and mask_targets (P, M, M) for mask_logits {tuple(mask_logits.shape)}, "
                         f"got {tuple(labels.shape)} and {tuple(mask_targets.shape)}")
    if P == 0:
        return mask_logits.sum() * 0
    picked = mask_logits[torch.arange(P, device=labels.device), labels]  # (P, K, M, M) -> (P, M, M)
    return F.binary_cross_entropy_with_logits(picked, mask_targets)


def paste_masks_in_image(masks: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Resample each ``M x M`` box-relative mask into its box on the full image (zero outside the box).

    Vectorised with one ``grid_sample``: every image pixel centre is expressed in the box's normalised
    coordinates ``[-1, 1]`` (``align_corners=False``: the mask's cells tile the box exactly).

    Args:
        masks (Tensor[D, M, M]): probabilities (or logits) in box coordinates; boxes (Tensor[D, 4]).
        image_size (tuple[int, int]): ``(H, W)``.

    Returns:
        Tensor[D, H, W], same dtype as ``masks``.
    """
    check_shape(masks, "masks", (None, None, None), hint="(D, M, M)")
    check_boxes(boxes, "boxes")
    if masks.shape[0] != boxes.shape[0]:
        raise ValueError(f"one mask per box expected, got {masks.shape[0]} masks and {boxes.shape[0]} boxes")
    H, W = image_size
    D = masks.shape[0]
    if D == 0:
        return masks.new_zeros(0, H, W)
    ys = torch.arange(H, device=masks.device, dtype=masks.dtype) + 0.5  # pixel centres
    xs = torch.arange(W, device=masks.device, dtype=masks.dtype) + 0.5
    b = boxes.to(masks.dtype)
    w = (b[:, 2] - b[:, 0]).clamp(min=1e-6)
    h = (b[:, 3] - b[:, 1]).clamp(min=1e-6)
    gx = (xs[None] - b[:, :1]) / w[:, None] * 2 - 1  # (D, W)
    gy = (ys[None] - b[:, 1:2]) / h[:, None] * 2 - 1  # (D, H)
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # (D, H, W, 2) as (x, y)
    out = F.grid_sample(masks[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = (grid.abs() <= 1).all(-1)  # (D, H, W): no bleeding of the border interpolation outside the box
    return out[:, 0] * inside


def mask_iou(masks1: Tensor, masks2: Tensor) -> Tensor:
    """Pairwise IoU of two sets of binary masks, like ``box_iou`` for pixels.

    Args:
        masks1 (Tensor[N, H, W]), masks2 (Tensor[M, H, W]): nonzero = inside.

    Returns:
        Tensor[N, M] float32; 0 where both masks are empty.
    """
    check_shape(masks1, "masks1", (None, None, None), hint="(N, H, W)")
    check_shape(masks2, "masks2", (None, *masks1.shape[1:]), hint=f"(M, {masks1.shape[1]}, {masks1.shape[2]})")
    a = (masks1 != 0).flatten(1).float()
    b = (masks2 != 0).flatten(1).float()
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def instance_mask_iou(
    predictions: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]],
    iou_threshold: float = 0.5, score_threshold: float = 0.5,
) -> float:
    """Mean mask IoU over all ground-truth instances; an instance the detector missed counts as 0.

    Each ground-truth object takes the highest-scoring not yet used detection of its class with score
    ``>= score_threshold`` and *box* IoU ``>= iou_threshold``; its mask IoU is that of the detection's
    mask (thresholded at :data:`MASK_THRESHOLD`) with the true mask.

    Args:
        predictions: dicts with ``boxes``, ``scores``, ``labels`` and ``masks`` Tensor[D, 1, H, W] (probabilities).
        targets: dicts with ``boxes``, ``labels`` and ``masks`` Tensor[G, H, W].

    Returns:
        float in [0, 1].
    """
    if len(predictions) != len(targets):
        raise ValueError(f"one prediction per target expected, got {len(predictions)} and {len(targets)}")
    total, count = 0.0, 0
    for p, t in zip(predictions, targets):
        G = t["labels"].numel()
        count += G
        keep = p["scores"] >= score_threshold
        if G == 0 or not bool(keep.any()):
            continue
        boxes, labels, scores = p["boxes"][keep].cpu(), p["labels"][keep].cpu(), p["scores"][keep].cpu()
        masks = p["masks"][keep][:, 0].cpu() > MASK_THRESHOLD
        box_ok = (box_iou(boxes.float(), t["boxes"].float().cpu()) >= iou_threshold) & (labels[:, None] == t["labels"].cpu()[None])
        m_iou = mask_iou(masks, t["masks"].cpu())  # (D, G)
        used = torch.zeros(len(scores), dtype=torch.bool)
        order = torch.argsort(scores, descending=True, stable=True)
        for g in range(G):
            cand = [d for d in order.tolist() if box_ok[d, g] and not used[d]]
            if cand:
                used[cand[0]] = True
                total += float(m_iou[cand[0], g])
    return total / max(count, 1)


class SmallMaskRCNN(SmallFasterRCNN):
    """Mask R-CNN: :class:`~cvcourse.detection.SmallFasterRCNN` + a :class:`MaskHead` on the same feature map.

    Introduced in lecture 9. Training adds ``"loss_mask"`` to the four Faster R-CNN losses; in eval mode each
    detection dict also holds ``"masks"`` Tensor[D, 1, H, W] (probabilities pasted into the image, as
    torchvision's ``MaskRCNN``).

    Args:
        num_classes (int): K including background.
        mask_pooler (str): RoI operation of the mask head, ``"align"`` (Mask R-CNN) or ``"pool"``.
        mask_roi_size (int): side of its pooled patch (masks are twice that).
        mask_convs, mask_width (int): depth and width of the mask head.
        mask_rois_per_image (int): at most this many positive regions per image enter the mask loss (a
            random subset; torchvision uses all of them; the positives are near-copies of few objects here).
        mask_feature_layer (int, optional): index of the (``nn.Sequential``) backbone's stage whose output the
            mask head pools, e.g. ``2`` for the stride-4 map of :func:`~cvcourse.detection.small_backbone`;
            ``None`` (default) pools the detector's final map. The analogue of FPN sending small regions to a
            finer level: a 12-pixel object covers only 1.5 cells of a stride-8 map.
        **kwargs: as :class:`~cvcourse.detection.SmallFasterRCNN`.
    """

    def __init__(self, num_classes: int, mask_pooler: str = "align", mask_roi_size: int = 14, mask_convs: int = 3,
                 mask_width: int = 32, mask_rois_per_image: int = 16, mask_feature_layer: int | None = None, **kwargs):
        super().__init__(num_classes, **kwargs)
        in_channels = self.backbone.out_channels
        if mask_feature_layer is not None:
            if not isinstance(self.backbone, nn.Sequential) or not 0 <= mask_feature_layer < len(self.backbone) - 1:
                raise ValueError("mask_feature_layer must index a stage of an nn.Sequential backbone other than the "
                                 f"last (0..{len(self.backbone) - 2} here), got {mask_feature_layer}")
            convs_before = [m for m in self.backbone[: mask_feature_layer + 1].modules() if isinstance(m, nn.Conv2d)]
            if not convs_before:
                raise ValueError(f"backbone stages 0..{mask_feature_layer} contain no convolution to take channels from")
            in_channels = convs_before[-1].out_channels
        self.mask_feature_layer = mask_feature_layer
        self.mask_head = MaskHead(in_channels, num_classes, mask_roi_size, mask_convs, mask_width, pooler=mask_pooler)
        self.mask_rois_per_image = mask_rois_per_image
        self._detector_frozen = False

    def _features(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The detector's feature map and the one the mask head pools (the same unless ``mask_feature_layer``)."""
        if self.mask_feature_layer is None:
            features = self.backbone(images)
            return features, features
        k = self.mask_feature_layer + 1
        fine = self.backbone[:k](images)  # (B, 3, H, W) -> (B, C', H/s', W/s')
        return self.backbone[k:](fine), fine

    def freeze_detector(self) -> "SmallMaskRCNN":
        """Train only the mask head from here on: the backbone, RPN and box head keep their weights (and the
        backbone's BatchNorm statistics, which stay in eval mode). Returns ``self``."""
        for m in (self.backbone, self.rpn, self.roi_heads):
            m.requires_grad_(False)
        self._detector_frozen = True
        return self.train(self.training)

    def train(self, mode: bool = True) -> "SmallMaskRCNN":
        super().train(mode)
        if self._detector_frozen:
            self.backbone.eval()
        return self

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None):
        """Args:
            images (Tensor[B, 3, H, W] or list of Tensor[3, H, W]); targets (list of dicts with ``boxes``,
            ``labels`` and ``masks`` Tensor[G, H, W]; training only).

        Returns:
            a loss dict (five terms) in training mode, else a list of detection dicts with ``masks``.
        """
        images = _as_batch(images)
        size = tuple(images.shape[-2:])
        features, mask_features = self._features(images)
        scale = features.shape[-1] / size[1]
        mask_scale = mask_features.shape[-1] / size[1]
        proposals, rpn_losses = self.rpn(features, size, targets)
        if not self.training:
            detections, _ = self.roi_heads(features, proposals, size)
            logits = self.mask_head(mask_features, [d["boxes"] for d in detections], mask_scale)  # (D, K, M, M)
            labels = torch.cat([d["labels"] for d in detections])
            probs = logits[torch.arange(len(labels), device=labels.device), labels].sigmoid()  # (D, M, M)
            for d, p in zip(detections, probs.split([len(d["labels"]) for d in detections])):
                d["masks"] = paste_masks_in_image(p, d["boxes"], size)[:, None]  # (D, H, W) -> (D, 1, H, W)
            return detections
        if targets is None or any("masks" not in t for t in targets):
            raise ValueError("training needs targets with 'boxes', 'labels' and 'masks' (G, H, W)")
        heads = self.roi_heads
        props, labels, reg_targets, matched = heads.sample(proposals, targets)
        class_logits, box_deltas = heads.head(features, props, scale)
        losses = {**rpn_losses, **fast_rcnn_loss(class_logits, box_deltas, labels, reg_targets)}
        pos_props, pos_labels, pos_targets = [], [], []
        for p, lab, m, t in zip(props, labels.split([len(p) for p in props]), matched, targets):
            pos = torch.nonzero(lab > 0).flatten()
            pos = pos[torch.randperm(len(pos), device=pos.device)[: self.mask_rois_per_image]]
            pos_props.append(p[pos])
            pos_labels.append(lab[pos])
            pos_targets.append(project_masks_on_boxes(t["masks"], p[pos], m[pos], 2 * self.mask_head.roi_size))
        mask_logits = self.mask_head(mask_features, pos_props, mask_scale)
        losses["loss_mask"] = mask_rcnn_loss(mask_logits, torch.cat(pos_labels), torch.cat(pos_targets))
        return losses
