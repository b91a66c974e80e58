"""The headline experiments of lectures 1-6, with the settings their notebooks and claims tests share.

Each function runs one experiment of a lecture at the lecture's settings (fast or full, read from
:func:`cvcourse.config.pick` when called) and returns what the notebook plots. The notebook calls it and
shows the result; ``tests/test_lecture_claims.py`` calls the same function, with the same settings, and
checks the claim the lecture makes from it. Nothing here is new material: each runner is a few lines over
the library's models, data and training loop, kept in one place so that the claim the student reads and
the claim the test checks cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, Subset
from tqdm.auto import tqdm

from cvcourse.config import pick, seed_everything
from cvcourse.data import DigitsDataset, ShapesClassification, materialise
from cvcourse.features import BagOfVisualWords, dense_sift
from cvcourse.models.blocks import ConvBNAct, InvertedResidual
from cvcourse.models.classic import SmallAlexNet, alexnet_init_
from cvcourse.models.resnet import plain_net, preact_resnet_cifar, resnet_cifar
from cvcourse.train import History, fit

__all__ = [
    "ShapesSettings", "shapes_settings", "shapes_split", "bag_of_words_run", "small_cnn_run",
    "ReluTanhSettings", "relu_tanh_settings", "relu_tanh_run", "rounds_to",
    "BottleneckSettings", "bottleneck_settings", "bottleneck_net", "bottleneck_run",
    "TokenHeadSettings", "token_head_settings", "patch_feature_maps", "token_head_run", "TOKEN_HEADS",
    "TransferSettings", "transfer_settings", "patch_split", "pretrained_body", "logreg_accuracy",
    "colour_baseline", "digits_transfer",
    "DegradationSettings", "degradation_settings", "degradation_data", "degradation_run",
]


# --------------------------------------------------------------------------------------------- lecture 1


@dataclass(frozen=True)
class ShapesSettings:
    """Lecture 1's recognition task: the synthetic shapes, one split for bag of words and a small CNN."""

    image_size: int
    n_train: int
    n_test: int
    n_words: int  # visual vocabulary
    step: int  # dense SIFT grid spacing (pixels)
    size: int  # dense SIFT keypoint size (pixels)
    cnn_widths: tuple[int, int, int]
    cnn_hidden: int
    cnn_epochs: int
    cnn_lr: float = 3e-3


def shapes_settings() -> ShapesSettings:
    """Lecture 1's settings: 32x32 shapes; 4,000 / 1,000 images in full mode, 800 / 200 in fast mode."""
    return pick(full=ShapesSettings(32, 4000, 1000, 400, 4, 8, (32, 64, 128), 128, 30),
                fast=ShapesSettings(32, 800, 200, 200, 4, 8, (16, 32, 64), 64, 10))


def shapes_split(settings: ShapesSettings) -> tuple[ShapesClassification, ShapesClassification]:
    """The training (seed 0) and test (seed 1) shapes both classifiers of lecture 1 use."""
    return (ShapesClassification(settings.n_train, image_size=settings.image_size, seed=0),
            ShapesClassification(settings.n_test, image_size=settings.image_size, seed=1))


def bag_of_words_run(settings: ShapesSettings, device=None, progress: bool = False) -> dict[str, Any]:
    """Lecture 1's classical pipeline on :func:`shapes_split`: dense SIFT, k-means words, word histograms,
    logistic regression.

    Returns:
        ``{"accuracy", "predictions", "labels", "bow", "classifier"}`` (test accuracy, predicted and true
        test labels as arrays, the fitted vocabulary and classifier).
    """
    from sklearn.linear_model import LogisticRegression

    train, test = shapes_split(settings)

    def describe(ds, name):
        descs, labels = [], []
        for i in tqdm(range(len(ds)), desc=name, disable=not progress):
            image, label = ds[i]
            descs.append(dense_sift(image.to(device) if device is not None else image,
                                    step=settings.step, size=settings.size).cpu())
            labels.append(int(label))
        return descs, np.array(labels)

    train_desc, y_train = describe(train, "dense SIFT, train")
    test_desc, y_test = describe(test, "dense SIFT, test")
    bow = BagOfVisualWords(n_words=settings.n_words, seed=0).fit(train_desc)
    clf = LogisticRegression(max_iter=2000, C=10.0).fit(bow.transform(train_desc).numpy(), y_train)
    predictions = clf.predict(bow.transform(test_desc).numpy())
    return {"accuracy": float((predictions == y_test).mean()), "predictions": predictions, "labels": y_test,
            "bow": bow, "classifier": clf}


