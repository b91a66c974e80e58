"""Train the course's detection checkpoints from fixed seeds (CPU, one thread) and store them in the package.

The recipes are ``cvcourse.detection.pretrained.RECIPES`` (data, model, optimisation, seeds). Each run writes
``cvcourse/detection/weights/<name>.pt`` (a float16 state dict) and merges its measured metrics (mAP@0.5 and
mAP@[.5:.95] on the recipe's held-out images, CPU seconds of training, a coarse loss curve) into
``cvcourse/detection/weights/metrics.json``, which ``weights.meta`` reads.

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python scripts/train_checkpoints.py small_faster_rcnn_shapes_v1

Run time (one thread of a shared 2-core machine, CPU seconds): see ``metrics.json`` (``train_cpu_s``) and
``docs/detector_budget.md``: about 17 CPU-minutes for the Faster R-CNN and 3 for each Fast R-CNN on a
busy shared machine (the Faster R-CNN took about 8 minutes on a less busy one). The two Mask R-CNN mask heads
(``small_mask_rcnn*``, on top of the frozen Faster R-CNN checkpoint, which must exist first) take about 2 CPU-minutes
each and can run in parallel (the metrics file is locked while it is updated).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import time

import torch

from cvcourse.config import seed_everything
from cvcourse.data import ShapesDetection
from cvcourse.detection import (
    SmallFasterRCNN,
    SmallFasterRCNNWeights,
    SmallFastRCNN,
    SmallMaskRCNN,
    WithProposals,
    coco_map,
    instance_mask_iou,
    mean_average_precision,
    predict,
    train_detector,
)
from cvcourse.detection.pretrained import METRICS_FILE, RECIPES, WEIGHTS_DIR

BUILDERS = {"small_faster_rcnn_shapes_v1": SmallFasterRCNN, "small_fast_rcnn_shapes_v1": SmallFastRCNN,
            "small_fast_rcnn_align_shapes_v1": SmallFastRCNN, "small_mask_rcnn_shapes_v1": SmallMaskRCNN,
            "small_mask_rcnn_pool_shapes_v1": SmallMaskRCNN}
CURVE_POINTS = 50  # the loss curve is stored as this many averages


def _data(recipe: dict, n: int, seed: int):
    ds = ShapesDetection(n, seed=seed, **recipe["dataset_kwargs"])
    return WithProposals(ds, **recipe["proposals"]) if "proposals" in recipe else ds


def train(name: str) -> dict:
    recipe = RECIPES[name]
    cpu0 = time.process_time()
    train_ds = _data(recipe, recipe["train_images"], recipe["train_seed"])
    proposal_cpu_s = time.process_time() - cpu0
    seed_everything(recipe["init_seed"])
    model = BUILDERS[name](**recipe["model_kwargs"])
    if "base" in recipe:  # Mask R-CNN: start from the shipped detector, train the mask head only
        model.load_state_dict(SmallFasterRCNNWeights.verify(recipe["base"]).get_state_dict(), strict=False)
        model.freeze_detector()
    cpu0 = time.process_time()
    hist = train_detector(model, train_ds, epochs=recipe["epochs"], lr=recipe["lr"], batch_size=recipe["batch_size"],
                          seed=recipe["init_seed"], progress=False, lr_schedule=recipe.get("lr_schedule", "constant"))
    train_cpu_s = time.process_time() - cpu0
    test_ds = _data(recipe, recipe["eval_images"], recipe["eval_seed"])
    preds = predict(model, test_ds)
    targets = [test_ds[i][1] for i in range(len(test_ds))]
    loss = torch.tensor(hist["loss"])
    chunks = loss[: len(loss) // CURVE_POINTS * CURVE_POINTS].reshape(CURVE_POINTS, -1)
    WEIGHTS_DIR.mkdir(exist_ok=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()
             if "base" not in recipe or k.startswith("mask_head.")}  # a mask head is stored alone
    torch.save(state, WEIGHTS_DIR / f"{name}.pt")
    masks = {"mask_iou": round(instance_mask_iou(preds, targets), 3)} if "masks" in preds[0] else {}
    return {
        "map50": round(mean_average_precision(preds, targets)["map"], 3),
        "map": round(coco_map(preds, targets), 3),
        "map75": round(mean_average_precision(preds, targets, 0.75)["map"], 3),
        **masks,
        "train_cpu_s": round(train_cpu_s), "proposal_cpu_s": round(proposal_cpu_s),
        "steps": len(hist["loss"]),
        "loss_curve": {"step": [(i + 1) * chunks.shape[1] for i in range(CURVE_POINTS)],
                       "loss": [round(float(v), 4) for v in chunks.mean(1)]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(RECIPES), help=f"checkpoints to train (default all: {list(RECIPES)})")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name in args.names:
        row = train(name)
        with open(METRICS_FILE.with_suffix(".lock"), "w") as lock:  # runs in parallel share the file
            fcntl.flock(lock, fcntl.LOCK_EX)
            metrics = json.loads(METRICS_FILE.read_text()) if METRICS_FILE.exists() else {}
            metrics[name] = row
            METRICS_FILE.write_text(json.dumps(metrics, indent=1) + "\n")
        METRICS_FILE.with_suffix(".lock").unlink(missing_ok=True)
        print(name, json.dumps({k: v for k, v in row.items() if k != "loss_curve"}), flush=True)


if __name__ == "__main__":
    main()
