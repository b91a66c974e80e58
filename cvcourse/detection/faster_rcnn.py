"""Small, trainable Fast and Faster R-CNN assembled from this package's parts (lecture 9).

Both run a backbone once per image (the shared feature map), then the :class:`~cvcourse.detection.roi_heads.RoIHeads`.
They differ only in where the regions come from: :class:`SmallFastRCNN` takes external proposals
(selective search), :class:`SmallFasterRCNN` learns them with a
:class:`~cvcourse.detection.rpn.RegionProposalNetwork` on the same feature map.
Images of one batch share one size (the synthetic shapes data), so there is no resizing/padding step.

Letters: B images, C channels, H, W image size, h, w feature-map size, G boxes of one image, D detections.
Convention: images are ``(B, 3, H, W)`` float in [0, 1]; boxes are ``(x1, y1, x2, y2)`` in pixels;
``num_classes`` counts the background (class 0), like torchvision's ``FasterRCNN(num_classes=...)``.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from cvcourse._checks import check_shape
from cvcourse.detection.anchors import AnchorGenerator
from cvcourse.detection.roi_heads import FastRCNNHead, RoIHeads
from cvcourse.detection.rpn import RegionProposalNetwork
from cvcourse.train import _to_device


def small_backbone(out_channels: int = 64, width: int = 32) -> nn.Sequential:
    """A four-stage CNN with stride 8 (three stride-2 stages), enough for 64–128 px synthetic images.

    Returns:
        nn.Sequential mapping ``(B, 3, H, W)`` to ``(B, out_channels, H/8, W/8)``, with an ``out_channels``
        attribute as torchvision's detectors expect.
    """

    def block(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    net = nn.Sequential(
        block(3, width // 2, 1),
        block(width // 2, width, 2),
        block(width, width, 2),
        block(width, out_channels, 2),
        block(out_channels, out_channels, 1),
    )
    net.out_channels = out_channels
    return net


def _as_batch(images: Tensor | Sequence[Tensor]) -> Tensor:
    """Accept a ``(B, 3, H, W)`` tensor or torchvision's list of equally sized ``(3, H, W)`` images."""
    if isinstance(images, (list, tuple)):
        sizes = {tuple(im.shape) for im in images}
        if len(sizes) > 1:
            raise ValueError(f"all images of a batch must have one size (no resizing here), got sizes {sorted(sizes)}")
        images = torch.stack(list(images))
    check_shape(images, "images", (None, 3, None, None), hint="(B, 3, H, W) float in [0, 1]")
    return images


class SmallFastRCNN(nn.Module):
    """Fast R-CNN: shared feature map + RoI pooling of *given* proposals + softmax and box regression.

    Introduced in lecture 9. Mirrors the box part of ``torchvision.models.detection.FasterRCNN`` without its
    RPN and transform.

    Args:
        num_classes (int): K including background.
        backbone (nn.Module, optional): with ``out_channels``; defaults to :func:`small_backbone`.
        pooler (str): ``"pool"`` (Fast R-CNN's RoI pooling, the default here) or ``"align"``.
        roi_size (int): RoI output side S.
        **roi_kwargs: passed to :class:`~cvcourse.detection.roi_heads.RoIHeads`.
    """

    def __init__(self, num_classes: int, backbone: nn.Module | None = None, pooler: str = "pool", roi_size: int = 7, **roi_kwargs):
        super().__init__()
        self.backbone = backbone if backbone is not None else small_backbone()
        self.roi_heads = RoIHeads(FastRCNNHead(self.backbone.out_channels, num_classes, roi_size, pooler=pooler), **roi_kwargs)

    def forward(
        self, images: Tensor, targets: list[dict[str, Tensor]] | None = None, proposals: list[Tensor] | None = None
    ):
        """Args:
            images (Tensor[B, 3, H, W] or list of Tensor[3, H, W]); targets (list of dicts, training only);
            proposals (list of B Tensor[P_b, 4]): region proposals, e.g. from selective search.

        Returns:
            a loss dict in training mode, else a list of detection dicts (``boxes``, ``scores``, ``labels``).
        """
        images = _as_batch(images)
        if proposals is None or len(proposals) != images.shape[0]:
            raise ValueError("SmallFastRCNN needs one Tensor[P, 4] of proposals per image (e.g. selective_search)")
        features = self.backbone(images)
        proposals = [p.to(features) for p in proposals]
        detections, losses = self.roi_heads(features, proposals, tuple(images.shape[-2:]), targets)
        return losses if self.training else detections