def small_cnn_run(settings: ShapesSettings, seed: int = 0, device=None, progress: bool = False) -> History:
    """A small AlexNet-style CNN (lecture 2's ``SmallAlexNet``, no dropout) trained end to end with Adam on
    the same :func:`shapes_split` as :func:`bag_of_words_run`; ``val_acc`` is its test accuracy per epoch."""
    train, test = (materialise(ds) for ds in shapes_split(settings))
    seed_everything(seed)
    model = SmallAlexNet(num_classes=4, widths=settings.cnn_widths, hidden=settings.cnn_hidden, dropout=0.0)
    return fit(model, train, test, epochs=settings.cnn_epochs, lr=settings.cnn_lr, batch_size=32, device=device,
               seed=seed, progress=progress)


# --------------------------------------------------------------------------------------------- lecture 2


@dataclass(frozen=True)
class ReluTanhSettings:
    """Lecture 2's repetition of AlexNet's Figure 1 (ReLU vs tanh) on the digits."""

    size: int
    rounds: int  # one round = a random draw of per_round training images
    per_round: int
    seeds: tuple[int, ...]
    threshold: float = 0.75  # the paper's 25% training error
    #: ``{set-up: (initialisation, learning rate)}``: the course's He-normal init, and the paper's
    #: N(0, 0.01) weights with biases 1 in hidden layers (``alexnet_init_``), each at its own rate
    setups: tuple[tuple[str, str, float], ...] = (("He-normal init", "he", 0.02), ("2012 init, N(0, 0.01)", "2012", 0.1))


def relu_tanh_settings() -> ReluTanhSettings:
    """Lecture 2's settings: 60 rounds of 512 images, 3 seeds in full mode; 12 rounds of 128, 1 seed in fast mode."""
    return pick(full=ReluTanhSettings(size=32, rounds=60, per_round=512, seeds=(0, 1, 2)),
                fast=ReluTanhSettings(size=16, rounds=12, per_round=128, seeds=(0,)))


def relu_tanh_run(activation: type[nn.Module], init: str, lr: float, seed: int,
                  settings: ReluTanhSettings | None = None, device=None) -> History:
    """Train ``SmallAlexNet`` (no dropout, no normalisation) with one activation; one "epoch" is one round.

    ``init`` is ``"he"`` (the model's own He-normal weights: the same seed gives ReLU and tanh the same
    weights) or ``"2012"`` (:func:`~cvcourse.models.classic.alexnet_init_`). SGD with momentum 0.9, batch 32.
    """
    if init not in ("he", "2012"):
        raise ValueError(f"init must be 'he' or '2012', got {init!r}")
    settings = settings or relu_tanh_settings()
    digits = DigitsDataset(train=True, image_size=settings.size)
    seed_everything(seed)
    model = SmallAlexNet(num_classes=10, widths=(16, 32, 64), hidden=64, activation=activation, dropout=0.0)
    if init == "2012":
        alexnet_init_(model)
    loader = DataLoader(digits, batch_size=32, sampler=RandomSampler(
        digits, num_samples=settings.per_round, generator=torch.Generator().manual_seed(seed)))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return fit(model, loader, epochs=settings.rounds, optimizer=opt, device=device, seed=seed, progress=False)


def rounds_to(history: History, threshold: float) -> int | None:
    """First round (1-based) whose training accuracy reaches ``threshold``, or None."""
    hits = [i + 1 for i, a in enumerate(history["train_acc"]) if a >= threshold]
    return hits[0] if hits else None


# --------------------------------------------------------------------------------------------- lecture 3


