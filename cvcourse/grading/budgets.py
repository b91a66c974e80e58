"""Training budgets of the graded learning tests: one place that the notebook, its hidden test and the
calibration script all import, so the budget a student tries and the one that grades cannot drift.

* :data:`UNPOOL_UNET` and :func:`train_and_score` — the U-Net learning test of ``unpool_unet``
  (lecture 7's :class:`cvcourse.data.FineShapesSegmentation`; calibrated by ``scripts/calibrate_unet.py``,
  numbers in ``docs/unet_calibration.md``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.data import TensorDataset

from cvcourse.train import lr_factor  # re-exported: the schedule lives with the training loop

__all__ = ["UNPOOL_UNET", "check_logits_shape", "lr_factor", "train_and_score"]

#: The U-Net learning test's budget (read-only). ``threshold`` applies to the score of
#: :func:`train_and_score`: the mean IoU of the localisation-limited classes ``score_classes`` (wire, dot) on
#: held-out images. The test tries the seeds in order and stops at the first that passes. The 16 epochs at a peak
#: rate of 0.005, warmed up over 200 steps and decayed along a cosine (per optimiser step, :func:`lr_factor`), are
#: what a U-Net without normalisation (as in the paper) needs to draw the wires and dots well; a U-Net without its
#: skips gains much less from the same steps (``docs/unet_calibration.md``, "What was tried").
UNPOOL_UNET: Mapping[str, Any] = MappingProxyType(
    {
        "image_size": 32,
        "train_images": 512,
        "val_images": 128,
        "epochs": 16,
        "batch_size": 8,
        "lr": 5e-3,
        "warmup_steps": 200,
        "lr_schedule": "cosine",
        "base_channels": 8,
        "input_mean": 0.5,
        "input_std": 0.25,
        "class_weighting": "inverse_frequency",
        "score_classes": (2, 3),
        "threshold": 0.22,
        "seeds": (0, 1),
    }
)


def check_logits_shape(model: nn.Module, num_classes: int, image_size: int, in_channels: int = 3) -> None:
    """Raise ``ValueError`` unless ``model`` maps ``(2, in_channels, S, S)`` images to ``(2, num_classes, S, S)`` logits.

    The learning test's precondition: a network whose last block's features are used as logits (no final 1x1
    convolution to ``num_classes`` channels) would otherwise be trained on its first channels as if they were
    the classes.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, in_channels, image_size, image_size))
    finally:
        model.train(was_training)
    want = (2, num_classes, image_size, image_size)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"the model must map images (2, {in_channels}, {image_size}, {image_size}) to class logits {want}, got {got}; "
            "a U-Net ends with a 1x1 convolution to num_classes channels"
        )


def train_and_score(model: nn.Module, seed: int = 0, budget: Mapping[str, Any] = UNPOOL_UNET) -> float:
    """Train ``model`` with the budget on fine-structure shapes and return its held-out wire-and-dot mean IoU.

    Introduced in the ``unpool_unet`` assignment (lecture 7). Training images come from
    ``FineShapesSegmentation(seed=1000 + seed)``, the held-out ones from seed 999, both standardised as
    ``(x - input_mean) / input_std``. The loss is cross-entropy with class weights inversely proportional to the classes' pixel frequencies in
    the training set (``class_weighting``, :func:`cvcourse.losses.inverse_frequency_weights`; the U-Net paper balances class frequencies with a weight map too);
    Adam at peak rate ``lr`` with a linear warm-up over ``warmup_steps`` steps, then ``lr_schedule`` (cosine
    decay to 0 over the remaining steps; :func:`lr_factor`), :func:`cvcourse.train.fit` seeded by ``seed``, on
    the CPU (the grading machine has no GPU): the recipe lecture 7 trains with,
    :func:`cvcourse.models.segmentation.lecture7_fit`, here with this budget's settings.

    The score is the mean IoU (:class:`cvcourse.train.MeanIoU`, summed counts) of the classes
    ``score_classes``, the 2-3 px wires and the 3-5 px dots: the classes that only a network that keeps the
    fine detail gets right, so a U-Net without its skip connections scores low on them, and a network that
    predicts background everywhere scores 0.

    Args:
        model: maps ``(B, 3, S, S)`` images to ``(B, 4, S, S)`` logits (checked first by
            :func:`check_logits_shape`).
        seed: seeds the training images and the shuffling (seed torch before building the model).
        budget: :data:`UNPOOL_UNET` or a modified copy (calibration only).

    Returns:
        The mean IoU of the ``score_classes`` on the held-out images.

    Raises:
        ValueError: if the model's output is not ``(B, 4, S, S)``.
    """
    from cvcourse.data import FineShapesSegmentation  # noqa: PLC0415 (keep ``import cvcourse.grading`` light)
    from cvcourse.models.segmentation import lecture7_fit  # noqa: PLC0415
    from cvcourse.train import MeanIoU, evaluate  # noqa: PLC0415

    g = budget
    num_classes = FineShapesSegmentation.num_classes
    check_logits_shape(model, num_classes, g["image_size"])
    train = FineShapesSegmentation(g["train_images"], image_size=g["image_size"], seed=1000 + seed)
    val = FineShapesSegmentation(g["val_images"], image_size=g["image_size"], seed=999)
    (x_train, y_train), (x_val, y_val) = train.tensors(), val.tensors()  # render every image once
    mean, std = g["input_mean"], g["input_std"]
    train = TensorDataset((x_train - mean) / std, y_train)
    val = TensorDataset((x_val - mean) / std, y_val)
    # lecture 7's recipe (class-weighted cross-entropy, Adam, warm-up + schedule per step): one definition
    lecture7_fit(model, train, num_classes=num_classes, settings=g, seed=seed, device="cpu", progress=False)
    metric = MeanIoU(num_classes)
    evaluate(model, val, metrics={"miou": metric}, device="cpu")
    return float(metric.per_class()[list(g["score_classes"])].mean())
