"""Checkpoints of the course's detectors, trained by ``scripts/train_checkpoints.py`` (lectures 8–9).

Each model has a torchvision-style ``WeightsEnum`` and a builder, e.g.::

    from cvcourse.detection import SmallFasterRCNNWeights, small_faster_rcnn
    weights = SmallFasterRCNNWeights.SHAPES_V1
    model = small_faster_rcnn(weights=weights).eval()
    detections = model([image])            # list of dicts: boxes (x1, y1, x2, y2), labels, scores

The weights are small float16 state dicts inside the package (``cvcourse/detection/weights/``), so they
install with it and load offline. ``weights.meta`` holds what the checkpoint was trained on and what it
measured:

- ``"image_size"``, ``"dataset_kwargs"``: the :class:`~cvcourse.data.ShapesDetection` arguments
  (``ShapesDetection(n, seed=s, **meta["dataset_kwargs"])`` rebuilds the data);
- ``"recipe"``: optimiser, learning rate, batch size, epochs, number of training images and the
  training ``"train_seed"`` (items ``0..n-1`` of that seed);
- ``"eval_seed"``, ``"eval_images"``: the held-out images the metrics were measured on;
- ``"map50"``, ``"map"`` (mAP@0.5 and mAP@[.5:.95]), for Mask R-CNN ``"mask_iou"`` (mean mask IoU of the
  held-out instances, a missed one counting 0: :func:`~cvcourse.detection.mask_rcnn.instance_mask_iou`) and ``"train_cpu_s"`` (CPU seconds, one thread),
  written by the training script next to the weights (``metrics.json``).

The recipes (:data:`RECIPES`) live here, once: the training script reads them from this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import Weights, WeightsEnum

from cvcourse.data.shapes import SHAPE_CLASSES

WEIGHTS_DIR = Path(__file__).parent / "weights"
METRICS_FILE = WEIGHTS_DIR / "metrics.json"

#: Categories of every checkpoint: index = label (0 is the background).
CATEGORIES = ("background",) + SHAPE_CLASSES

#: Training recipes, one per checkpoint: the data (``dataset_kwargs``), the optimisation and the seeds.
RECIPES: dict[str, dict[str, Any]] = {
    "small_faster_rcnn_shapes_v1": {
        "dataset_kwargs": {"image_size": 64, "background": "plain"},
        "model_kwargs": {"num_classes": len(CATEGORIES), "anchor_sizes": (8.0, 16.0, 32.0)},
        "train_images": 1000, "train_seed": 0, "epochs": 20, "batch_size": 8, "lr": 2e-3,
        "optimizer": "AdamW (weight decay 1e-4), constant lr", "init_seed": 0,
        "eval_images": 300, "eval_seed": 1,
    },
    # Fast R-CNN twice, differing only in the RoI operation (lecture 9 measures RoI pooling against RoI Align)
    "small_fast_rcnn_shapes_v1": {
        "dataset_kwargs": {"image_size": 64, "background": "plain"},
        "model_kwargs": {"num_classes": len(CATEGORIES), "pooler": "pool"},
        "proposals": {"scale": 100, "min_size": 20},
        "train_images": 1000, "train_seed": 0, "epochs": 10, "batch_size": 8, "lr": 2e-3,
        "optimizer": "AdamW (weight decay 1e-4), constant lr", "init_seed": 0,
        "eval_images": 300, "eval_seed": 1,
    },
}
RECIPES["small_fast_rcnn_align_shapes_v1"] = {
    **RECIPES["small_fast_rcnn_shapes_v1"],
    "model_kwargs": {"num_classes": len(CATEGORIES), "pooler": "align"},
}
# Mask R-CNN = the shipped Faster R-CNN (frozen: backbone, RPN and box head keep its weights) + a mask head
# trained on top; twice, differing only in the mask head's RoI operation (lecture 9: RoI Align vs RoI pooling).
# The mask head pools the backbone's stride-4 map (stage 2), as FPN sends small regions to a fine level: the
# objects are 6-20 px, 1-2 cells of the stride-8 map. Only the mask head is stored; the rest is loaded from the
# base checkpoint.
RECIPES["small_mask_rcnn_shapes_v1"] = {
    **RECIPES["small_faster_rcnn_shapes_v1"],
    "model_kwargs": {**RECIPES["small_faster_rcnn_shapes_v1"]["model_kwargs"], "mask_pooler": "align",
                     "mask_feature_layer": 2},
    "base": "SmallFasterRCNNWeights.SHAPES_V1", "trained": "mask head only (detector frozen)",
    "train_images": 1000, "epochs": 5, "batch_size": 8, "lr": 2e-3, "lr_schedule": "cosine",
    "optimizer": "AdamW (weight decay 1e-4), cosine lr decay to 0 over all steps",
}
RECIPES["small_mask_rcnn_pool_shapes_v1"] = {
    **RECIPES["small_mask_rcnn_shapes_v1"],
    "model_kwargs": {**RECIPES["small_mask_rcnn_shapes_v1"]["model_kwargs"], "mask_pooler": "pool"},
}


def _measured(name: str) -> dict[str, Any]:
    """Metrics the training script wrote for checkpoint ``name`` (empty before it has run)."""
    if not METRICS_FILE.exists():
        return {}
    return json.loads(METRICS_FILE.read_text()).get(name, {})


def _meta(name: str) -> dict[str, Any]:
    recipe = RECIPES[name]
    return {
        "file": WEIGHTS_DIR / f"{name}.pt",
        "categories": CATEGORIES,
        "image_size": recipe["dataset_kwargs"]["image_size"],
        "dataset_kwargs": dict(recipe["dataset_kwargs"]),
        "recipe": {k: v for k, v in recipe.items() if k not in ("dataset_kwargs", "eval_images", "eval_seed")},
        "train_seeds": range(recipe["train_seed"], recipe["train_seed"] + 1),
        "eval_seed": recipe["eval_seed"],
        "eval_images": recipe["eval_images"],
        **_measured(name),
    }


class _PackagedWeights(WeightsEnum):
    """Weights stored as a float16 state dict in ``cvcourse/detection/weights/`` (no download)."""

    def get_state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        path = self.meta["file"]
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run scripts/train_checkpoints.py to create it")
        state = torch.load(path, map_location="cpu", weights_only=True)
        return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


class _MaskHeadWeights(_PackagedWeights):
    """A mask head stored alone, on top of the (frozen) detector checkpoint named by ``recipe["base"]``."""

    def get_state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        base = SmallFasterRCNNWeights.verify(self.meta["recipe"]["base"])
        return {**base.get_state_dict(), **super().get_state_dict()}


class SmallFasterRCNNWeights(_PackagedWeights):
    """Weights of :func:`small_faster_rcnn`, trained on 64x64 plain-background shapes (lecture 9)."""

    SHAPES_V1 = Weights(url="", transforms=nn.Identity, meta=_meta("small_faster_rcnn_shapes_v1"))
    DEFAULT = SHAPES_V1


class SmallFastRCNNWeights(_PackagedWeights):
    """Weights of :func:`small_fast_rcnn` (proposals from selective search), same data (lecture 9).

    ``SHAPES_V1`` uses RoI pooling (as the Fast R-CNN paper), ``SHAPES_ALIGN_V1`` RoI Align; nothing else differs.
    """

    SHAPES_V1 = Weights(url="", transforms=nn.Identity, meta=_meta("small_fast_rcnn_shapes_v1"))
    #: the same recipe with RoI Align instead of RoI pooling (one change)
    SHAPES_ALIGN_V1 = Weights(url="", transforms=nn.Identity, meta=_meta("small_fast_rcnn_align_shapes_v1"))
    DEFAULT = SHAPES_V1


class SmallMaskRCNNWeights(_MaskHeadWeights):
    """Weights of :func:`small_mask_rcnn`: the ``SmallFasterRCNNWeights.SHAPES_V1`` detector + a mask head (lecture 9).

    ``SHAPES_V1``'s mask head uses RoI Align (as Mask R-CNN), ``SHAPES_POOL_V1``'s RoI pooling; nothing else differs.
    """

    SHAPES_V1 = Weights(url="", transforms=nn.Identity, meta=_meta("small_mask_rcnn_shapes_v1"))
    #: the same recipe with RoI pooling in the mask head (one change)
    SHAPES_POOL_V1 = Weights(url="", transforms=nn.Identity, meta=_meta("small_mask_rcnn_pool_shapes_v1"))
    DEFAULT = SHAPES_V1


def _build(cls, weights_enum, weights, name: str, **kwargs) -> nn.Module:
    weights = weights_enum.verify(weights)
    if weights is None:
        return cls(**{**RECIPES[name]["model_kwargs"], **kwargs})
    model = cls(**{**RECIPES[weights.meta["file"].stem]["model_kwargs"], **kwargs})
    model.load_state_dict(weights.get_state_dict())
    return model.eval()


def small_faster_rcnn(*, weights: SmallFasterRCNNWeights | str | None = None, **kwargs) -> nn.Module:
    """:class:`~cvcourse.detection.SmallFasterRCNN` with the course's settings, optionally trained (lecture 9).

    Args:
        weights (SmallFasterRCNNWeights or str, optional): e.g. ``SmallFasterRCNNWeights.SHAPES_V1``; ``None``
            gives an untrained model with the same architecture.
        **kwargs: override the model arguments (not allowed to change the architecture when loading weights).

    Returns:
        the model, in eval mode when weights were loaded. ``model(list_of_images)`` with images
        Tensor[3, S, S] in [0, 1] returns one dict per image: ``boxes`` Tensor[D, 4] ``(x1, y1, x2, y2)``,
        ``labels`` Tensor[D] int64 (index into ``weights.meta["categories"]``), ``scores`` Tensor[D].
    """
    from cvcourse.detection.faster_rcnn import SmallFasterRCNN

    return _build(SmallFasterRCNN, SmallFasterRCNNWeights, weights, "small_faster_rcnn_shapes_v1", **kwargs)


def small_fast_rcnn(*, weights: SmallFastRCNNWeights | str | None = None, **kwargs) -> nn.Module:
    """:class:`~cvcourse.detection.SmallFastRCNN` with the course's settings, optionally trained (lecture 9).

    Call it as ``model(images, proposals=...)`` with selective-search proposals
    (``weights.meta["recipe"]["proposals"]`` are the :func:`~cvcourse.detection.selective_search` arguments
    it was trained with). Otherwise as :func:`small_faster_rcnn`.
    """
    from cvcourse.detection.faster_rcnn import SmallFastRCNN

    return _build(SmallFastRCNN, SmallFastRCNNWeights, weights, "small_fast_rcnn_shapes_v1", **kwargs)


def small_mask_rcnn(*, weights: SmallMaskRCNNWeights | str | None = None, **kwargs) -> nn.Module:
    """:class:`~cvcourse.detection.mask_rcnn.SmallMaskRCNN` with the course's settings, optionally trained (lecture 9).

    As :func:`small_faster_rcnn`; each detection dict also holds ``masks`` Tensor[D, 1, S, S], the
    probabilities of the pasted masks (threshold at 0.5).
    """
    from cvcourse.detection.mask_rcnn import SmallMaskRCNN

    return _build(SmallMaskRCNN, SmallMaskRCNNWeights, weights, "small_mask_rcnn_shapes_v1", **kwargs)