@dataclass(frozen=True)
class DegradationSettings:
    """Lecture 3's degradation experiment: plain nets of two depths and residual twins of the deeper."""

    size: int  # digits resized to size x size
    shallow: int
    deep: int
    width: int
    epochs: int
    subsample: int  # keep every n-th training and test digit
    lr: float = 0.05
    batch_size: int = 32

    def builders(self) -> dict[str, Callable[[], nn.Module]]:
        """``{name: constructor}`` of the four networks, same order as the lecture's plots."""
        return {f"plain-{self.shallow}": lambda: plain_net(self.shallow, 10, width=self.width),
                f"plain-{self.deep}": lambda: plain_net(self.deep, 10, width=self.width),
                f"resnet-{self.deep}": lambda: resnet_cifar(self.deep, 10, width=self.width),
                f"preact-resnet-{self.deep}": lambda: preact_resnet_cifar(self.deep, 10, width=self.width)}


def degradation_settings() -> DegradationSettings:
    """Lecture 3's settings: 20 vs 56 layers for 30 epochs in full mode, 8 vs 20 for 6 epochs in fast mode."""
    return pick(full=DegradationSettings(size=32, shallow=20, deep=56, width=16, epochs=30, subsample=1),
                fast=DegradationSettings(size=16, shallow=8, deep=20, width=4, epochs=6, subsample=3))


def degradation_data(settings: DegradationSettings) -> tuple[Subset, Subset]:
    """The training and test digits of the degradation experiment."""
    train = DigitsDataset(train=True, image_size=settings.size)
    test = DigitsDataset(train=False, image_size=settings.size)
    return (Subset(train, range(0, len(train), settings.subsample)),
            Subset(test, range(0, len(test), settings.subsample)))


def degradation_run(seed: int = 0, settings: DegradationSettings | None = None, device=None,
                    names: tuple[str, ...] | None = None) -> dict[str, History]:
    """Train the networks of lecture 3's degradation experiment with one seed.

    Every network gets the same data, SGD (momentum 0.9, weight decay 1e-4), batch size and seed.

    Args:
        names: which of ``settings.builders()`` to train (default all four).

    Returns:
        ``{name: History}`` for plain-shallow, plain-deep, resnet-deep and preact-resnet-deep (or ``names``).
    """
    settings = settings or degradation_settings()
    builders = settings.builders()
    unknown = set(names or ()) - set(builders)
    if unknown:
        raise ValueError(f"unknown networks {sorted(unknown)}; choose from {list(builders)}")
    train, test = degradation_data(settings)
    hist = {}
    for name, make in builders.items():
        if names is not None and name not in names:
            continue
        seed_everything(seed)
        model = make()
        opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=0.9, weight_decay=1e-4)
        hist[name] = fit(model, train, test, epochs=settings.epochs, optimizer=opt, batch_size=settings.batch_size,
                         device=device, seed=seed, progress=False)
    return hist


# --------------------------------------------------------------------------------------------- lecture 4


@dataclass(frozen=True)
class BottleneckSettings:
    """Lecture 4's linear-bottleneck ablation: inverted residuals with thin ends, on the digits."""

    size: int
    widths: tuple[int, ...]  # thin ends of the inverted residual stages (stride 2 from the second on)
    expand_ratio: int
    epochs: int
    seeds: tuple[int, ...]
    subsample: int = 1  # keep every n-th training digit
    lr: float = 3e-3
    batch_size: int = 64


def bottleneck_settings() -> BottleneckSettings:
    """Lecture 4's settings: 32x32 digits, 15 epochs, 3 seeds in full mode; half the 16x16 digits, 5 epochs, in fast mode."""
    return pick(full=BottleneckSettings(32, (8, 8, 16, 16), 6, 15, (0, 1, 2)),
                fast=BottleneckSettings(16, (8, 8, 16, 16), 6, 5, (0, 1), subsample=2))


