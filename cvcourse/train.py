"""A small, readable training loop and the metrics the course reports.

Introduced in the first CNN lecture and reused by every lecture that trains a model (activations,
normalisation, transfer learning, segmentation).

Letters: B = batch size, C = number of classes, H, W = height and width of a segmentation map.

``fit`` and ``evaluate`` work for classification (logits ``(B, C)``, targets ``(B,)``) and for semantic
segmentation (logits ``(B, C, H, W)``, targets ``(B, H, W)``) with the same cross-entropy default. A
metric is either a function ``f(logits, targets) -> float`` (averaged over batches, weighted by batch
size) or an object with ``reset()``, ``update(logits, targets)`` and ``compute() -> float`` such as
:class:`MeanIoU` (exact over the whole data set).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from cvcourse import config

logger = logging.getLogger(__name__)

Metric = Any  # Callable[[Tensor, Tensor], float] or an object with reset/update/compute


class History(dict):
    """Per-epoch records of a :func:`fit` run: a ``dict`` of lists.

    Keys: ``"train_loss"``, ``"train_<metric>"``, and, with validation data, ``"val_loss"`` and
    ``"val_<metric>"``; ``"epoch_time"`` (seconds) and ``"lr"`` (learning rate at the end of each epoch).
    Attribute access works too: ``history.val_acc``.
    """

    def __getattr__(self, name: str) -> list[float]:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def epochs(self) -> int:
        """Number of completed epochs."""
        return len(self.get("train_loss", []))

    def best(self, key: str = "val_loss", mode: str = "min") -> tuple[int, float]:
        """``(epoch index, value)`` of the best value of ``key`` (``mode`` "min" or "max")."""
        values = self[key]
        pick = min if mode == "min" else max
        i = values.index(pick(values))
        return i, values[i]


# --------------------------------------------------------------------------------------------- metrics


def accuracy(logits: Tensor, targets: Tensor) -> float:
    """Fraction of correct arg-max predictions.

    Args:
        logits (Tensor[B, C] or Tensor[B, C, H, W]): scores.
        targets (Tensor[B] or Tensor[B, H, W]): class indices (pixel accuracy for segmentation).

    Returns:
        float in [0, 1].
    """
    pred = logits.argmax(dim=1)
    if pred.shape != targets.shape:
        raise ValueError(
            f"logits (B, C, ...) must match targets (B, ...) once the class dim is removed; "
            f"got logits {tuple(logits.shape)} and targets {tuple(targets.shape)}"
        )
    if targets.numel() == 0:
        return float("nan")
    return (pred == targets).float().mean().item()


def confusion_matrix(pred: Tensor, targets: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """Confusion matrix of integer predictions, vectorised with ``bincount``.

    Args:
        pred (Tensor[...]): predicted class indices.
        targets (Tensor[...]): true class indices, same shape.
        num_classes: ``C``.
        ignore_index: target value to skip (e.g. 255 for "void" pixels), or None.

    Returns:
        Tensor[C, C] int64; row = true class, column = predicted class.
    """
    if pred.shape != targets.shape:
        raise ValueError(f"pred and targets must have the same shape, got {tuple(pred.shape)} and {tuple(targets.shape)}")
    pred, targets = pred.reshape(-1).long(), targets.reshape(-1).long()  # (...) -> (N,)
    keep = (targets >= 0) & (targets < num_classes)
    if ignore_index is not None:
        keep &= targets != ignore_index
    pred, targets = pred[keep], targets[keep]
    flat = targets * num_classes + pred.clamp(0, num_classes - 1)
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)  # (C*C,) -> (C, C)


def iou_per_class(confusion: Tensor) -> Tensor:
    """Per-class IoU ``TP / (TP + FP + FN)`` from a confusion matrix; NaN for classes never seen nor predicted.

    Args:
        confusion (Tensor[C, C]): rows = true class, columns = predicted class.

    Returns:
        Tensor[C] float64.
    """
    confusion = confusion.double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(logits: Tensor, targets: Tensor, num_classes: int | None = None, ignore_index: int | None = None) -> float:
    """Mean intersection over union of a segmentation batch (classes absent from both sides are skipped).

    Introduced in the segmentation lecture. For an exact value over a whole data set use
    :class:`MeanIoU` (IoU of summed counts, not the mean of per-batch IoUs).

    Args:
        logits (Tensor[B, C, H, W]): scores (or Tensor[B, H, W] of predicted class indices).
        targets (Tensor[B, H, W]): class indices.
        num_classes: ``C`` (default: ``logits.shape[1]``).
        ignore_index: target value to skip, or None.

    Returns:
        float in [0, 1].
    """
    pred = logits.argmax(dim=1) if logits.dim() == targets.dim() + 1 else logits
    if num_classes is None:
        if logits.dim() != targets.dim() + 1:
            raise ValueError("num_classes is required when passing predicted class indices instead of logits")
        num_classes = logits.shape[1]
    iou = iou_per_class(confusion_matrix(pred, targets, num_classes, ignore_index))
    return float(iou.nanmean()) if bool((~iou.isnan()).any()) else float("nan")


miou = mean_iou


class MeanIoU:
    """Data-set-level mean IoU for :func:`fit` / :func:`evaluate`: accumulates a confusion matrix.

    >>> fit(model, train, val, metrics={"acc": accuracy, "miou": MeanIoU(5)})
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def update(self, logits: Tensor, targets: Tensor) -> None:
        pred = logits.argmax(dim=1)
        self.confusion += confusion_matrix(pred, targets, self.num_classes, self.ignore_index).cpu()

    def per_class(self) -> Tensor:
        """IoU of every class from the accumulated confusion matrix, Tensor[C] float64 (see :func:`iou_per_class`)."""
        return iou_per_class(self.confusion)

    def compute(self) -> float:
        iou = self.per_class()
        return float(iou.nanmean()) if bool((~iou.isnan()).any()) else float("nan")

    def __call__(self, logits: Tensor, targets: Tensor) -> float:
        return mean_iou(logits, targets, self.num_classes, self.ignore_index)


