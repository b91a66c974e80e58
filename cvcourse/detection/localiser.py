"""Single-object localisation = classification + box regression on a frozen CNN (lecture 8).

With exactly one object per image, "what and where" is a CNN with two heads: class scores (cross-entropy) and
four numbers for the box (an L1-type loss). The body here is the ImageNet-pretrained EfficientNet-Lite0 of
lecture 4, **frozen** (as R-CNN used its ImageNet CNN): only the two small heads are trained, so a few seconds
of CPU time suffice. The class head reads the globally pooled last feature map (what, wherever it is); the box
head reads the stride-8 map flattened (where: it keeps the positions that pooling would throw away).

Outputs are one tensor ``(B, K + 4)`` — K class logits, then the box ``(x1, y1, x2, y2)`` as fractions of the
image size — so that the course's one training loop, :func:`cvcourse.train.fit`, trains it with
:func:`localisation_loss` and the metrics :func:`class_accuracy` and :func:`mean_box_iou`. Targets are
``(B, 5)``: the class index (0..K-1, no background: there is always one object) then the box as fractions.

Letters: B images, K classes, D feature length.
Convention: images ``(B, 3, H, W)`` float in [0, 1]; boxes ``(x1, y1, x2, y2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from cvcourse._checks import check_shape
from cvcourse.config import pick
from cvcourse.ops import box_iou

__all__ = [
    "Localiser", "LocaliserHead", "localisation_loss", "class_accuracy", "mean_box_iou",
    "LocaliserSettings", "localiser_settings", "single_object_data", "feature_dataset",
]


class LocaliserHead(nn.Module):
    """The two trainable heads: ``features (B, D) -> (B, K + 4)``.

    Args:
        num_classes (int): K (object classes; there is no background class in localisation).
        map_shape (tuple[int, int, int]): ``(C, h, w)`` of the stride-8 map the box head reads.
        pooled_dim (int): length of the pooled vector the class head reads.
        hidden (int): width of the box head's hidden layer.
    """

    def __init__(self, num_classes: int, map_shape: tuple[int, int, int], pooled_dim: int, hidden: int = 128):
        super().__init__()
        self.num_classes, self.map_dim = num_classes, map_shape[0] * map_shape[1] * map_shape[2]
        # BatchNorm standardises the frozen features (their scales differ by orders of magnitude)
        self.cls = nn.Sequential(nn.BatchNorm1d(pooled_dim), nn.Linear(pooled_dim, num_classes))
        self.box = nn.Sequential(nn.BatchNorm1d(self.map_dim), nn.Linear(self.map_dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 4))

    def forward(self, features: Tensor) -> Tensor:
        """Args: features (Tensor[B, D]) from :meth:`Localiser.forward_features`. Returns: Tensor[B, K + 4]."""
        logits = self.cls(features[:, self.map_dim:])
        c = torch.sigmoid(self.box(features[:, :self.map_dim]))  # (cx, cy, w, h) in [0, 1]: always a valid box
        boxes = torch.cat([c[:, :2] - c[:, 2:] / 2, c[:, :2] + c[:, 2:] / 2], dim=1)
        return torch.cat([logits, boxes], dim=1)


class Localiser(nn.Module):
    """Frozen ImageNet EfficientNet-Lite0 body + :class:`LocaliserHead` (introduced in lecture 8).

    Args:
        num_classes (int): K.
        image_size (int): S of the square input images (fixes the length of the box head's input).
        hidden (int): hidden width of the box head.
        backbone: an :class:`~cvcourse.models.efficientnet.EfficientNetLite` (default: the ImageNet Lite0).

    ``forward(images)`` = ``head(forward_features(images))``; train the head alone on cached features.
    """

    def __init__(self, num_classes: int = 4, image_size: int = 64, hidden: int = 128, backbone: nn.Module | None = None):
        super().__init__()
        if backbone is None:
            from cvcourse.models.efficientnet import efficientnet_lite0

            backbone = efficientnet_lite0(weights="IMAGENET1K_V1")
        from cvcourse.models.efficientnet import LITE_MEAN, LITE_STD

        self.backbone = backbone.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(LITE_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(LITE_STD).view(1, 3, 1, 1))
        self.image_size = image_size
        s8 = -(-image_size // 8)  # "SAME" padding: ceil(S / 8)
        c8 = next(i["channels"] for i in backbone.feature_info if i["stride"] == 8)
        self.head = LocaliserHead(num_classes, (c8, s8, s8), backbone.out_channels, hidden)

    def train(self, mode: bool = True) -> "Localiser":
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm statistics stay the ImageNet ones
        return self

    @torch.no_grad()
    def forward_features(self, images: Tensor) -> Tensor:
        """``(B, 3, S, S) -> (B, D)``: the stride-8 map flattened, then the pooled last map."""
        check_shape(images, "images", (None, 3, self.image_size, self.image_size), hint="(B, 3, S, S)")
        stages = self.backbone.forward_stages((images - self.mean) / self.std)
        return torch.cat([stages["stride8"].flatten(1), stages["stride32"].mean((2, 3))], dim=1)  # (B, D)

    def forward(self, images: Tensor) -> Tensor:
        """Args: images (Tensor[B, 3, S, S]). Returns: Tensor[B, K + 4] (logits, box as fractions of S)."""
        return self.head(self.forward_features(images))

    @torch.no_grad()
    def predict(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Class index (Tensor[B], 0..K-1) and box in pixels (Tensor[B, 4]) of each image."""
        self.eval()
        out = self(images)
        K = self.head.num_classes
        return out[:, :K].argmax(1), out[:, K:] * self.image_size


def _split(outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    if outputs.dim() != 2 or targets.dim() != 2 or targets.shape[1] != 5 or outputs.shape[1] < 5:
        raise ValueError(f"outputs must be (B, K + 4) and targets (B, 5) [class, x1, y1, x2, y2]; got "
                         f"{tuple(outputs.shape)} and {tuple(targets.shape)}")
    return outputs[:, :-4], outputs[:, -4:], targets[:, 0].long(), targets[:, 1:]


def localisation_loss(outputs: Tensor, targets: Tensor, box_weight: float = 5.0, beta: float = 0.05) -> Tensor:
    """Cross-entropy on the class + ``box_weight`` x smooth L1 on the box corners (fractions of the image)."""
    logits, boxes, labels, true_boxes = _split(outputs, targets)
    return F.cross_entropy(logits, labels) + box_weight * F.smooth_l1_loss(boxes, true_boxes, beta=beta)


def class_accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Share of images whose arg-max class is right (a :func:`~cvcourse.train.fit` metric)."""
    logits, _, labels, _ = _split(outputs, targets)
    return (logits.argmax(1) == labels).float().mean().item()


def mean_box_iou(outputs: Tensor, targets: Tensor) -> float:
    """Mean IoU of each predicted box with its true box (a :func:`~cvcourse.train.fit` metric)."""
    _, boxes, _, true_boxes = _split(outputs, targets)
    return box_iou(boxes, true_boxes).diagonal().mean().item()


@dataclass(frozen=True)
class LocaliserSettings:
    """Lecture 8's localisation experiment; the data are the same in fast and full mode, only their amount differs."""

    image_size: int = 64
    size_range: tuple[float, float] = (0.12, 0.25)  # one large shape, as in classic localisation
    background: str = "plain"
    n_train: int = 600
    n_test: int = 300
    epochs: int = 12
    lr: float = 1e-3
    batch_size: int = 32


def localiser_settings() -> LocaliserSettings:
    """The notebook's settings (fast or full, read from :func:`cvcourse.config.pick` when called)."""
    return LocaliserSettings(n_train=pick(full=4000, fast=600), n_test=pick(full=1000, fast=300),
                             epochs=pick(full=30, fast=12))


def single_object_data(n: int, seed: int, settings: LocaliserSettings) -> tuple[Tensor, Tensor]:
    """``n`` one-shape images of :class:`~cvcourse.data.ShapesDetection` and their targets.

    Returns:
        images Tensor[n, 3, S, S]; targets Tensor[n, 5]: class index 0..3 (``SHAPE_CLASSES``), box / S.
    """
    from cvcourse.data import ShapesDetection

    ds = ShapesDetection(n, image_size=settings.image_size, seed=seed, max_shapes=1, background=settings.background,
                         size_range=settings.size_range)
    items = [ds[i] for i in range(n)]
    images = torch.stack([x for x, _ in items])
    targets = torch.stack([torch.cat([t["labels"][:1].float() - 1, t["boxes"][0] / settings.image_size])
                           for _, t in items])
    return images, targets


def feature_dataset(model: Localiser, images: Tensor, targets: Tensor, batch_size: int = 128) -> TensorDataset:
    """Run the frozen body once over ``images`` and pair its features with ``targets``.

    The body never changes, so the head can be trained with :func:`~cvcourse.train.fit` on these cached
    features (``fit(model.head, feature_dataset(...), ...)``) instead of recomputing them every epoch.

    Returns:
        TensorDataset of (features Tensor[n, D], targets Tensor[n, 5]).
    """
    if len(images) != len(targets):
        raise ValueError(f"images and targets must pair up, got {len(images)} and {len(targets)}")
    dev = model.mean.device
    feats = torch.cat([model.forward_features(x.to(dev)).cpu() for x in images.split(batch_size)])
    return TensorDataset(feats, targets)
