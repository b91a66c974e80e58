"""Calibrate the mean-IoU threshold of the ``unpool_unet`` assignment's U-Net learning test.

The hidden test trains a student's ``UNet`` with ``train_and_score`` (defined in the locked ``imports`` cell of
``assignments/source/unpool_unet/unpool_unet.ipynb``, with the budget in its ``GRADING`` dict) and
requires a mean IoU of at least ``GRADING["threshold"]``. This script runs *that very function*, taken
from the notebook, on standard U-Net variants a student might write and on broken ones, over several
seeds, and writes the distribution to ``docs/unet_calibration.md``. A fair threshold sits well below the
worst run of every standard variant and above the broken ones.

    .venv/bin/python scripts/calibrate_unet.py --seeds 0 1 2 3 4          # all variants
    .venv/bin/python scripts/calibrate_unet.py --variants batch no_skip --seeds 0 1

Variants: ``batch``/``group``/``none`` are ``cvcourse.models.UNet`` with that norm (transposed-conv
up-sampling); ``upsample`` replaces each transposed convolution by nearest up-sampling + 3x3 conv;
``solution`` is the notebook's own solution; ``no_skip`` is the same U-Net with the skip tensors zeroed
(so it cannot use them); ``fcn`` is ``cvcourse.models.FCN`` (no skips, one 8x up-sampling).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import nbformat
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "assignments/source/unpool_unet/unpool_unet.ipynb"
sys.path.insert(0, str(ROOT))

from cvcourse.config import seed_everything  # noqa: E402
from cvcourse.models.segmentation import FCN, UNet  # noqa: E402


def notebook_namespace(with_solution: bool = False) -> dict:
    """Execute the notebook's setup cell (and optionally its U-Net solution cell) and return the namespace."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    ns: dict = {"__name__": "unpool_unet_notebook"}
    wanted = {"imports"} | ({"unet"} if with_solution else set())
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and gid in wanted:
            exec(compile(cell.source, f"<notebook cell {gid}>", "exec"), ns)  # noqa: S102 (our own notebook)
    return ns


class _UpConv(nn.Module):
    """Nearest 2x up-sampling followed by a 3x3 convolution (the transposed conv's common substitute)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.out_channels = c_out

    def forward(self, x):
        return self.conv(self.up(x))


def upsample_unet(in_channels, num_classes, base_channels, depth):
    model = UNet(in_channels, num_classes, base_channels, depth, norm="batch")
    for step in model.decoder:
        step.up = _UpConv(step.up.in_channels, step.up.out_channels)
    return model


def build(variant: str, ns: dict, base: int) -> nn.Module:
    if variant in ("batch", "group", "none"):
        return UNet(3, 5, base, 3, norm=variant)
    if variant == "upsample":
        return upsample_unet(3, 5, base, 3)
    if variant == "solution":
        return ns["UNet"](in_channels=3, num_classes=5, base_channels=base, depth=3)
    if variant == "no_skip":
        return UNet(3, 5, base, 3, skips=False)
    if variant == "fcn":
        return FCN(3, 5, base)
    raise ValueError(f"unknown variant {variant!r}")


VARIANTS = ("batch", "group", "none", "upsample", "solution", "no_skip", "fcn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=None, help="override GRADING['epochs'] (exploration only)")
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per run to this file")
    args = parser.parse_args()

    ns = notebook_namespace(with_solution=True)
    grading = ns["GRADING"]
    base = grading["base_channels"]
    print(f"GRADING = {grading}; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    results: dict[str, list[float]] = {}
    for variant in args.variants:
        for seed in args.seeds:
            t0 = time.perf_counter()
            grading = dict(ns["GRADING"], epochs=args.epochs or ns["GRADING"]["epochs"])
            seed_everything(seed)
            model = build(variant, ns, base)
            miou = ns["train_and_score"](model, seed=seed, GRADING=grading)
            dt = time.perf_counter() - t0
            results.setdefault(variant, []).append(miou)
            print(f"{variant:9s} seed {seed}: mIoU {miou:.3f}  ({dt:.1f} s)", flush=True)
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps({"variant": variant, "seed": seed, "miou": miou, "seconds": dt,
                                        "grading": grading}) + "\n")
    print("\n| variant | runs | min | median | max |\n|---|---|---|---|---|")
    for variant, vals in results.items():
        print(f"| {variant} | {len(vals)} | {min(vals):.3f} | {statistics.median(vals):.3f} | {max(vals):.3f} |")


if __name__ == "__main__":
    main()