def boundary_band(masks: Tensor, width: int = 2) -> Tensor:
    """The inner boundary band of binary masks: pixels of a mask within ``width`` px of a pixel outside it.

    Introduced in lecture 7 for :class:`BoundaryIoU`. Distance is the chessboard distance (a
    ``(2 width + 1)``-square neighbourhood, i.e. ``width`` erosions by a 3x3 square); the image border is
    not an edge (the mask is extended by replication), so a mask that fills the image has no band.

    Args:
        masks (Tensor[..., H, W]): bool (or 0/1) masks.
        width: band width in pixels, >= 1.

    Returns:
        Tensor[..., H, W] bool, a subset of ``masks``.
    """
    if int(width) != width or width < 1:
        raise ValueError(f"width must be an integer >= 1 (pixels), got {width!r}")
    if masks.dim() < 2:
        raise ValueError(f"masks must have shape (..., H, W), got {tuple(masks.shape)}")
    width = int(width)
    m = masks.bool()
    flat = (~m).reshape(-1, 1, *m.shape[-2:]).float()  # (N, 1, H, W): 1 outside the mask
    padded = nn.functional.pad(flat, (width,) * 4, mode="replicate")
    near_outside = nn.functional.max_pool2d(padded, 2 * width + 1, stride=1) > 0.5  # dilation of the outside
    return m & near_outside.reshape(m.shape)


