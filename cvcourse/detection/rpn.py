"""The Region Proposal Network of Faster R-CNN (lecture 9).

Instead of selective search, a small convolutional head slides over the shared feature map and, for each
of the ``A`` anchors at each position, predicts an objectness logit and four box deltas. Training labels
come from matching anchors to ground-truth boxes by IoU (>= 0.7 object, < 0.3 background, in between
ignored; each ground-truth box also claims its best anchor); a balanced random sample of 256 anchors per
image enters the loss. At inference the top-scoring anchors are decoded, clipped, filtered by size and
de-duplicated with NMS: these are the proposals for the RoI head.

Letters: B images, C channels, h, w feature-map size, A anchors per position, N = h * w * A anchors,
G ground-truth boxes of one image, P proposals of one image.
Convention: boxes are ``(x1, y1, x2, y2)`` in image pixels; sizes are ``(H, W)``.

Mirrors ``torchvision.models.detection.rpn`` (``RPNHead``, ``RegionProposalNetwork``) for one feature map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse._checks import check_shape
from cvcourse.detection.anchors import AnchorGenerator
from cvcourse.detection.box_coder import BoxCoder
from cvcourse.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes

BACKGROUND = -1  #: match index of an anchor/proposal below the background threshold
IGNORE = -2  #: match index of one between the two thresholds (left out of the loss)
BACKGROUND_LABEL = 0  #: training label (class) of a background sample, as torchvision's class 0
IGNORE_LABEL = -1  #: training label of a sample left out of the loss (neither object nor background)


def match_boxes(iou: Tensor, high: float, low: float, allow_low_quality: bool = False) -> Tensor:
    """For every candidate box, the index of the ground-truth box it is matched to.

    Introduced in lecture 9. Mirrors ``torchvision.models.detection._utils.Matcher``.

    Args:
        iou (Tensor[G, N]): IoU of G ground-truth boxes with N candidates (anchors or proposals).
        high (float): IoU at or above which a candidate is matched (foreground).
        low (float): IoU below which a candidate is background; ``low <= iou < high`` is ignored.
        allow_low_quality (bool): also match each ground-truth box to its best candidate(s), even below
            ``high`` (the RPN needs this so that every object gets at least one positive anchor).

    Returns:
        Tensor[N] (int64): ground-truth index, or :data:`BACKGROUND` (-1), or :data:`IGNORE` (-2).
    """
    check_shape(iou, "iou", (None, None), hint="(ground truth x candidates)")
    if low > high:
        raise ValueError(f"low ({low}) must not exceed high ({high})")
    G, N = iou.shape
    if G == 0:
        return torch.full((N,), BACKGROUND, dtype=torch.int64, device=iou.device)
    best, matches = iou.max(dim=0)
    original = matches.clone()
    matches[best < low] = BACKGROUND
    matches[(best >= low) & (best < high)] = IGNORE
    if allow_low_quality and N > 0:
        best_per_gt = iou.max(dim=1, keepdim=True).values  # (G, 1)
        gt_idx, cand_idx = torch.nonzero((iou == best_per_gt) & (best_per_gt > 0), as_tuple=True)
        matches[cand_idx] = original[cand_idx]
    return matches


def sample_balanced(
    labels: Tensor, batch_size: int, positive_fraction: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Pick at most ``batch_size`` candidates, at most ``positive_fraction`` of them positive.

    Mirrors ``torchvision.models.detection._utils.BalancedPositiveNegativeSampler`` for one image.

    Args:
        labels (Tensor[N]): ``> 0`` positive, :data:`BACKGROUND_LABEL` (0) negative, :data:`IGNORE_LABEL` (< 0) ignored.
        batch_size (int): how many to keep in all.
        positive_fraction (float): upper bound on the share of positives.
        generator: optional CPU generator for reproducible sampling.

    Returns:
        tuple[Tensor[p], Tensor[n]]: indices of the sampled positives and negatives.
    """
    pos = torch.nonzero(labels > 0).flatten()
    neg = torch.nonzero(labels == BACKGROUND_LABEL).flatten()
    n_pos = min(pos.numel(), int(batch_size * positive_fraction))
    n_neg = min(neg.numel(), batch_size - n_pos)
    pos = pos[torch.randperm(pos.numel(), generator=generator)[:n_pos].to(pos.device)]
    neg = neg[torch.randperm(neg.numel(), generator=generator)[:n_neg].to(neg.device)]
    return pos, neg