class SmallFasterRCNN(nn.Module):
    """Faster R-CNN: backbone -> RPN proposals -> RoI Align head, all trained jointly.

    Introduced in lecture 9. Mirrors ``torchvision.models.detection.FasterRCNN`` for one feature map, without
    the resize/normalise transform (inputs are used as they are).

    Args:
        num_classes (int): K including background.
        backbone (nn.Module, optional): with ``out_channels``; defaults to :func:`small_backbone`.
        anchor_sizes (sequence of float): anchor sides in pixels (suited to the objects' sizes).
        aspect_ratios (sequence of float): anchor height / width ratios.
        roi_size (int): RoI output side S.
        rpn_kwargs, roi_kwargs (dict, optional): passed to :class:`RegionProposalNetwork` and :class:`RoIHeads`.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: nn.Module | None = None,
        anchor_sizes: Sequence[float] = (16, 32, 64),
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        roi_size: int = 7,
        rpn_kwargs: dict | None = None,
        roi_kwargs: dict | None = None,
    ):
        super().__init__()
        self.backbone = backbone if backbone is not None else small_backbone()
        c = self.backbone.out_channels
        rpn_kwargs = {"pre_nms_top_n": 600, "post_nms_top_n": 100, **(rpn_kwargs or {})}
        self.rpn = RegionProposalNetwork(c, AnchorGenerator(anchor_sizes, aspect_ratios), **rpn_kwargs)
        self.roi_heads = RoIHeads(FastRCNNHead(c, num_classes, roi_size, pooler="align"), **(roi_kwargs or {}))

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None):
        """Args:
            images (Tensor[B, 3, H, W] or list of Tensor[3, H, W]); targets (list of dicts with ``boxes``/``labels``, training only).

        Returns:
            a loss dict (four terms) in training mode, else a list of detection dicts.
        """
        images = _as_batch(images)
        size = tuple(images.shape[-2:])
        features = self.backbone(images)
        proposals, rpn_losses = self.rpn(features, size, targets)
        detections, roi_losses = self.roi_heads(features, proposals, size, targets)
        return {**rpn_losses, **roi_losses} if self.training else detections


class WithProposals(torch.utils.data.Dataset):
    """A detection data set whose items carry their selective-search proposals: ``(image, target, proposals)``.

    Introduced in lecture 9 (Fast R-CNN trains on external proposals). The proposals are computed once, here.

    Args:
        dataset: items ``(image Tensor[3, H, W], target dict)``.
        progress (bool): show a progress bar.
        **search_kwargs: passed to :func:`~cvcourse.detection.selective_search`.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, progress: bool = False, **search_kwargs):
        from tqdm.auto import tqdm

        from cvcourse.detection.selective_search import selective_search

        self.dataset = dataset
        self.search_kwargs = search_kwargs
        self.proposals = [selective_search(dataset[i][0], **search_kwargs)
                          for i in tqdm(range(len(dataset)), desc="selective search", disable=not progress)]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple:
        return (*self.dataset[index], self.proposals[index])


def _collate(batch: Sequence[tuple]) -> tuple:
    """Stack images and keep targets (and any extra per-image items) as lists."""
    columns = list(zip(*batch))
    return (torch.stack(columns[0]),) + tuple(list(c) for c in columns[1:])


def _detector_step(model: nn.Module, batch: tuple) -> dict[str, Tensor]:
    """One batch ``(images, targets[, proposals])`` -> the detector's loss dict (the extra item is ``proposals=``)."""
    images, targets, *extra = batch
    return model(images, targets, proposals=extra[0]) if extra else model(images, targets)


def train_detector(
    model: nn.Module,
    data: Iterable | torch.utils.data.Dataset,
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = True,
    lr_schedule: str = "constant",
) -> dict[str, list[float]]:
    """Train a detector that returns a loss dict, with AdamW (weight decay 1e-4); return the per-step losses.

    Introduced in lecture 9. The loop is the course's :func:`cvcourse.train.fit` (lecture 1): the detector
    computes its own losses, so ``fit`` is given a ``step_fn`` that calls ``model(images, targets)`` and an
    ``on_step`` hook that records every term. Dataset items are ``(image, target)`` or
    ``(image, target, proposals)``; the extra item is passed to the model as ``proposals=`` (for
    :class:`SmallFastRCNN`).

    Args:
        lr_schedule (str): ``"constant"`` or ``"cosine"`` (from ``lr`` down to 0 over all steps, stepped per step).

    Returns:
        dict of lists: one entry per loss term plus ``"loss"`` (their sum) per step, and
        ``"epoch_time"`` (seconds) per epoch. The model is left in eval mode.
    """
    from cvcourse.train import fit

    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if isinstance(data, torch.utils.data.Dataset):
        g = torch.Generator().manual_seed(seed)
        data = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, collate_fn=_collate, generator=g)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * len(data)))
             if lr_schedule == "cosine" else None)
    history: dict[str, list[float]] = {"loss": []}

    def record(terms: dict[str, float]) -> None:
        for k, v in terms.items():
            history.setdefault(k, []).append(v)

    per_epoch = fit(model, data, epochs=epochs, optimizer=opt, device=device, seed=seed, progress=progress,
                    step_fn=_detector_step, on_step=record, scheduler=sched, scheduler_interval="step")
    history["epoch_time"] = list(per_epoch.get("epoch_time", []))
    return history


@torch.no_grad()
def predict(
    model: nn.Module, data: Iterable | torch.utils.data.Dataset, *, batch_size: int = 16, device=None
) -> list[dict[str, Tensor]]:
    """Run a detector in eval mode over a dataset; return detections (on the CPU) in dataset order."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).eval()
    if isinstance(data, torch.utils.data.Dataset):
        data = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=_collate)
    out = []
    for batch in data:
        images, _targets, *extra = _to_device(batch, device)
        dets = model(images, proposals=extra[0]) if extra else model(images)
        out.extend(_to_device(d, torch.device("cpu")) for d in dets)
    return out