def bottleneck_net(output_relu: bool, settings: BottleneckSettings, num_classes: int = 10) -> nn.Sequential:
    """A stem and one ``InvertedResidual`` per stage; with ``output_relu`` every block's projection is followed
    by a ReLU6 (the ablation), otherwise it stays linear (MobileNet v2)."""
    layers: list[nn.Module] = [ConvBNAct(3, 16, 3, 1, activation=nn.ReLU6)]
    cin = 16
    for i, cout in enumerate(settings.widths):
        block = InvertedResidual(cin, cout, stride=1 if i == 0 else 2, expand_ratio=settings.expand_ratio)
        if output_relu:
            block.project.add_module("act", nn.ReLU6())
        layers.append(block)
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


def bottleneck_run(output_relu: bool, seed: int, settings: BottleneckSettings | None = None, device=None) -> History:
    """Train :func:`bottleneck_net` on the digits (Adam); ``val_acc`` is the test accuracy per epoch."""
    settings = settings or bottleneck_settings()
    digits = DigitsDataset(train=True, image_size=settings.size)
    train = materialise(Subset(digits, range(0, len(digits), settings.subsample)))
    test = materialise(DigitsDataset(train=False, image_size=settings.size))
    seed_everything(seed)
    model = bottleneck_net(output_relu, settings)
    return fit(model, train, test, epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
               device=device, seed=seed, progress=False)


# --------------------------------------------------------------------------------------------- lecture 5


@dataclass(frozen=True)
class TokenHeadSettings:
    """Lecture 5's visual-token heads on frozen EfficientNet-Lite0 features of the photo patches."""

    n_train: int
    n_val: int
    patch: int  # patch size in pixels; the stride-16 map is patch / 16 on a side
    epochs: int
    num_tokens: int = 4
    token_channels: int = 64
    position_channels: int = 16
    stage: str = "stride16"
    lr: float = 3e-3
    batch_size: int = 32
    seeds: tuple[int, ...] = (0, 1)


def token_head_settings() -> TokenHeadSettings:
    """Lecture 5's settings: the photo patches of lecture 6 (1,400 / 700 at 96 px full, 210 / 140 at 64 px fast)."""
    return pick(full=TokenHeadSettings(1400, 700, 96, 40), fast=TokenHeadSettings(210, 140, 64, 30))


def patch_feature_maps(settings: TokenHeadSettings, device=None):
    """Frozen Lite0 ``settings.stage`` maps of the training and validation photo patches, computed once.

    Returns:
        ``(train, val, backbone)``: two ``TensorDataset`` of ``(maps (Tensor[N, C, h, w]), labels)`` and the
        ``Normalized`` pretrained backbone (eval mode) that computed them.
    """
    from torch.utils.data import TensorDataset

    from cvcourse.data import PhotoPatches
    from cvcourse.models import EfficientNetLite0Weights, efficientnet_lite0
    from cvcourse.transfer import Normalized

    weights = EfficientNetLite0Weights.IMAGENET1K_V1
    tf = weights.transforms()
    backbone = Normalized(efficientnet_lite0(weights=weights), tf.mean, tf.std).eval()
    if device is not None:
        backbone = backbone.to(device)
    out = []
    for split, n in (("train", settings.n_train), ("val", settings.n_val)):
        images, labels = materialise(PhotoPatches(n, split=split, patch_size=settings.patch, seed=0)).tensors
        with torch.no_grad():
            maps = torch.cat([backbone.forward_stages(images[i:i + 64].to(backbone.mean.device))[settings.stage].cpu()
                              for i in range(0, len(images), 64)])
        out.append(TensorDataset(maps, labels))
    return out[0], out[1], backbone


#: the heads lecture 5 compares: ``{name: (kind, recurrent, position encoding)}``
TOKEN_HEADS = {
    "pooled + linear": ("pooled", False, False),
    "VT, static tokenizers": ("vt", False, False),
    "VT, recurrent tokenizer": ("vt", True, False),
    "VT, recurrent + position encoding": ("vt", True, True),
}


