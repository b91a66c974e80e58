"""R-CNN as the paper built it, small: proposals -> warped crops with context -> frozen CNN features ->
one linear SVM per class -> a class-specific box regressor -> per-class NMS (lecture 8).

The 2013 pipeline (Girshick et al., "Rich feature hierarchies ..."): (1) selective search gives ~2000 region
proposals per image; (2) each proposal is enlarged so that, after warping, ``p = 16`` pixels of context
surround the original box, and warped to a fixed square (227 x 227 for AlexNet); (3) a CNN turns each crop into
a feature vector; (4) **one linear SVM per object class** scores it, one-vs-rest — there is **no background
SVM**: a region is background when no class scores above the threshold; the SVMs are trained on the ground-truth
boxes as positives and proposals with IoU < 0.3 as negatives, with hard-negative mining; (5) a **separate,
class-specific linear (ridge) regressor** on the same features refines the box; (6) per-class NMS removes
near-duplicates. The paper fine-tuned its CNN first; here the CNN (ImageNet EfficientNet-Lite0) stays frozen,
which is R-CNN's "no fine-tuning" row. Fast R-CNN later replaced steps 4-5 by a softmax and a multi-task loss.

The CNN runs once per *proposal*: that is why R-CNN with VGG-16 took 47 s per image at test time (the figure
the Fast R-CNN paper, 2015, measured for it).

Letters: N regions, S warped size, D feature length, K object classes (labels 1..K; 0 is background).
Convention: images are ``(3, H, W)`` float in [0, 1]; boxes ``(x1, y1, x2, y2)`` in pixels.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from cvcourse._checks import check_boxes, check_shape
from cvcourse.detection.box_coder import BoxCoder
from cvcourse.detection.rpn import BACKGROUND, BACKGROUND_LABEL, IGNORE_LABEL, match_boxes
from cvcourse.ops import batched_nms, box_iou, clip_boxes_to_image, roi_align

#: SVM training targets: +1 positive, -1 negative, 0 left out of that class's SVM.
SVM_POSITIVE, SVM_NEGATIVE, SVM_IGNORE = 1, -1, 0


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
        return torch.full((proposals.shape[0],), BACKGROUND_LABEL, dtype=torch.int64), proposals.clone()
    m = match_boxes(box_iou(gt_boxes.to(proposals), proposals), fg_iou, bg_iou)
    labels = torch.where(m >= 0, gt_labels[m.clamp(min=0)], torch.where(m == BACKGROUND, BACKGROUND_LABEL, IGNORE_LABEL))
    return labels, gt_boxes.to(proposals)[m.clamp(min=0)]



def svm_targets(regions: Tensor, gt_boxes: Tensor, gt_labels: Tensor, num_classes: int, neg_iou: float = 0.3,
                num_gt: int | None = None) -> Tensor:
    """One-vs-rest SVM targets of R-CNN: for class ``c``, the ground-truth boxes of ``c`` are positives and regions
    overlapping every object of ``c`` by IoU < ``neg_iou`` are negatives (objects of other classes included);
    the rest is left out (:data:`SVM_IGNORE`). There is no background column.

    Args:
        regions (Tensor[N, 4]): the ground-truth boxes first (``num_gt`` of them), then the proposals.
        gt_boxes (Tensor[G, 4]); gt_labels (Tensor[G], 1..K); num_classes (int): K, object classes.
        num_gt (int): how many leading regions are the ground-truth boxes (default ``G``).

    Returns:
        Tensor[N, K] int64 of :data:`SVM_POSITIVE`, :data:`SVM_NEGATIVE`, :data:`SVM_IGNORE`.
    """
    check_boxes(regions, "regions")
    num_gt = len(gt_boxes) if num_gt is None else num_gt
    if gt_labels.numel() and not (1 <= int(gt_labels.min()) and int(gt_labels.max()) <= num_classes):
        raise ValueError(f"gt_labels must be object classes 1..{num_classes} (0 is background), got {gt_labels.tolist()}")
    iou = box_iou(regions, gt_boxes.to(regions)) if len(gt_boxes) else regions.new_zeros((len(regions), 0))  # (N, G)
    onehot = nn.functional.one_hot(gt_labels.long() - 1, num_classes).to(iou) if len(gt_boxes) else iou.new_zeros((0, num_classes))
    class_iou = (iou[:, :, None] * onehot[None]).amax(1) if len(gt_boxes) else iou.new_zeros((len(regions), num_classes))
    y = torch.where(class_iou < neg_iou, SVM_NEGATIVE, SVM_IGNORE).long()  # (N, K)
    y[torch.arange(num_gt), gt_labels[:num_gt].long() - 1] = SVM_POSITIVE
    return y


def hinge_loss(scores: Tensor, targets: Tensor) -> Tensor:
    """Class-balanced hinge loss ``max(0, 1 - y s)`` of K one-vs-rest SVMs, ignoring targets of 0.

    Positives and negatives of each class weigh half each (there are far more negatives), then classes are averaged.

    Args:
        scores (Tensor[N, K]); targets (Tensor[N, K]) in {+1, -1, 0}.
    """
    y = targets.to(scores)
    h = (1 - y * scores).clamp(min=0)
    pos, neg = (targets == SVM_POSITIVE).to(scores), (targets == SVM_NEGATIVE).to(scores)
    per_class = 0.5 * (h * pos).sum(0) / pos.sum(0).clamp(min=1) + 0.5 * (h * neg).sum(0) / neg.sum(0).clamp(min=1)
    return per_class.mean()


def train_linear_svms(features: Tensor, targets: Tensor, weight_decay: float = 1e-3, steps: int = 300,
                      lr: float = 0.01, mining_rounds: int = 2, first_negatives: int = 200, seed: int = 0
                      ) -> tuple[Tensor, Tensor, list[int]]:
    """K linear SVMs ``s = x w_c + b_c`` (hinge loss + L2), with R-CNN's hard-negative mining.

    Round 0 trains on all positives and ``first_negatives`` random negatives per class; each further round adds
    every negative of the pool that violates the margin (``s > -1``) and retrains. Full-batch Adam on the
    (sub)gradient; features are standardised inside (the returned ``w, b`` act on raw features).

    Args:
        features (Tensor[N, D]); targets (Tensor[N, K]) from :func:`svm_targets`.

    Returns:
        (w Tensor[D, K], b Tensor[K], negatives used per round list[int] summed over classes).
    """
    check_shape(features, "features", (None, None), hint="(N, D)")
    check_shape(targets, "targets", (features.shape[0], None), hint="(N, K)")
    if not (targets == SVM_POSITIVE).any(0).all():
        raise ValueError("every class needs at least one positive (a ground-truth box) to train its SVM")
    mu, sd = features.mean(0), features.std(0).clamp(min=1e-6)
    x = (features - mu) / sd
    g = torch.Generator().manual_seed(seed)
    neg = targets == SVM_NEGATIVE
    active = targets == SVM_POSITIVE
    rank = torch.rand(targets.shape, generator=g)  # a random subset of negatives to start with
    rank[~neg] = 2.0
    first = rank.argsort(0)[:first_negatives]  # (first_negatives, K) row indices
    active.scatter_(0, first, neg.gather(0, first))
    w = torch.zeros(x.shape[1], targets.shape[1], requires_grad=True)
    b = torch.zeros(targets.shape[1], requires_grad=True)
    used = []
    for round_ in range(mining_rounds + 1):
        if round_ > 0:
            with torch.no_grad():
                active |= neg & (x @ w + b > -1)  # hard negatives: inside the margin or wrong
        used.append(int((active & neg).sum()))
        t = torch.where(active, targets, torch.full_like(targets, SVM_IGNORE))
        opt = torch.optim.Adam([w, b], lr=lr)
        for _ in range(steps):
            loss = hinge_loss(x @ w + b, t) + 0.5 * weight_decay * (w * w).sum(0).mean()
            opt.zero_grad(); loss.backward(); opt.step()
    w, b = w.detach(), b.detach()
    return w / sd[:, None], b - (mu / sd) @ w, used


def regression_targets(regions: Tensor, gt_boxes: Tensor, gt_labels: Tensor, min_iou: float = 0.6,
                       box_coder: BoxCoder | None = None) -> tuple[Tensor, Tensor]:
    """R-CNN's box-regression training set: each region is paired with its best-overlapping object and kept
    when their IoU is at least ``min_iou`` (0.6 in the paper).

    Returns:
        (labels Tensor[N] int64: the object's class 1..K, or :data:`~cvcourse.detection.rpn.IGNORE_LABEL` for regions
        left out; deltas Tensor[N, 4]: :class:`BoxCoder` targets from the region to that object).
    """
    box_coder = box_coder or BoxCoder()
    if len(gt_boxes) == 0:
        return torch.full((len(regions),), IGNORE_LABEL, dtype=torch.int64), regions.new_zeros((len(regions), 4))
    best_iou, best = box_iou(regions, gt_boxes.to(regions)).max(1)
    labels = torch.where(best_iou >= min_iou, gt_labels[best].long(), IGNORE_LABEL)
    return labels, box_coder.encode(gt_boxes.to(regions)[best], regions)


def fit_box_regressors(features: Tensor, labels: Tensor, deltas: Tensor, num_classes: int, ridge: float = 100.0
                       ) -> tuple[Tensor, Tensor]:
    """One ridge regressor per class, in closed form: ``W_c = (X^T X + ridge I)^-1 X^T T`` on centred data.

    Args:
        features (Tensor[N, D]); labels (Tensor[N]): class 1..K, < 1 to leave a region out; deltas (Tensor[N, 4]);
        num_classes (int): K; ridge (float): the L2 penalty (the paper used 1000 on its pool5 features).

    Returns:
        (W Tensor[K, D, 4], bias Tensor[K, 4]); a class without samples predicts zero deltas.
    """
    D = features.shape[1]
    W, bias = features.new_zeros((num_classes, D, 4)), features.new_zeros((num_classes, 4))
    for c in range(1, num_classes + 1):
        m = labels == c
        if m.sum() < 2:
            continue
        x, t = features[m].double(), deltas[m].double()
        mx, mt = x.mean(0), t.mean(0)
        xc = x - mx
        Wc = torch.linalg.solve(xc.T @ xc + ridge * torch.eye(D, dtype=x.dtype), xc.T @ (t - mt))
        W[c - 1], bias[c - 1] = Wc.to(features), (mt - mx @ Wc).to(features)
    return W, bias


class RCNN(nn.Module):
    """R-CNN (lecture 8): a frozen ImageNet CNN on warped crops, K linear SVMs, K box regressors.

    Args:
        num_classes (int): number of labels **including background** (as torchvision), so K = num_classes - 1
            SVMs — none for the background.
        crop_size (int): S of the warped crops; context (int): pixels of context at that size.
        backbone: an :class:`~cvcourse.models.efficientnet.EfficientNetLite` (default: the ImageNet Lite0).

    Attributes ``svm_weight`` (D, K), ``svm_bias`` (K), ``box_weight`` (K, D, 4), ``box_bias`` (K, 4) start at zero
    and are set by :meth:`fit_svms` and :meth:`fit_box_regressors` (no gradient training: the CNN is frozen).
    """

    def __init__(self, num_classes: int, crop_size: int = 64, context: int = 4, backbone: nn.Module | None = None):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes counts the background too and must be >= 2, got {num_classes}")
        from cvcourse.models.efficientnet import LITE_MEAN, LITE_STD, efficientnet_lite0

        self.backbone = (backbone if backbone is not None else efficientnet_lite0(weights="IMAGENET1K_V1"))
        self.backbone.eval().requires_grad_(False)
        self.crop_size, self.context, self.num_classes = crop_size, context, num_classes
        self.box_coder = BoxCoder()
        self.register_buffer("mean", torch.tensor(LITE_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(LITE_STD).view(1, 3, 1, 1))
        D, K = self.backbone.out_channels, num_classes - 1
        self.register_buffer("svm_weight", torch.zeros(D, K))
        self.register_buffer("svm_bias", torch.zeros(K))
        self.register_buffer("box_weight", torch.zeros(K, D, 4))
        self.register_buffer("box_bias", torch.zeros(K, 4))

    def train(self, mode: bool = True) -> "RCNN":
        super().train(mode)
        self.backbone.eval()  # frozen
        return self

    @torch.no_grad()
    def region_features(self, image: Tensor, regions: Tensor, batch_size: int = 256) -> Tensor:
        """Warp every region (with context) and run the frozen CNN: ``(N, 4) -> (N, D)`` (pooled last map)."""
        check_shape(image, "image", (3, None, None), hint="(3, H, W)")
        if len(regions) == 0:
            return image.new_zeros((0, self.backbone.out_channels))
        crops = warp_regions(image, regions.to(image), self.crop_size, self.context)  # (N, 3, S, S)
        feats = [self.backbone.forward_features((c - self.mean) / self.std).mean((2, 3)) for c in crops.split(batch_size)]
        return torch.cat(feats)  # (N, D)

    def fit_svms(self, features: Tensor, targets: Tensor, **kwargs) -> list[int]:
        """Train the K SVMs (:func:`train_linear_svms`); returns the negatives used per mining round."""
        w, b, used = train_linear_svms(features.cpu(), targets.cpu(), **kwargs)
        self.svm_weight.copy_(w); self.svm_bias.copy_(b)
        return used

    def fit_box_regressors(self, features: Tensor, labels: Tensor, deltas: Tensor, ridge: float = 100.0) -> None:
        """Fit the K class-specific box regressors (:func:`fit_box_regressors`)."""
        W, bias = fit_box_regressors(features.cpu(), labels.cpu(), deltas.cpu(), self.num_classes - 1, ridge)
        self.box_weight.copy_(W); self.box_bias.copy_(bias)

    @torch.no_grad()
    def score_and_regress(self, features: Tensor, proposals: Tensor, image_size: tuple[int, int],
                          score_thresh: float = -1.0, nms_thresh: float = 0.3) -> dict[str, Tensor]:
        """Steps 4-6: SVM scores, class-specific boxes for each (region, class) above ``score_thresh``, per-class NMS.

        Returns:
            dict with ``boxes`` (Tensor[D, 4]), ``scores`` (Tensor[D], SVM margins), ``labels`` (Tensor[D], 1..K).
        """
        scores = features @ self.svm_weight + self.svm_bias  # (N, K)
        deltas = torch.einsum("nd,kdf->nkf", features, self.box_weight) + self.box_bias  # (N, K, 4)
        n, k = torch.nonzero(scores > score_thresh, as_tuple=True)  # (region, class) pairs
        boxes = clip_boxes_to_image(self.box_coder.decode(deltas[n, k], proposals.to(features)[n]), image_size)
        s, labels = scores[n, k], k + 1
        keep = batched_nms(boxes, s, labels, nms_thresh)
        return {"boxes": boxes[keep], "scores": s[keep], "labels": labels[keep]}

    @torch.no_grad()
    def detect(self, image: Tensor, proposals: Tensor, context: int | None = None, score_thresh: float = -1.0,
               nms_thresh: float = 0.3, timings: dict | None = None) -> dict[str, Tensor]:
        """The full test-time pipeline on one image and its proposals.

        Args:
            image (Tensor[3, H, W]); proposals (Tensor[N, 4]); context: ignored unless equal to the model's (kept
            for the old call signature); score_thresh: minimum SVM score (0 = the margin's centre); nms_thresh.
            timings: if a dict, ``"cnn"`` and ``"svm_box"`` seconds (``time.perf_counter``) are added to it.
        """
        if context is not None and context != self.context:
            raise ValueError(f"this R-CNN warps with context={self.context}, got context={context}")
        t0 = time.perf_counter()
        feats = self.region_features(image, proposals)
        t1 = time.perf_counter()
        out = self.score_and_regress(feats, proposals.to(feats), tuple(image.shape[-2:]), score_thresh, nms_thresh)
        if timings is not None:
            timings["cnn"] = timings.get("cnn", 0.0) + t1 - t0
            timings["svm_box"] = timings.get("svm_box", 0.0) + time.perf_counter() - t1
        return out
