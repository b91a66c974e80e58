"""Tests of cvcourse.train: the fit/evaluate loop and the metrics."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import jaccard_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cvcourse.train import (
    History,
    MeanIoU,
    accuracy,
    confusion_matrix,
    evaluate,
    fit,
    iou_per_class,
    mean_iou,
)


def blobs(n=256, seed=0):
    """Four well-separated Gaussian blobs in 2-D: a linear model separates them."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    centres = torch.tensor([[2.0, 2.0], [-2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]])
    x = centres[y] + 0.5 * torch.randn(n, 2, generator=g)
    return TensorDataset(x, y)


def colour_segmentation(n=32, size=8, seed=0):
    """Pixel class = brightest of 3 channels, or 0 when all are dark: a 1x1 conv can learn it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    y = x.argmax(1) + 1
    y[x.max(1).values < 0.4] = 0
    return TensorDataset(x, y)


def make_linear(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(2, 4)


def strip_times(h):
    return {k: v for k, v in h.items() if k != "epoch_time"}


# ------------------------------------------------------------------------------------------ fit


def test_fit_reduces_loss_and_learns(device):
    model = make_linear()
    h = fit(model, blobs(), blobs(128, seed=1), epochs=8, lr=0.05, batch_size=32, progress=False, device=device)
    assert isinstance(h, History) and h.epochs == 8
    assert set(h) == {"train_loss", "train_acc", "val_loss", "val_acc", "epoch_time", "lr"}
    assert all(len(v) == 8 for v in h.values())
    assert h["train_loss"][-1] < 0.3 * h["train_loss"][0]
    assert h["val_acc"][-1] > 0.95
    assert not model.training  # documented: fit leaves the model in eval mode
    assert next(model.parameters()).device.type == torch.device(device).type


def test_fit_is_reproducible_with_a_seed():
    runs = []
    for _ in range(2):
        model = make_linear(seed=3)
        h = fit(model, blobs(), epochs=3, lr=0.05, batch_size=16, seed=7, progress=False, device="cpu")
        runs.append((strip_times(h), model.weight.detach().clone()))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])
    other = make_linear(seed=3)
    h_other = fit(other, blobs(), epochs=3, lr=0.05, batch_size=16, seed=8, progress=False, device="cpu")
    assert strip_times(h_other) != runs[0][0]  # another seed shuffles differently


def test_fit_segmentation_with_mean_iou(device):
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, kernel_size=1)
    metrics = {"acc": accuracy, "miou": MeanIoU(4)}
    h = fit(model, colour_segmentation(), colour_segmentation(16, seed=1), epochs=15, lr=0.3, batch_size=8,
            metrics=metrics, progress=False, device=device)
    assert {"train_miou", "val_miou", "val_acc"} <= set(h)
    assert h["val_miou"][-1] > h["val_miou"][0] and h["val_miou"][-1] > 0.8
    assert all(0.0 <= v <= 1.0 for v in h["val_miou"])


def test_fit_accepts_dataloaders_optimizer_loss_and_scheduler():
    model = make_linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    calls = []

    def loss_fn(logits, targets):
        calls.append(len(targets))
        return nn.functional.cross_entropy(logits, targets)

    loader = DataLoader(blobs(64), batch_size=20)
    h = fit(model, loader, epochs=3, optimizer=opt, loss_fn=loss_fn, scheduler=sched, metrics={}, progress=False,
            device="cpu")
    assert h["lr"] == pytest.approx([0.2, 0.1, 0.05])
    assert calls == [20, 20, 20, 4] * 3  # the DataLoader is used as given (no reshuffling, its batch size)
    assert set(h) == {"train_loss", "epoch_time", "lr"}


def test_fit_amp_is_a_no_op_on_cpu():
    h1 = fit(make_linear(), blobs(64), epochs=2, progress=False, device="cpu", amp=False)
    h2 = fit(make_linear(), blobs(64), epochs=2, progress=False, device="cpu", amp=True)
    assert strip_times(h1) == strip_times(h2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", ["bf16", "fp16", True])
def test_fit_amp_on_cuda_trains(amp):
    h = fit(make_linear(), blobs(), epochs=5, lr=0.05, progress=False, device="cuda", amp=amp)
    assert h["train_loss"][-1] < h["train_loss"][0]


def test_fit_progress_false_is_silent(capsys):
    fit(make_linear(), blobs(32), blobs(32), epochs=1, progress=False, device="cpu")
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_fit_rejects_bad_arguments():
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        fit(make_linear(), blobs(8), epochs=-1, progress=False, device="cpu")
    with pytest.raises(ValueError, match="data is empty"):
        fit(make_linear(), DataLoader(blobs(8), batch_size=4, sampler=[]), progress=False, device="cpu")


def test_amp_dtype_choice():
    from cvcourse.train import _amp_dtype

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert _amp_dtype(True, cpu) is None and _amp_dtype("fp16", cpu) is None  # CPU: full precision
    assert _amp_dtype(False, cuda) is None
    assert _amp_dtype("bf16", cuda) == torch.bfloat16 and _amp_dtype("fp16", cuda) == torch.float16
    with pytest.raises(ValueError, match="amp must be False, True, 'bf16' or 'fp16'"):
        _amp_dtype("int8", cuda)


# ------------------------------------------------------------------------------------- evaluate


def test_evaluate_matches_a_manual_computation():
    data = blobs(100, seed=2)
    model = make_linear(seed=1)
    out = evaluate(model, data, batch_size=30, device="cpu")
    x, y = data.tensors
    with torch.no_grad():
        logits = model(x)
    assert out["loss"] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert out["acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert not model.training


def test_evaluate_uses_eval_mode_for_dropout():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 64), nn.Dropout(0.9), nn.Linear(64, 4))
    model.train()
    a = evaluate(model, blobs(64), device="cpu")
    b = evaluate(model, blobs(64), device="cpu")
    assert a == b  # dropout is off, so two evaluations agree


# -------------------------------------------------------------------------------------- metrics


def test_accuracy_and_shape_errors():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    seg_logits = torch.zeros(2, 3, 4, 4)
    seg_logits[:, 1] = 1.0
    assert accuracy(seg_logits, torch.ones(2, 4, 4, dtype=torch.long)) == 1.0
    with pytest.raises(ValueError, match="must match targets"):
        accuracy(logits, torch.tensor([0, 1]))


def test_confusion_matrix_matches_sklearn():
    rng = np.random.default_rng(0)
    pred, true = rng.integers(0, 5, 500), rng.integers(0, 5, 500)
    ours = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(true), 5)
    np.testing.assert_array_equal(ours.numpy(), sk_confusion(true, pred, labels=range(5)))
    true_ignored = true.copy()
    true_ignored[:100] = 255
    ours = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(true_ignored), 5, ignore_index=255)
    np.testing.assert_array_equal(ours.numpy(), sk_confusion(true[100:], pred[100:], labels=range(5)))


def test_mean_iou_matches_sklearn_jaccard():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 3, 10, 10, generator=g)
    targets = torch.randint(0, 3, (4, 10, 10), generator=g)
    ref = jaccard_score(targets.flatten().numpy(), logits.argmax(1).flatten().numpy(), average="macro")
    assert mean_iou(logits, targets) == pytest.approx(ref)
    assert mean_iou(logits.argmax(1), targets, num_classes=3) == pytest.approx(ref)
    with pytest.raises(ValueError, match="num_classes is required"):
        mean_iou(logits.argmax(1), targets)


def test_mean_iou_edge_cases():
    perfect = torch.nn.functional.one_hot(torch.tensor([[0, 1], [1, 0]]), 3).permute(2, 0, 1)[None].float()
    assert mean_iou(perfect, torch.tensor([[[0, 1], [1, 0]]])) == 1.0  # class 2 absent everywhere: skipped
    iou = iou_per_class(torch.tensor([[3, 1, 0], [0, 0, 0], [0, 0, 0]]))
    assert iou[0].item() == pytest.approx(0.75) and iou[1].item() == 0.0 and math.isnan(iou[2].item())


def test_mean_iou_object_accumulates_exactly():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 4, 5, 5, generator=g)
    targets = torch.randint(0, 4, (6, 5, 5), generator=g)
    metric = MeanIoU(4)
    for i in range(0, 6, 2):
        metric.update(logits[i : i + 2], targets[i : i + 2])
    assert metric.compute() == pytest.approx(mean_iou(logits, targets))
    metric.reset()
    assert math.isnan(metric.compute())


def test_history_helpers():
    h = History(train_loss=[3.0, 1.0, 2.0], val_acc=[0.1, 0.9, 0.5])
    assert h.train_loss == [3.0, 1.0, 2.0] and h.epochs == 3
    assert h.best("train_loss") == (1, 1.0) and h.best("val_acc", mode="max") == (1, 0.9)
    with pytest.raises(AttributeError):
        h.nothing
