"""How far do lecture 9's small detectors get with more training than fast mode allows? (CPU, one thread)

Trains ``SmallFasterRCNN`` with lecture 9's fast-mode data settings (64x64 images, plain backgrounds) on more
images and for more epochs, and reports mAP@0.5 and mAP@[.5:.95] on 300 held-out images after each chosen epoch.
The epochs are run one call to ``train_detector`` at a time (each with its own shuffling seed), so the model after
epoch ``e`` is the one a single ``e``-epoch run with these shuffles would give.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/detector_budget.py --train 1000 --epochs 20 --report 1 3 5 10 20
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from cvcourse.config import seed_everything
from cvcourse.data import ShapesDetection
from cvcourse.detection import SmallFasterRCNN, coco_map, mean_average_precision, predict, train_detector


BATCH = 8  # training batch size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=1000, help="training images")
    ap.add_argument("--test", type=int, default=300, help="held-out images")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--background", default="plain")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--report", type=int, nargs="+", default=[1, 3, 5, 10, 20], help="epochs after which to evaluate")
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()

    size = args.size
    train_ds = ShapesDetection(args.train, image_size=size, seed=0, background=args.background)
    test_ds = ShapesDetection(args.test, image_size=size, seed=1, background=args.background)
    targets = [test_ds[i][1] for i in range(len(test_ds))]
    seed_everything(0)
    model = SmallFasterRCNN(5, anchor_sizes=(size / 8, size / 4, size / 2))
    train_seconds = 0.0
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        train_detector(model, train_ds, epochs=1, lr=args.lr, batch_size=BATCH, seed=epoch, progress=False)
        train_seconds += time.perf_counter() - start
        if epoch in args.report:
            preds = predict(model, test_ds)
            row = {"epoch": epoch, "steps": epoch * -(-args.train // BATCH), "train_s": round(train_seconds, 1),
                   "map50": round(mean_average_precision(preds, targets)["map"], 3),
                   "map": round(coco_map(preds, targets), 3)}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