class BoundaryIoU:
    """Data-set-level boundary IoU (Cheng et al., 2021) per class and its mean, for :func:`fit` / :func:`evaluate`.

    Introduced in lecture 7. Mean IoU counts every pixel of a large region, so it barely notices a
    blurred outline; boundary IoU only looks at the pixels near an edge. For class ``c``, let ``G`` be
    the :func:`boundary_band` of the true mask of ``c`` and ``P`` that of the predicted mask; the
    metric accumulates ``|G & P|`` and ``|G | P|`` over the data set and reports their ratio, averaged
    over the classes with a non-empty union (as :class:`MeanIoU`). A thin structure (at most
    ``2 width + 1`` px across) is all band, so its boundary IoU is its IoU.

    Args:
        num_classes: ``C``.
        width: band width ``d`` in pixels (Cheng et al. use 2 % of the image diagonal; 2 px suits 64 px images).
        ignore_index: target value whose pixels are left out of both masks, or None.

    >>> fit(model, train, val, metrics={"miou": MeanIoU(4), "biou": BoundaryIoU(4)})
    """

    def __init__(self, num_classes: int, width: int = 2, ignore_index: int | None = None) -> None:
        self.num_classes = int(num_classes)
        self.width = int(width)
        self.ignore_index = ignore_index
        boundary_band(torch.zeros(1, 1, dtype=torch.bool), self.width)  # fail early on a bad width
        self.reset()

    def reset(self) -> None:
        self.intersection = torch.zeros(self.num_classes, dtype=torch.int64)
        self.union = torch.zeros(self.num_classes, dtype=torch.int64)

    def update(self, logits: Tensor, targets: Tensor) -> None:
        """Add a batch: logits Tensor[B, C, H, W] (or predicted indices Tensor[B, H, W]), targets Tensor[B, H, W]."""
        pred = logits.argmax(dim=1) if logits.dim() == targets.dim() + 1 else logits
        if pred.shape != targets.shape or targets.dim() != 3:
            raise ValueError(
                f"BoundaryIoU needs logits (B, C, H, W) or predictions (B, H, W) and targets (B, H, W); "
                f"got {tuple(logits.shape)} and {tuple(targets.shape)}"
            )
        classes = torch.arange(self.num_classes, device=targets.device)[:, None, None, None]  # (C, 1, 1, 1)
        true_band = boundary_band(targets[None] == classes, self.width)  # (C, B, H, W)
        pred_band = boundary_band(pred[None] == classes, self.width)
        if self.ignore_index is not None:
            keep = targets != self.ignore_index
            true_band, pred_band = true_band & keep, pred_band & keep
        self.intersection += (true_band & pred_band).sum(dim=(1, 2, 3)).cpu()
        self.union += (true_band | pred_band).sum(dim=(1, 2, 3)).cpu()

    def per_class(self) -> Tensor:
        """Boundary IoU of every class, Tensor[C] float64 (NaN where neither truth nor prediction has a band)."""
        union = self.union.double()
        return torch.where(union > 0, self.intersection.double() / union.clamp(min=1), torch.full_like(union, float("nan")))

    def compute(self) -> float:
        iou = self.per_class()
        return float(iou.nanmean()) if bool((~iou.isnan()).any()) else float("nan")


def _is_stateful(metric: Metric) -> bool:
    return all(hasattr(metric, a) for a in ("reset", "update", "compute"))


# ------------------------------------------------------------------------------------------- the loop


def _loader(data: Dataset | DataLoader | Iterable, batch_size: int, shuffle: bool, seed: int,
            collate_fn: Callable | None = None) -> Iterable:
    if isinstance(data, DataLoader) or not isinstance(data, Dataset):
        return data
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=collate_fn)


def _to_device(obj: Any, dev: torch.device) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(dev, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, dev) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, dev) for v in obj)
    return obj


def _amp_dtype(amp: bool | str, dev: torch.device) -> torch.dtype | None:
    """The autocast dtype to use, or None for full precision (always None off CUDA)."""
    if not amp or dev.type != "cuda":
        return None
    if amp in (True, "bf16", "bfloat16"):
        if amp is True and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    if amp in ("fp16", "float16"):
        return torch.float16
    raise ValueError(f"amp must be False, True, 'bf16' or 'fp16', got {amp!r}")