def token_head_run(name: str, train, val, seed: int = 0, settings: TokenHeadSettings | None = None,
                   device=None) -> tuple[nn.Module, History]:
    """Train one head of :data:`TOKEN_HEADS` on frozen feature maps (Adam); returns the head and its history."""
    from cvcourse.models.visual_transformer import VisualTokenHead

    if name not in TOKEN_HEADS:
        raise ValueError(f"unknown head {name!r}; choose one of {list(TOKEN_HEADS)}")
    settings = settings or token_head_settings()
    kind, recurrent, position = TOKEN_HEADS[name]
    channels = train.tensors[0].shape[1]
    num_classes = int(train.tensors[1].max()) + 1
    seed_everything(seed)
    if kind == "pooled":
        head: nn.Module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))
    else:
        head = VisualTokenHead(channels, num_classes, settings.num_tokens, settings.token_channels, num_layers=2,
                               recurrent=recurrent, position_channels=settings.position_channels if position else 0)
    history = fit(head, train, val, epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
                  device=device, seed=seed, progress=False)
    return head, history


# --------------------------------------------------------------------------------------------- lecture 6


@dataclass(frozen=True)
class TransferSettings:
    """Lecture 6's transfer-learning comparisons: the photo-patch task, and the digits as a dissimilar task."""

    n_train: int
    n_val: int
    patch: int
    epochs: int
    hist_bins: int = 4  # colour-histogram baseline: bins per channel
    digits_size: int = 32
    digits_train: int = 200
    digits_test: int = 150


def transfer_settings() -> TransferSettings:
    """Lecture 6's settings: 1,400 / 700 patches of 96 px, 12 epochs in full mode; 175 / 105 of 64 px, 2 in fast."""
    return pick(full=TransferSettings(1400, 700, 96, 12, digits_train=1437, digits_test=360),
                fast=TransferSettings(175, 105, 64, 2))


def patch_split(settings: TransferSettings):
    """``(train, val)`` :class:`~cvcourse.data.PhotoPatches`: training patches from the left 60 % of each photo,
    validation patches from the right 40 %."""
    from cvcourse.data import PhotoPatches

    return (PhotoPatches(settings.n_train, split="train", patch_size=settings.patch, seed=0),
            PhotoPatches(settings.n_val, split="val", patch_size=settings.patch, seed=0))


def pretrained_body(device=None) -> nn.Module:
    """The pretrained EfficientNet-Lite0 behind its own normalisation (``Normalized``), in eval mode."""
    from cvcourse.models import EfficientNetLite0Weights, efficientnet_lite0
    from cvcourse.transfer import Normalized

    weights = EfficientNetLite0Weights.IMAGENET1K_V1
    tf = weights.transforms()
    body = Normalized(efficientnet_lite0(weights=weights), tf.mean, tf.std).eval()
    return body.to(device) if device is not None else body


def logreg_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                    C: float = 1.0) -> float:
    """Test accuracy of scikit-learn's logistic regression on feature vectors ``(N, D)``."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=3000, C=C).fit(x_train.flatten(1).numpy(), y_train.numpy())
    return float(clf.score(x_test.flatten(1).numpy(), y_test.numpy()))


def colour_baseline(train, val, bins: int = 4) -> float:
    """Lecture 6's trivial baseline: a joint colour histogram per patch and logistic regression."""
    from cvcourse.features import colour_histogram

    (x_tr, y_tr), (x_va, y_va) = materialise(train).tensors, materialise(val).tensors
    return logreg_accuracy(colour_histogram(x_tr, bins), y_tr, colour_histogram(x_va, bins), y_va)


def digits_transfer(settings: TransferSettings, body: nn.Module) -> dict[str, float]:
    """A dissimilar target task: the digits, by logistic regression on frozen ImageNet features of the body
    and on the raw pixels. Returns ``{"frozen ImageNet features": acc, "raw pixels": acc}``."""
    from cvcourse.transfer import extract_features

    train, test = (DigitsDataset(train=t, image_size=settings.digits_size) for t in (True, False))
    train = Subset(train, range(min(settings.digits_train, len(train))))
    test = Subset(test, range(min(settings.digits_test, len(test))))
    f_tr, y_tr = extract_features(body, train)
    f_te, y_te = extract_features(body, test)
    (x_tr, _), (x_te, _) = materialise(train).tensors, materialise(test).tensors
    return {"frozen ImageNet features": logreg_accuracy(f_tr, y_tr, f_te, y_te),
            "raw pixels": logreg_accuracy(x_tr, y_tr, x_te, y_te)}