class RPNHead(nn.Module):
    """A 3x3 convolution, then two sibling 1x1 convolutions: objectness (A) and box deltas (4A).

    Mirrors ``torchvision.models.detection.rpn.RPNHead``.

    Args:
        in_channels (int): C of the feature map.
        num_anchors (int): A anchors per position.
    """

    def __init__(self, in_channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, 4 * num_anchors, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Args: features (Tensor[B, C, h, w]).

        Returns:
            objectness (Tensor[B, N]) and deltas (Tensor[B, N, 4]), ordered like
            :class:`~cvcourse.detection.anchors.AnchorGenerator`'s anchors (row, column, anchor).
        """
        t = F.relu(self.conv(features))
        logits = self.cls_logits(t)  # (B, A, h, w)
        deltas = self.bbox_pred(t)  # (B, 4A, h, w)
        B, A, h, w = logits.shape
        logits = logits.permute(0, 2, 3, 1).reshape(B, -1)  # (B, A, h, w) -> (B, h*w*A)
        deltas = deltas.view(B, A, 4, h, w).permute(0, 3, 4, 1, 2).reshape(B, -1, 4)  # -> (B, h*w*A, 4)
        return logits, deltas


def rpn_loss(
    objectness: Tensor,
    deltas: Tensor,
    anchors: Tensor,
    gt_boxes: list[Tensor],
    box_coder: BoxCoder,
    fg_iou_thresh: float = 0.7,
    bg_iou_thresh: float = 0.3,
    batch_size_per_image: int = 256,
    positive_fraction: float = 0.5,
) -> dict[str, Tensor]:
    """Objectness (binary cross-entropy) and box (smooth L1) losses of the RPN.

    Both are averaged over the sampled anchors of the batch, as in torchvision.

    Args:
        objectness (Tensor[B, N]): logits from :class:`RPNHead`.
        deltas (Tensor[B, N, 4]): predicted deltas from :class:`RPNHead`.
        anchors (Tensor[N, 4]): the anchors (the same for every image of the batch).
        gt_boxes (list of Tensor[G, 4]): ground-truth boxes per image.
        box_coder (BoxCoder): turns matched boxes into delta targets.

    Returns:
        dict with ``"loss_objectness"`` and ``"loss_rpn_box_reg"`` (scalar tensors).
    """
    if len(gt_boxes) != objectness.shape[0]:
        raise ValueError(f"got {len(gt_boxes)} target box sets for a batch of {objectness.shape[0]} images")
    obj_terms, box_terms, n_sampled = [], [], 0
    for b, gt in enumerate(gt_boxes):
        gt = gt.to(anchors)
        matches = match_boxes(box_iou(gt, anchors), fg_iou_thresh, bg_iou_thresh, allow_low_quality=True)
        labels = (matches >= 0).to(objectness.dtype)
        labels[matches == IGNORE] = IGNORE_LABEL
        pos, neg = sample_balanced(labels, batch_size_per_image, positive_fraction)
        idx = torch.cat([pos, neg])
        n_sampled += idx.numel()
        obj_terms.append(F.binary_cross_entropy_with_logits(objectness[b, idx], labels[idx], reduction="sum"))
        if pos.numel():
            target = box_coder.encode(gt[matches[pos]], anchors[pos])
            box_terms.append(F.smooth_l1_loss(deltas[b, pos], target, beta=1 / 9, reduction="sum"))
    n = max(n_sampled, 1)
    zero = deltas.sum() * 0
    return {
        "loss_objectness": sum(obj_terms, zero) / n,
        "loss_rpn_box_reg": sum(box_terms, zero) / n,
    }


def filter_proposals(
    objectness: Tensor,
    deltas: Tensor,
    anchors: Tensor,
    image_size: tuple[int, int],
    box_coder: BoxCoder,
    pre_nms_top_n: int = 1000,
    post_nms_top_n: int = 300,
    nms_thresh: float = 0.7,
    min_size: float = 1.0,
) -> tuple[list[Tensor], list[Tensor]]:
    """Turn RPN outputs into proposals: top-k by score, decode, clip, drop tiny boxes, NMS, top-k again.

    Args:
        objectness (Tensor[B, N]), deltas (Tensor[B, N, 4]), anchors (Tensor[N, 4]): as in :func:`rpn_loss`.
        image_size (tuple[int, int]): ``(H, W)`` to clip to.
        pre_nms_top_n / post_nms_top_n (int): how many boxes to keep before / after NMS.
        nms_thresh (float): IoU above which the lower-scoring of two proposals is dropped.
        min_size (float): proposals narrower or shorter than this (pixels) are dropped.

    Returns:
        (boxes, scores): two lists with one ``Tensor[P, 4]`` / ``Tensor[P]`` (sigmoid scores) per image.
    """
    B, N = objectness.shape
    objectness, deltas = objectness.detach(), deltas.detach()
    boxes_all, scores_all = [], []
    for b in range(B):
        k = min(pre_nms_top_n, N)
        top_scores, top = objectness[b].topk(k)
        boxes = box_coder.decode(deltas[b, top], anchors[top])
        boxes = clip_boxes_to_image(boxes, image_size)
        wide = remove_small_boxes(boxes, min_size)
        boxes, scores = boxes[wide], torch.sigmoid(top_scores[wide])
        keep = batched_nms(boxes, scores, torch.zeros_like(scores, dtype=torch.int64), nms_thresh)[:post_nms_top_n]
        boxes_all.append(boxes[keep])
        scores_all.append(scores[keep])
    return boxes_all, scores_all


class RegionProposalNetwork(nn.Module):
    """Anchors + :class:`RPNHead` + loss + proposal filtering, for one feature map.

    Introduced in lecture 9 (Faster R-CNN). Mirrors ``torchvision.models.detection.rpn.RegionProposalNetwork``
    with torchvision's default thresholds; it takes one feature map rather than a dict of them, and one
    ``pre_nms_top_n`` / ``post_nms_top_n`` for training and testing.

    Args:
        in_channels (int): C of the feature map.
        anchor_generator (AnchorGenerator): where the anchors sit.
        fg_iou_thresh, bg_iou_thresh (float): anchor matching thresholds (0.7 / 0.3).
        batch_size_per_image, positive_fraction: anchor sampling for the loss (256, 0.5).
        pre_nms_top_n, post_nms_top_n, nms_thresh, min_size: see :func:`filter_proposals`.
    """

    def __init__(
        self,
        in_channels: int,
        anchor_generator: AnchorGenerator | None = None,
        fg_iou_thresh: float = 0.7,
        bg_iou_thresh: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        pre_nms_top_n: int = 1000,
        post_nms_top_n: int = 300,
        nms_thresh: float = 0.7,
        min_size: float = 1.0,
    ):
        super().__init__()
        self.anchor_generator = anchor_generator or AnchorGenerator()
        self.head = RPNHead(in_channels, self.anchor_generator.num_anchors_per_location)
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.fg_iou_thresh, self.bg_iou_thresh = fg_iou_thresh, bg_iou_thresh
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.pre_nms_top_n, self.post_nms_top_n = pre_nms_top_n, post_nms_top_n
        self.nms_thresh, self.min_size = nms_thresh, min_size

    def forward(
        self, features: Tensor, image_size: tuple[int, int], targets: list[dict[str, Tensor]] | None = None
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Args:
            features (Tensor[B, C, h, w]): shared feature map.
            image_size (tuple[int, int]): ``(H, W)`` of the (equally sized) input images.
            targets (list of dict, optional): with ``"boxes"`` (Tensor[G, 4]); required in training mode.

        Returns:
            (proposals, losses): a list of ``Tensor[P, 4]`` per image, and a dict of losses (empty in eval).
        """
        objectness, deltas = self.head(features)
        anchors = self.anchor_generator(tuple(image_size), tuple(features.shape[-2:]), deltas.dtype, deltas.device)
        proposals, _ = filter_proposals(
            objectness, deltas, anchors, tuple(image_size), self.box_coder,
            self.pre_nms_top_n, self.post_nms_top_n, self.nms_thresh, self.min_size,
        )
        losses: dict[str, Tensor] = {}
        if self.training:
            if targets is None:
                raise ValueError("targets (a list of dicts with 'boxes') are required in training mode")
            losses = rpn_loss(
                objectness, deltas, anchors, [t["boxes"] for t in targets], self.box_coder,
                self.fg_iou_thresh, self.bg_iou_thresh, self.batch_size_per_image, self.positive_fraction,
            )
        return proposals, losses
