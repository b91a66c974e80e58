"""Headline claims of the lectures, checked on the settings the notebooks use.

One function per claim, named ``test_lNN_<claim>`` (NN = lecture number). Each test builds its data,
models and training budget from the same library function as the notebook (e.g.
:func:`cvcourse.models.segmentation.lecture7_settings`), in fast mode, so a change that breaks what a
lecture teaches fails here. Costly: run one lecture's claims with ``-k l07``.
"""

from __future__ import annotations

import functools

import pytest
import torch

pytestmark = pytest.mark.slow

# ------------------------------------------------------------------------- lecture 7: segmentation

L07_SEEDS = (0, 1, 2)


@functools.lru_cache(maxsize=None)
def _l07_scores(seed: int) -> dict[str, dict[str, float]]:
    """Train lecture 7's three models as the notebook does (fast-mode settings) and score them on its validation set."""
    from torch.utils.data import TensorDataset

    from cvcourse import config
    from cvcourse.data import FineShapesSegmentation
    from cvcourse.models.segmentation import lecture7_models, lecture7_settings
    from cvcourse.train import BoundaryIoU, MeanIoU, evaluate, fit

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CVCOURSE_FAST", "1")
        s = lecture7_settings()
    train = FineShapesSegmentation(s["train_images"], s["image_size"], seed=s["train_seed"])
    val = FineShapesSegmentation(s["val_images"], s["image_size"], seed=s["val_seed"])
    train, val = TensorDataset(*train.tensors()), TensorDataset(*val.tensors())
    config.seed_everything(seed)
    models = lecture7_models(FineShapesSegmentation.num_classes, s)
    scores = {}
    for name, model in models.items():
        config.seed_everything(seed)
        fit(model, train, epochs=s["epochs"], lr=s["lr"], batch_size=s["batch_size"], seed=seed, metrics={},
            device="cpu", progress=False)
        miou, biou = MeanIoU(FineShapesSegmentation.num_classes), BoundaryIoU(FineShapesSegmentation.num_classes,
                                                                               s["boundary_width"])
        evaluate(model, val, metrics={"miou": miou, "biou": biou}, device="cpu")
        scores[name] = {"miou": miou.compute(), "biou": biou.compute(), "wire_iou": float(miou.per_class()[2])}
    print(f"l07 seed {seed}:", {n: {k: round(v, 3) for k, v in d.items()} for n, d in scores.items()})  # pytest -s
    return scores


@pytest.mark.parametrize("seed", L07_SEEDS)
def test_l07_skips_win_on_boundary_iou(seed):
    """The U-Net with skips beats the FCN and the U-Net without skips on boundary IoU by a clear margin."""
    s = _l07_scores(seed)
    unet = s["U-Net"]["biou"]
    for other in ("FCN", "U-Net without skips"):
        assert unet >= s[other]["biou"] + 0.1, (seed, s)


@pytest.mark.parametrize("seed", L07_SEEDS)
def test_l07_coarse_models_blur_thin_structures(seed):
    """Without skips (FCN, U-Net without skips) the 2-3 px wires are lost: their IoU stays far below the U-Net's."""
    s = _l07_scores(seed)
    for other in ("FCN", "U-Net without skips"):
        assert s[other]["wire_iou"] <= s["U-Net"]["wire_iou"] - 0.15, (seed, s)


@pytest.mark.parametrize("seed", L07_SEEDS)
def test_l07_boundary_iou_is_harsher_than_mean_iou(seed):
    """For the blurring models, boundary IoU is well below mean IoU: the error sits at the edges."""
    s = _l07_scores(seed)
    for other in ("FCN", "U-Net without skips"):
        assert s[other]["biou"] <= s[other]["miou"] - 0.1, (seed, s)
