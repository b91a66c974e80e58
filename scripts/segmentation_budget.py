"""Lecture 7's segmentation models on more seeds or a longer budget than the notebook (CPU, one thread).

Default: the notebook's own fast-mode experiment (``lecture7_settings()`` with ``CVCOURSE_FAST=1``: the same data,
widths and recipe, trained by ``lecture7_fit``) for several seeds, printing validation mean IoU, boundary IoU and
per-class IoU of each model (one JSON line per model and seed); ``tests/test_lecture_claims.py`` checks the same numbers. ``--epochs``/``--train``
lengthen the run; ``--task shapes`` trains on the older ``ShapesSegmentation`` (blobs told apart by their outline)
to revisit the "skips are slow there" curiosity of ``docs/segmentation_budget.md``.

    CVCOURSE_FAST=1 OMP_NUM_THREADS=1 nice .venv/bin/python scripts/segmentation_budget.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch.utils.data import TensorDataset

from cvcourse.config import seed_everything
from cvcourse.data import FineShapesSegmentation, ShapesSegmentation
from cvcourse.models.segmentation import lecture7_fit, lecture7_models, lecture7_settings
from cvcourse.train import BoundaryIoU, MeanIoU, evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--train", type=int, default=None, help="training images (default: lecture7_settings)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs (default: lecture7_settings)")
    ap.add_argument("--task", default="fine", choices=["fine", "shapes"])
    ap.add_argument("--norm", default=None, choices=["batch", "group", "none"], help="default: lecture7_settings")
    ap.add_argument("--models", nargs="+", default=["FCN", "U-Net without skips", "U-Net"])
    args = ap.parse_args()

    s = lecture7_settings()
    steps = s["epochs"] * math.ceil(s["train_images"] / s["batch_size"])
    s["train_images"] = args.train or s["train_images"]
    s["epochs"] = args.epochs or s["epochs"]
    new_steps = s["epochs"] * math.ceil(s["train_images"] / s["batch_size"])
    s["warmup_steps"] = round(s["warmup_steps"] * new_steps / steps)  # the warm-up keeps its share of the steps
    s["norm"] = args.norm or s["norm"]
    cls = FineShapesSegmentation if args.task == "fine" else ShapesSegmentation
    train = cls(s["train_images"], s["image_size"], seed=s["train_seed"])
    val = cls(s["val_images"], s["image_size"], seed=s["val_seed"])
    train = TensorDataset(*(torch.stack(t) for t in zip(*(train[i] for i in range(len(train))))))
    val = TensorDataset(*(torch.stack(t) for t in zip(*(val[i] for i in range(len(val))))))
    k = cls.num_classes
    for seed in args.seeds:
        seed_everything(seed)
        models = lecture7_models(k, s)
        for name in args.models:
            model = models[name]
            seed_everything(seed)
            start = time.process_time()
            lecture7_fit(model, train, num_classes=k, settings=s, seed=seed, device="cpu", progress=False)
            miou, biou = MeanIoU(k), BoundaryIoU(k, s["boundary_width"])
            evaluate(model, val, metrics={"miou": miou, "biou": biou}, device="cpu")
            print(json.dumps({"task": args.task, "model": name, "seed": seed, "steps": new_steps,
                              "miou": round(miou.compute(), 3), "biou": round(biou.compute(), 3),
                              "iou_per_class": [round(v, 3) for v in miou.per_class().tolist()],
                              "cpu_seconds": round(time.process_time() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
