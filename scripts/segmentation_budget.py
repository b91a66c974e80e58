"""How far do lecture 7's segmentation models get with more training than fast mode allows? (CPU, one thread)

Trains the lecture's three models (FCN, U-Net with its skip tensors replaced by zeros, U-Net) with the fast-mode
width (``base_channels=8``) on more 64x64 shapes images and for more epochs, and prints the validation mean IoU
after every epoch (one JSON line per model).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/segmentation_budget.py --train 2000 --epochs 8
"""

from __future__ import annotations

import argparse
import json
import time

from cvcourse.config import seed_everything
from cvcourse.data import ShapesSegmentation
from cvcourse.models.segmentation import FCN, UNet
from cvcourse.train import MeanIoU, fit


BATCH = 16  # training batch size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--val", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--norm", default="batch", choices=["batch", "group", "none"], help="U-Net normalisation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", nargs="+", default=["FCN", "U-Net without skips", "U-Net"])
    args = ap.parse_args()

    train_set = ShapesSegmentation(args.train, image_size=64, seed=0)
    val_set = ShapesSegmentation(args.val, image_size=64, seed=1)
    num_classes = 5
    models = {
        "FCN": lambda: FCN(3, num_classes, base_channels=args.base),
        "U-Net without skips": lambda: UNet(3, num_classes, base_channels=args.base, depth=3, norm=args.norm, skips=False),
        "U-Net": lambda: UNet(3, num_classes, base_channels=args.base, depth=3, norm=args.norm),
    }
    for name in args.models:
        seed_everything(args.seed)
        model = models[name]()
        start = time.perf_counter()
        history = fit(model, train_set, val_set, epochs=args.epochs, lr=args.lr, batch_size=BATCH,
                      metrics={"miou": MeanIoU(num_classes)}, seed=args.seed, progress=False)
        print(json.dumps({"model": name, "steps_per_epoch": -(-args.train // BATCH),
                          "val_miou": [round(v, 3) for v in history["val_miou"]],
                          "seconds": round(time.perf_counter() - start)}), flush=True)


if __name__ == "__main__":
    main()
