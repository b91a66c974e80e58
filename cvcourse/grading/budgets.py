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

__all__ = ["UNPOOL_UNET", "train_and_score"]

#: The U-Net learning test's budget (read-only). ``threshold`` applies to the held-out mean IoU; the
#: test tries the seeds in order and stops at the first that passes.
UNPOOL_UNET: Mapping[str, Any] = MappingProxyType(
    {
        "image_size": 32,
        "train_images": 512,
        "val_images": 128,
        "epochs": 6,
        "batch_size": 16,
        "lr": 3e-3,
        "base_channels": 8,
        "input_mean": 0.5,
        "input_std": 0.25,
        "threshold": 0.20,
        "seeds": (0, 1),
    }
)


def train_and_score(model: nn.Module, seed: int = 0, budget: Mapping[str, Any] = UNPOOL_UNET) -> float:
    """Train ``model`` with the budget on fine-structure shapes and return its held-out mean IoU.

    Introduced in the ``unpool_unet`` assignment (lecture 7). Training images come from
    ``FineShapesSegmentation(seed=1000 + seed)``, the held-out ones from seed 999, both standardised as
    ``(x - input_mean) / input_std``; Adam, cross-entropy,
    :func:`cvcourse.train.fit` seeded by ``seed``, on the CPU (the grading machine has no GPU).

    Args:
        model: maps ``(B, 3, S, S)`` images to ``(B, 4, S, S)`` logits.
        seed: seeds the training images, the initial shuffling and torch.
        budget: :data:`UNPOOL_UNET` or a modified copy (calibration only).

    Returns:
        Mean IoU over the four classes on the held-out images (:class:`cvcourse.train.MeanIoU`).
    """
    from cvcourse.data import FineShapesSegmentation  # noqa: PLC0415 (keep ``import cvcourse.grading`` light)
    from cvcourse.train import MeanIoU, evaluate, fit  # noqa: PLC0415

    g = budget
    train = FineShapesSegmentation(g["train_images"], image_size=g["image_size"], seed=1000 + seed)
    val = FineShapesSegmentation(g["val_images"], image_size=g["image_size"], seed=999)
    (x_train, y_train), (x_val, y_val) = train.tensors(), val.tensors()  # render every image once
    mean, std = g["input_mean"], g["input_std"]
    train = TensorDataset((x_train - mean) / std, y_train)  # standardised inputs: also a U-Net without norm layers trains
    val = TensorDataset((x_val - mean) / std, y_val)
    fit(model, train, epochs=g["epochs"], lr=g["lr"], batch_size=g["batch_size"], seed=seed, metrics={},
        device="cpu", progress=False)
    metric = MeanIoU(FineShapesSegmentation.num_classes)
    evaluate(model, val, metrics={"miou": metric}, device="cpu")
    return metric.compute()
