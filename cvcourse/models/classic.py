"""Lecture 2: AlexNet (winner of ILSVRC 2012) and VGG (ILSVRC 2014: 2nd in classification, 1st in localisation).

Two kinds of models live here:

* the reference ImageNet networks with the exact layouts of ``torchvision.models.alexnet`` /
  ``vgg11/13/16/19`` (same module names, so torchvision state dicts load), plus the 227-pixel-input
  AlexNet of the 2012 paper, used to count parameters;
* small versions for 32x32 / 64x64 offline data (:class:`SmallAlexNet`, :func:`vgg_small`) that train
  in a minute on a CPU, and AlexNet's test-time augmentation (five crops and their mirror images).

Letter legend: B batch, C channels, H/W image height/width, h/w crop size, V number of views (10),
K number of classes.
"""

from __future__ import annotations

from typing import Sequence, Type

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse._checks import check_tensor

__all__ = [
    "AlexNet",
    "LocalResponseNorm",
    "local_response_norm",
    "alexnet",
    "alexnet_2012",
    "SmallAlexNet",
    "alexnet_init_",
    "VGG",
    "VGG_CONFIGS",
    "make_vgg_features",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg_small",
    "random_crop_flip",
    "ten_crop",
    "tta_predict",
]


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """AlexNet's local response normalisation across channels, lecture 2.

    Mirrors ``torch.nn.functional.local_response_norm`` (same arguments and semantics): each activation
    is divided by a power of the summed squares of its ``size`` neighbouring channels at the same pixel,

        b_c = a_c / (k + alpha / size * sum_{c' = c - size // 2}^{c + (size - 1) // 2} a_{c'}^2) ** beta,

    a "lateral inhibition": a channel that fires among strongly firing neighbours is damped. The paper
    writes ``alpha`` without the ``1 / size``: its ``k = 2, n = 5, alpha = 1e-4, beta = 0.75`` is
    ``local_response_norm(x, 5, alpha=5e-4, beta=0.75, k=2.0)`` here.

    Args:
        input (Tensor[B, C, ...]): activations (after ReLU in AlexNet).
        size: number of neighbouring channels summed (the channel itself included).

    Returns:
        Tensor[B, C, ...], same shape.
    """
    if input.ndim < 3:
        raise ValueError(f"input must be (B, C, ...) with at least 3 dims, got shape {tuple(input.shape)}")
    if size < 1:
        raise ValueError(f"size must be a positive integer, got {size}")
    c = input.shape[1]
    sq = input.pow(2).transpose(1, -1)  # channels last, so that F.pad pads them
    sq = F.pad(sq, (size // 2, (size - 1) // 2)).transpose(1, -1)  # (B, C + size - 1, ...)
    window = sum(sq[:, i: i + c] for i in range(size))  # (B, C, ...): squares of each channel's neighbours
    return input / (k + alpha / size * window) ** beta


class LocalResponseNorm(nn.Module):
    """Module form of :func:`local_response_norm` (mirrors ``nn.LocalResponseNorm``), lecture 2."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: Tensor) -> Tensor:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky, Sutskever, Hinton 2012), lecture 2.

    Five convolutions with large early kernels (11x11 stride 4, then 5x5), ReLU after each, three
    overlapping 3x3/2 max-pools, and a classifier of two 4096-wide layers with dropout 0.5.

    The defaults give torchvision's ``alexnet`` layout (widths 64-192-384-256-256, 224 input,
    61,100,840 parameters); :func:`alexnet_2012` gives the paper's 96-256-384-384-256 version.

    Args:
        num_classes: K.
        widths: output channels of the five convolutions.
        conv1_padding: padding of the 11x11 convolution (2 in torchvision, 0 for the paper's 227 input).
        groups: groups of conv2, conv4, conv5 (2 reproduces the paper's split over two GPUs).
        dropout: dropout probability in the classifier.
        lrn: local response normalisation after the ReLUs of conv1 and conv2, with the paper's constants
            (:func:`alexnet_2012` sets it; torchvision's layout has none).

    Shapes:
        ``(B, 3, 224, 224) -> (B, K)``; ``features`` gives ``(B, widths[4], 6, 6)`` for a 224 (or 227) input.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        widths: Sequence[int] = (64, 192, 384, 256, 256),
        conv1_padding: int = 2,
        groups: int = 1,
        dropout: float = 0.5,
        lrn: bool = False,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        norm = (lambda: [LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)]) if lrn else (lambda: [])
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=11, stride=4, padding=conv1_padding),
            nn.ReLU(inplace=True),
            *norm(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2, groups=groups),
            nn.ReLU(inplace=True),
            *norm(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1, groups=groups),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1, groups=groups),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(c5 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W) -> (B, C5, 6, 6)``."""
        return self.avgpool(self.features(x))

    def forward_head(self, f: Tensor) -> Tensor:
        """``(B, C5, 6, 6) -> (B, K)``."""
        return self.classifier(torch.flatten(f, 1))  # (B, C5, 6, 6) -> (B, C5 * 36)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def alexnet(num_classes: int = 1000) -> AlexNet:
    """torchvision's AlexNet layout (mirrors ``torchvision.models.alexnet(weights=None)``), lecture 2."""
    return AlexNet(num_classes=num_classes)


def alexnet_2012(num_classes: int = 1000, grouped: bool = True) -> AlexNet:
    """The AlexNet of the 2012 paper: 227x227 input, widths 96-256-384-384-256, lecture 2.

    With ``grouped=True`` conv2, conv4 and conv5 see only the half of their input channels that lived
    on the same GPU (``groups=2``), giving the paper's "60 million parameters" (60,965,224). Local
    response normalisation follows conv1 and conv2, as in the paper.
    """
    return AlexNet(num_classes, widths=(96, 256, 384, 384, 256), conv1_padding=0, groups=2 if grouped else 1,
                   lrn=True)


class SmallAlexNet(nn.Module):
    """A four-layer AlexNet-style net for 32x32 to 64x64 images, lecture 2.

    Keeps the recipe (a large first kernel, max-pooling after each stage, dropout before the
    classifier) at a size that trains on a CPU in seconds. ``activation`` is swapped for ``nn.Tanh``
    in the ReLU-versus-tanh experiment (the paper's Figure 1 used a four-layer net on CIFAR-10).

    Args:
        num_classes: K.
        in_channels: C of the input.
        widths: channels of the three convolutions (5x5, 5x5, 3x3).
        hidden: width of the hidden fully connected layer.
        activation: activation class, ``nn.ReLU`` by default.
        dropout: dropout probability before each linear layer (0 disables it).

    Shapes:
        ``(B, C, H, W) -> (B, K)``, any ``H, W >= 8``; ``features`` ends with ``(B, widths[2], 2, 2)``.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 64, 128),
        hidden: int = 256,
        activation: Type[nn.Module] = nn.ReLU,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=5, padding=2),
            activation(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            activation(),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            activation(),
            nn.AdaptiveMaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(c3 * 4, hidden),
            activation(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        # He-normal weights whatever the activation, so a ReLU net and a tanh net built with the same
        # seed start from identical weights (PyTorch's default init shrinks ReLU signals layer by layer).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))  # (B, C3, 2, 2) -> (B, 4 C3)


def alexnet_init_(model: nn.Module, std: float = 0.01) -> nn.Module:
    """The 2012 paper's initialisation, in place, lecture 2: weights ~ N(0, std), std = 0.01.

    Biases as in the paper: 1 in the second and later convolutions and in the hidden fully connected
    layers ("accelerates the early stages of learning by providing the ReLUs with positive inputs"), 0 in
    the first convolution and the output layer. No normalisation layers are added or changed.

    Args:
        model: a network of ``Conv2d`` and ``Linear`` layers (AlexNet, :class:`SmallAlexNet`).
        std: standard deviation of the weights.

    Returns:
        ``model`` itself.
    """
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to initialise")
    with torch.no_grad():
        for i, m in enumerate(layers):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0 if i in (0, len(layers) - 1) else 1.0)
    return model


#: VGG configurations from the paper's Table 1 (A, B, D, E): channel counts, "M" = 2x2 max-pool.
VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_vgg_features(cfg: Sequence[int | str], in_channels: int = 3, batch_norm: bool = False) -> nn.Sequential:
    """Stack of 3x3 convolutions (padding 1) + ReLU, with 2x2 max-pools where ``cfg`` says "M", lecture 2.

    Mirrors torchvision's ``make_layers`` (same module order, so state dicts are interchangeable).
    """
    layers: list[nn.Module] = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"VGG config entries must be positive ints or 'M', got {v!r}")
        layers.append(nn.Conv2d(c, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        c = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG (Simonyan and Zisserman 2014), lecture 2: only 3x3 convolutions, depth instead of big kernels.

    Two stacked 3x3 convolutions see a 5x5 window and three see 7x7, with fewer weights and more
    non-linearities than one big kernel. Mirrors ``torchvision.models.VGG`` (module names and order).

    Args:
        cfg: channel list with "M" for max-pool (see :data:`VGG_CONFIGS`).
        num_classes: K.
        in_channels: C of the input.
        batch_norm: add BatchNorm after every convolution (the later ``vgg16_bn``).
        pool_size: side of the adaptive average pool before the classifier (7 for 224 inputs).
        hidden: width of the two hidden fully connected layers (4096 in the paper).
        dropout: dropout probability in the classifier.

    Shapes:
        ``(B, C, H, W) -> (B, K)``.
    """

    def __init__(
        self,
        cfg: Sequence[int | str],
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        pool_size: int = 7,
        hidden: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = make_vgg_features(cfg, in_channels, batch_norm)
        last = [v for v in cfg if v != "M"][-1]
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Linear(int(last) * pool_size * pool_size, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():  # torchvision's VGG initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, C_last, p, p)`` with p = ``pool_size``."""
        return self.avgpool(self.features(x))

    def forward_head(self, f: Tensor) -> Tensor:
        """``(B, C_last, p, p) -> (B, K)``."""
        return self.classifier(torch.flatten(f, 1))  # (B, C, p, p) -> (B, C p p)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def vgg11(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG configuration A (mirrors ``torchvision.models.vgg11(weights=None)``), lecture 2."""
    return VGG(VGG_CONFIGS["vgg11"], num_classes, batch_norm=batch_norm)


def vgg13(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG configuration B (mirrors ``torchvision.models.vgg13(weights=None)``), lecture 2."""
    return VGG(VGG_CONFIGS["vgg13"], num_classes, batch_norm=batch_norm)


def vgg16(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG configuration D (mirrors ``torchvision.models.vgg16(weights=None)``: 138,357,544 weights), lecture 2."""
    return VGG(VGG_CONFIGS["vgg16"], num_classes, batch_norm=batch_norm)


def vgg19(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG configuration E (mirrors ``torchvision.models.vgg19(weights=None)``), lecture 2."""
    return VGG(VGG_CONFIGS["vgg19"], num_classes, batch_norm=batch_norm)


def vgg_small(
    num_classes: int = 10,
    in_channels: int = 3,
    widths: Sequence[int] = (32, 64, 128),
    convs_per_stage: int = 2,
    batch_norm: bool = True,
    hidden: int = 256,
    dropout: float = 0.5,
) -> VGG:
    """A VGG for 32x32 images: ``len(widths)`` stages of ``convs_per_stage`` 3x3 convs + max-pool, lecture 2.

    With the defaults: 32-32-M-64-64-M-128-128-M, a 1x1 global pool and a 256-wide hidden layer.

    The fully connected layers get He-normal weights instead of VGG's ``N(0, 0.01)``: that fixed standard
    deviation suits 4096-wide layers (it scales a signal by about ``0.01 * sqrt(4096) = 0.64`` per layer) but
    shrinks it about tenfold per layer at these widths, so the net would barely move for its first hundred steps.
    """
    cfg: list[int | str] = []
    for w in widths:
        cfg += [int(w)] * convs_per_stage + ["M"]
    net = VGG(cfg, num_classes, in_channels, batch_norm=batch_norm, pool_size=1, hidden=hidden, dropout=dropout)
    for m in net.classifier.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
    return net


def random_crop_flip(images: Tensor, size: int, generator: torch.Generator | None = None, flip: bool = True) -> Tensor:
    """AlexNet's training augmentation on a batch: a random ``size x size`` crop per image, mirrored with
    probability 1/2 (``flip=False`` for data whose labels change under mirroring, e.g. digits), lecture 2.

    Vectorised (one gather for the whole batch); mirrors ``torchvision.transforms.v2.RandomCrop`` followed by
    ``RandomHorizontalFlip`` applied per image.

    Args:
        images (Tensor[B, C, H, W]): the batch.
        size: side of the crop, at most ``min(H, W)``.
        generator: random generator for reproducible crops.
        flip: whether to mirror half of the crops.

    Returns:
        Tensor[B, C, size, size].
    """
    check_tensor(images, "images")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    B, _, H, W = images.shape
    if not 1 <= size <= min(H, W):
        raise ValueError(f"crop size {size} must be positive and fit in the image size {(H, W)}")
    dev = images.device
    top = torch.randint(0, H - size + 1, (B,), generator=generator).to(dev)
    left = torch.randint(0, W - size + 1, (B,), generator=generator).to(dev)
    mirror = (torch.rand(B, generator=generator) < (0.5 if flip else 0.0)).to(dev)
    ar = torch.arange(size, device=dev)
    rows = top[:, None] + ar  # (B, size)
    cols = torch.where(mirror[:, None], left[:, None] + size - 1 - ar, left[:, None] + ar)  # (B, size)
    b = torch.arange(B, device=dev)[:, None, None]
    out = images.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, size, size, C)
    return out.permute(0, 3, 1, 2).contiguous()  # (B, size, size, C) -> (B, C, size, size)


def ten_crop(images: Tensor, size: int | tuple[int, int]) -> Tensor:
    """AlexNet's ten test views: four corner crops, the centre crop, and the same five of the mirror image.

    Lecture 2. Mirrors ``torchvision.transforms.v2.functional.ten_crop`` (same order: top-left,
    top-right, bottom-left, bottom-right, centre, then those five of the horizontally flipped image)
    but works on a batch and stacks the views.

    Args:
        images (Tensor[B, C, H, W]): the batch.
        size: crop size ``(h, w)`` or ``s`` for a square crop; must not exceed ``(H, W)``.

    Returns:
        Tensor[10, B, C, h, w].
    """
    check_tensor(images, "images")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    H, W = images.shape[-2:]
    if h > H or w > W or h < 1 or w < 1:
        raise ValueError(f"crop size {(h, w)} must be positive and fit in the image size {(H, W)}")
    top, left = int(round((H - h) / 2.0)), int(round((W - w) / 2.0))

    def five(x: Tensor) -> list[Tensor]:
        return [
            x[..., :h, :w],
            x[..., :h, W - w :],
            x[..., H - h :, :w],
            x[..., H - h :, W - w :],
            x[..., top : top + h, left : left + w],
        ]

    return torch.stack(five(images) + five(images.flip(-1)))  # 10 x (B, C, h, w) -> (10, B, C, h, w)


@torch.no_grad()
def tta_predict(model: nn.Module, images: Tensor, size: int | tuple[int, int], flip: bool = True) -> Tensor:
    """Class probabilities averaged over the ten views of :func:`ten_crop` (AlexNet's test-time augmentation).

    Lecture 2. The model is called once on all ``V B`` views; softmax is taken per view, then averaged.
    ``flip=False`` uses only the five unmirrored views (torchvision's ``five_crop``).

    Args:
        model: maps ``(N, C, h, w)`` to logits ``(N, K)``.
        images (Tensor[B, C, H, W]): the batch.
        size: crop size passed to :func:`ten_crop`.
        flip: include the five mirrored views.

    Returns:
        Tensor[B, K] of probabilities (rows sum to 1).
    """
    views = ten_crop(images, size)
    views = views if flip else views[:5]  # (10, B, C, h, w) -> (5, B, C, h, w) without mirrors
    V, B = views.shape[:2]
    logits = model(views.flatten(0, 1))  # (V, B, C, h, w) -> (V B, C, h, w)
    probs = logits.softmax(-1).unflatten(0, (V, B))  # (V B, K) -> (V, B, K)
    return probs.mean(0)