def _run_epoch(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    metrics: Mapping[str, Metric],
    dev: torch.device,
    *,
    optimizer: torch.optim.Optimizer | None,
    scaler: Any,
    amp_dtype: torch.dtype | None,
    progress: bool,
    desc: str,
    step_fn: Callable[[nn.Module, Any], Tensor | Mapping[str, Tensor]] | None = None,
    on_step: Callable[[dict[str, float]], None] | None = None,
    step_scheduler: Any = None,
) -> dict[str, float]:
    """One pass over ``loader``; trains when an optimizer is given, else evaluates without gradients.

    With ``step_fn`` the batch is handed over whole and ``step_fn(model, batch)`` returns the loss (a scalar
    or a dict of terms, summed); ``on_step`` receives each step's terms and ``step_scheduler`` is stepped
    after every optimiser step.
    """
    from tqdm.auto import tqdm

    training = optimizer is not None
    model.train(training)
    for m in metrics.values():
        if _is_stateful(m):
            m.reset()
    total, loss_sum = 0, 0.0
    sums = {name: 0.0 for name in metrics}
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress)
    grad = torch.enable_grad() if training else torch.no_grad()
    with grad:
        for batch in bar:
            batch = _to_device(batch, dev)
            autocast = (
                torch.autocast(device_type="cuda", dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
            )
            with autocast:
                if step_fn is not None:
                    terms = step_fn(model, batch)
                    terms = dict(terms) if isinstance(terms, Mapping) else {"loss": terms}
                    loss = sum(terms.values())
                else:
                    inputs, targets = batch
                    logits = model(inputs)
                    loss = loss_fn(logits, targets)
            if training:
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                if step_scheduler is not None:
                    step_scheduler.step()
            if step_fn is not None:
                n = len(batch[0])
                total += n
                loss_sum += loss.item() * n
                if on_step is not None:
                    on_step({**{k: float(v.detach()) for k, v in terms.items()}, "loss": float(loss.detach())})
                bar.set_postfix(loss=f"{loss_sum / total:.4f}")
                continue
            n = len(targets)
            total += n
            loss_sum += loss.item() * n
            logits = logits.detach().float()
            for name, m in metrics.items():
                if _is_stateful(m):
                    m.update(logits, targets)
                else:
                    sums[name] += float(m(logits, targets)) * n
            bar.set_postfix(loss=f"{loss_sum / total:.4f}")
    if total == 0:
        raise ValueError(f"{desc}: the data is empty (0 batches)")
    out = {"loss": loss_sum / total}
    for name, m in metrics.items():
        out[name] = float(m.compute()) if _is_stateful(m) else sums[name] / total
    return out


def lr_factor(step: int, steps: int, warmup_steps: int = 0, schedule: str = "constant") -> float:
    """The learning rate of optimiser step ``step`` (0-based, of ``steps``) as a fraction of the peak rate.

    Introduced in lecture 7 (and the ``unpool_unet`` learning test); use it per step with :func:`fit`:
    ``LambdaLR(optimizer, lambda s: lr_factor(s, steps, warmup_steps, "cosine"))`` and
    ``scheduler_interval="step"``.

    A linear warm-up over the first ``warmup_steps`` steps (``(step + 1) / warmup_steps``), then ``schedule``:
    ``"constant"`` (1) or ``"cosine"`` (half a cosine from 1 down to 0 over the remaining steps).
    """
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    if not 0 <= warmup_steps <= steps:
        raise ValueError(f"warmup_steps must be in [0, steps={steps}], got {warmup_steps}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup_steps) / max(1, steps - warmup_steps)))


def fit(
    model: nn.Module,
    train_data: Dataset | DataLoader,
    val_data: Dataset | DataLoader | None = None,
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    metrics: Mapping[str, Metric] | None = None,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    amp: bool | str = False,
    seed: int = 0,
    scheduler: Any = None,
    progress: bool = True,
    step_fn: Callable[[nn.Module, Any], Tensor | Mapping[str, Tensor]] | None = None,
    on_step: Callable[[dict[str, float]], None] | None = None,
    scheduler_interval: str = "epoch",
    collate_fn: Callable | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs and record loss and metrics after each.

    Introduced in the first CNN lecture. The loop is the textbook one: forward, loss, ``zero_grad``,
    backward, step; then, with ``val_data``, an evaluation pass under ``torch.no_grad()``.

    Args:
        model: any ``nn.Module`` mapping a batch of inputs to logits ``(B, C)`` or ``(B, C, H, W)``.
        train_data: a ``Dataset`` (wrapped in a shuffling ``DataLoader`` seeded by ``seed``) or a
            ``DataLoader`` / iterable of ``(inputs, targets)`` batches, used as is.
        val_data: same, evaluated after every epoch (never shuffled), or None.
        epochs: number of passes over ``train_data``.
        lr: learning rate of the default optimizer (Adam) when ``optimizer`` is None.
        optimizer: an optimizer over ``model``'s parameters, or None for ``Adam(lr=lr)``.
        loss_fn: ``loss_fn(logits, targets) -> scalar``; default ``nn.functional.cross_entropy``
            (works for classification and segmentation alike).
        metrics: ``{name: metric}``; default ``{"acc": accuracy}``. See the module docstring.
        batch_size: batch size when a ``Dataset`` is given.
        device: default :func:`cvcourse.config.device` (CUDA, then MPS, then CPU). The model is moved there.
        amp: mixed precision on CUDA: ``True`` (bfloat16 where supported, else float16), ``"bf16"`` or
            ``"fp16"`` (the latter with a ``GradScaler``). Ignored (full precision) on other devices.
        seed: seeds ``torch`` and the shuffling order. Seed before building the model too
            (:func:`cvcourse.config.seed_everything`) for a fully reproducible run.
        scheduler: a learning-rate scheduler, stepped once per epoch (after validation); a
            ``ReduceLROnPlateau`` is given the validation loss (or the training loss).
        progress: show ``tqdm`` progress bars (one per run, one per epoch); False is silent.
        step_fn: for models that compute their own losses (the detectors of lecture 9): called as
            ``step_fn(model, batch)`` with the whole batch (on ``device``), it returns a scalar loss or a
            dict of loss terms, which are summed. ``loss_fn`` and ``metrics`` are then not used (metrics
            default to none) and ``val_data`` must be None.
        on_step: called after every training step with that step's loss terms as floats (plus ``"loss"``,
            their sum), e.g. to record a per-step loss curve.
        scheduler_interval: ``"epoch"`` (default) or ``"step"``: step ``scheduler`` after every optimiser
            step instead (e.g. a cosine schedule over all steps).
        collate_fn: passed to the ``DataLoader`` built from a ``Dataset`` (e.g. to keep detection
            targets as lists).

    Returns:
        :class:`History` with one value per epoch for every key. The model is left in **eval mode**
        on ``device``.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    from tqdm.auto import tqdm

    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
    if step_fn is not None and val_data is not None:
        raise ValueError("val_data is not supported with step_fn (the model computes its own losses); "
                         "evaluate the model separately")
    if step_fn is not None and metrics:
        raise ValueError("metrics are not supported with step_fn (there are no logits to score)")
    dev = torch.device(device) if device is not None else config.device()
    torch.manual_seed(seed)
    model.to(dev)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = loss_fn if loss_fn is not None else nn.functional.cross_entropy
    metrics = dict(metrics) if metrics is not None else ({} if step_fn is not None else {"acc": accuracy})
    amp_dtype = _amp_dtype(amp, dev)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    train_loader = _loader(train_data, batch_size, shuffle=True, seed=seed, collate_fn=collate_fn)
    val_loader = _loader(val_data, batch_size, shuffle=False, seed=seed) if val_data is not None else None
    step_scheduler = scheduler if scheduler_interval == "step" else None

    history = History()
    bar = tqdm(range(epochs), desc="epochs", disable=not progress)
    for epoch in bar:
        start = time.perf_counter()
        kw = dict(scaler=scaler, amp_dtype=amp_dtype, progress=progress)
        train = _run_epoch(model, train_loader, loss_fn, metrics, dev, optimizer=optimizer, desc=f"train {epoch + 1}",
                           step_fn=step_fn, on_step=on_step, step_scheduler=step_scheduler, **kw)
        results = {f"train_{k}": v for k, v in train.items()}
        if val_loader is not None:
            val = _run_epoch(model, val_loader, loss_fn, metrics, dev, optimizer=None, desc=f"val {epoch + 1}", **kw)
            results.update({f"val_{k}": v for k, v in val.items()})
        if scheduler is not None and step_scheduler is None:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(results.get("val_loss", results["train_loss"]))
            else:
                scheduler.step()
        results["epoch_time"] = time.perf_counter() - start
        results["lr"] = float(optimizer.param_groups[0]["lr"])
        for k, v in results.items():
            history.setdefault(k, []).append(v)
        bar.set_postfix({k: f"{v:.3g}" for k, v in results.items() if k not in ("epoch_time", "lr")})
        logger.info("epoch %d: %s", epoch + 1, results)
    model.eval()
    return history


def evaluate(
    model: nn.Module,
    data: Dataset | DataLoader,
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    metrics: Mapping[str, Metric] | None = None,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Average loss and metrics of ``model`` on ``data``, without gradients, in eval mode.

    Args: as :func:`fit`.

    Returns:
        ``{"loss": ..., "<metric>": ...}``. The model is left in eval mode on ``device``.
    """
    dev = torch.device(device) if device is not None else config.device()
    model.to(dev)
    loss_fn = loss_fn if loss_fn is not None else nn.functional.cross_entropy
    metrics = dict(metrics) if metrics is not None else {"acc": accuracy}
    loader = _loader(data, batch_size, shuffle=False, seed=0)
    out = _run_epoch(
        model, loader, loss_fn, metrics, dev, optimizer=None, scaler=None, amp_dtype=None, progress=progress, desc="eval"
    )
    model.eval()
    return out


__all__ = [
    "BoundaryIoU",
    "History",
    "MeanIoU",
    "accuracy",
    "boundary_band",
    "confusion_matrix",
    "evaluate",
    "fit",
    "iou_per_class",
    "lr_factor",
    "mean_iou",
    "miou",
]
