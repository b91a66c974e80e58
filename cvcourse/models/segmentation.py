"""Semantic segmentation networks: a fully convolutional network (FCN) and a U-Net.

Lecture 7 ("Semantic segmentation": unpooling, fully convolutional networks, U-Net) introduces both;
the graded assignment ``unpool_unet`` asks students to build their own U-Net with the same interface.

Letter legend: B batch, C channels, K classes (``num_classes``), H, W input height and width,
h, w a feature map's height and width, D depth (number of 2x down-sampling steps).

Both models map ``(B, C, H, W)`` images to ``(B, K, H, W)`` per-pixel class logits (no softmax), so
``F.cross_entropy(logits, mask)`` with ``mask (Tensor[B, H, W])`` of class indices trains them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cvcourse._checks import check_tensor

__all__ = ["DoubleConv", "UNet", "FCN", "lecture7_settings", "lecture7_models", "lecture7_fit"]

_NORMS = ("batch", "group", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    """A normalisation layer for ``channels`` feature maps: ``"batch"``, ``"group"`` or ``"none"``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        # 8 groups where the width allows (the GroupNorm paper uses 32; these networks are thin)
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.Identity()


class DoubleConv(nn.Sequential):
    """Two ``3x3 conv -> norm -> ReLU`` layers that keep the spatial size: U-Net's basic block.

    Lecture 7, U-Net figure: each level of the encoder and of the decoder is one such block
    (the original paper uses unpadded convolutions; we pad so output size equals input size).

    Args:
        in_channels (int): C of the input.
        out_channels (int): C of the output.
        norm (str): ``"batch"`` (``nn.BatchNorm2d``), ``"group"`` (``nn.GroupNorm``) or ``"none"``.

    Shape:
        ``(B, in_channels, h, w) -> (B, out_channels, h, w)``.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str = "batch") -> None:
        bias = norm == "none"  # a conv followed by a norm layer needs no bias
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
        )


class _Up(nn.Module):
    """Decoder step: 2x transposed convolution, concatenate the encoder's skip, then ``DoubleConv``.

    ``(B, c, h, w)`` with skip ``(B, c // 2, 2h, 2w)`` -> ``(B, c // 2, 2h, 2w)``.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels, norm)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)  # (B, c, h, w) -> (B, c/2, 2h, 2w)
        return self.conv(torch.cat([skip, x], dim=1))  # (B, c, 2h, 2w) -> (B, c/2, 2h, 2w)


class UNet(nn.Module):
    """U-Net (Ronneberger et al., 2015): an encoder-decoder with skip connections between levels.

    Lecture 7 ("U-Net"): the encoder halves the resolution ``depth`` times (max-pooling) while doubling
    the channels; the decoder undoes each step with a 2x2 stride-2 transposed convolution and
    concatenates the encoder's feature map of the same resolution (the skip connection), so the
    fine detail lost by pooling comes back for the per-pixel decision. A 1x1 convolution turns the
    last feature map into class logits. torchvision has no U-Net; this follows the paper with padded
    convolutions (output size = input size) and an optional normalisation layer.

    Args:
        in_channels (int): C of the input images.
        num_classes (int): K, number of output channels (logits per class, background included).
        base_channels (int): channels of the first level; level ``i`` has ``base_channels * 2**i``.
        depth (int): D, number of 2x down-sampling steps; H and W must be divisible by ``2**D``.
        norm (str): ``"batch"``, ``"group"`` or ``"none"`` (see :class:`DoubleConv`).
        skips (bool): ``False`` feeds the decoder zeros instead of the encoder's maps: the same layers and
            parameters without the fine detail, the control experiment of lecture 7.

    Named parts (for hooks and feature visualisation): ``encoder`` (``D + 1`` :class:`DoubleConv`
    blocks, the last one is the bottleneck), ``decoder`` (``D`` up-steps), ``head`` (1x1 conv);
    :meth:`forward_features` returns the last decoder map ``(B, base_channels, H, W)`` and
    :meth:`forward_head` maps it to logits.

    Shape:
        ``(B, in_channels, H, W) -> (B, num_classes, H, W)``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        base_channels: int = 16,
        depth: int = 3,
        norm: str = "batch",
        skips: bool = True,
    ) -> None:
        super().__init__()
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.depth = depth
        self.skips = skips
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.encoder = nn.ModuleList(
            [DoubleConv(in_channels, widths[0], norm)]
            + [DoubleConv(widths[i - 1], widths[i], norm) for i in range(1, depth + 1)]
        )
        self.pool = nn.MaxPool2d(2)
        self.decoder = nn.ModuleList([_Up(widths[i], widths[i - 1], norm) for i in range(depth, 0, -1)])
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def _check_input(self, x: Tensor) -> None:
        check_tensor(x, "x")
        if x.dim() != 4:
            raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
        m = 2**self.depth
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(
                f"UNet with depth={self.depth} needs H and W divisible by {m}, got {tuple(x.shape[-2:])}; "
                "pad or resize the image"
            )

    def forward_features(self, x: Tensor) -> Tensor:
        """Encoder and decoder: ``(B, C, H, W) -> (B, base_channels, H, W)``."""
        self._check_input(x)
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))  # level i: (B, base * 2**i, H / 2**i, W / 2**i)
            skips.append(x)
        skips.pop()  # the bottleneck output is x itself, not a skip
        for up in self.decoder:
            skip = skips.pop()
            x = up(x, skip if self.skips else torch.zeros_like(skip))
        return x

    def forward_head(self, features: Tensor) -> Tensor:
        """1x1 classifier: ``(B, base_channels, H, W) -> (B, num_classes, H, W)``."""
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _bilinear_kernel(channels: int, kernel_size: int) -> Tensor:
    """Weights ``(channels, channels, k, k)`` that make a transposed conv do bilinear up-sampling."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    r = torch.arange(kernel_size, dtype=torch.float32)
    filt = 1 - (r - center).abs() / factor  # (k,)
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt[:, None] * filt[None, :]  # (k, 1) * (1, k) -> (k, k)
    return weight


class FCN(nn.Module):
    """A small fully convolutional network (Long, Shelhamer, Darrell 2015), FCN-32s style.

    Lecture 7 ("Fully convolutional networks"): encode the image into a coarse feature map, classify
    each coarse cell with a 1x1 convolution instead of a fully connected layer, and up-sample the
    class scores back to the input resolution with one transposed convolution (stride 8) whose
    weights are *fixed* to bilinear interpolation, as the paper's FCN-32s did for its final 32x step
    (only FCN-16s/8s's intermediate 2x steps were initialised to bilinear and then learned). In the
    paper the classifier is VGG-16 turned convolutional: fc6 became a 7x7 convolution on the last
    pooled map, fc7 and fc8 1x1 convolutions; here one 1x1 convolution plays fc8. No skip
    connections: compare it with :class:`UNet` to see what they add. torchvision's ``fcn_resnet50``
    is the large relative.

    Args:
        in_channels (int): C of the input images.
        num_classes (int): K, number of output channels.
        base_channels (int): channels of the first stage; stage ``i`` has ``base_channels * 2**i``.
        norm (str): normalisation of the encoder blocks, as :class:`DoubleConv`.

    Named parts: ``features`` (three :class:`DoubleConv` + max-pool stages, stride 8),
    ``head`` (1x1 conv to K class scores at 1/8 resolution), ``upsample``
    (``nn.ConvTranspose2d(K, K, 16, stride=8, padding=4)``, bilinear, ``requires_grad=False``);
    :meth:`forward_features` and
    :meth:`forward_head` split the forward pass.

    Shape:
        ``(B, in_channels, H, W) -> (B, num_classes, H, W)``, H and W divisible by 8.
    """

    stride = 8

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base_channels: int = 16, norm: str = "batch") -> None:
        super().__init__()
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        widths = [base_channels, 2 * base_channels, 4 * base_channels]
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += [DoubleConv(c, w, norm), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, num_classes, kernel_size=1)
        self.upsample = nn.ConvTranspose2d(num_classes, num_classes, 2 * self.stride, self.stride, self.stride // 2)
        with torch.no_grad():
            self.upsample.weight.copy_(_bilinear_kernel(num_classes, 2 * self.stride))
            self.upsample.bias.zero_()
        self.upsample.requires_grad_(False)  # fixed bilinear up-sampling, as FCN-32s

    def forward_features(self, x: Tensor) -> Tensor:
        """Encoder: ``(B, C, H, W) -> (B, 4 * base_channels, H / 8, W / 8)``."""
        check_tensor(x, "x")
        if x.dim() != 4 or x.shape[-2] % self.stride or x.shape[-1] % self.stride:
            raise ValueError(f"FCN needs x of shape (B, C, H, W) with H and W divisible by 8, got {tuple(x.shape)}")
        return self.features(x)

    def forward_head(self, features: Tensor) -> Tensor:
        """Classify coarse cells and up-sample: ``(B, 4 * base, h, w) -> (B, K, 8h, 8w)``."""
        return self.upsample(self.head(features))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# ----------------------------------------------------------------------------- lecture 7's experiment


def lecture7_settings() -> dict:
    """Lecture 7's segmentation experiment: data, widths and training recipe, shared by the notebook,
    ``scripts/segmentation_budget.py`` and ``tests/test_lecture_claims.py`` so that the claims are tested on
    the settings the lecture shows (train with :func:`lecture7_fit`).

    Fast mode (``CVCOURSE_FAST=1``, via :func:`cvcourse.config.pick`) keeps the data, the model widths and the
    recipe and shrinks the number of training images and epochs (about half a minute of CPU for the three
    models); full mode is meant for a GPU.

    The recipe is that of the ``unpool_unet`` learning test (:func:`cvcourse.grading.budgets.train_and_score`,
    ``docs/unet_calibration.md``): cross-entropy weighted by inverse class frequency
    (:func:`cvcourse.losses.inverse_frequency_weights`), Adam at peak rate ``lr`` with a linear warm-up over
    ``warmup_steps`` optimiser steps and a cosine decay to 0 (:func:`cvcourse.train.lr_factor`), batch 8. With
    plain cross-entropy at a constant rate (the lecture's recipe before 2026-12-03) the U-Net never predicted a
    dot in fast mode (``docs/segmentation_budget.md``).

    Returns:
        ``dict`` with ``image_size``, ``train_images``, ``val_images``, ``train_seed``, ``val_seed``
        (:class:`cvcourse.data.FineShapesSegmentation` arguments), ``base_channels``, ``norm``; the recipe
        ``epochs``, ``lr`` (peak), ``batch_size``, ``warmup_steps``, ``lr_schedule`` and ``class_weighting``;
        ``boundary_width`` (pixels, for :class:`cvcourse.train.BoundaryIoU`). Images are 32x32: small enough
        for 384 training steps per model in fast mode, and a stride-8 FCN sees them as a 4x4 grid.
    """
    from cvcourse.config import pick  # noqa: PLC0415

    return dict(
        image_size=32,
        train_images=pick(full=4000, fast=512),
        val_images=pick(full=500, fast=128),
        train_seed=0,
        val_seed=1,
        base_channels=8,
        norm="group",
        epochs=pick(full=20, fast=6),
        lr=1e-2,
        batch_size=8,
        warmup_steps=pick(full=1000, fast=38),  # a tenth of the steps: 20 x 500 in full mode, 6 x 64 in fast mode
        lr_schedule="cosine",
        class_weighting="inverse_frequency",
        boundary_width=2,
    )


def lecture7_fit(
    model: nn.Module,
    train_data: torch.utils.data.TensorDataset,
    val_data: torch.utils.data.Dataset | None = None,
    *,
    num_classes: int,
    settings: dict,
    seed: int = 0,
    device: torch.device | str | None = None,
    metrics: dict | None = None,
    progress: bool = True,
):
    """Train one of lecture 7's models with the lecture's recipe (:func:`lecture7_settings`) by :func:`cvcourse.train.fit`.

    The ``unpool_unet`` learning test trains with it too (:func:`cvcourse.grading.budgets.train_and_score`, with
    its own budget as ``settings``), so the lecture and the graded test share one recipe.

    The class weights come from the training label maps (:func:`cvcourse.losses.inverse_frequency_weights`); the
    learning rate warms up linearly over ``settings["warmup_steps"]`` optimiser steps to ``settings["lr"]`` and
    then follows ``settings["lr_schedule"]`` (:func:`cvcourse.train.lr_factor`), stepped after every batch.

    Args:
        model: maps ``(B, 3, H, W)`` images to ``(B, K, H, W)`` logits.
        train_data: ``TensorDataset(images (N, 3, H, W), masks (N, H, W))``, e.g. ``TensorDataset(*ds.tensors())``.
        val_data: evaluated after every epoch (with the same weighted loss), or None.
        num_classes: K (the class weights have one entry per class).
        settings: :func:`lecture7_settings`.
        seed, device, metrics, progress: as :func:`cvcourse.train.fit` (``metrics`` default: none).

    Returns:
        The :class:`cvcourse.train.History` of :func:`cvcourse.train.fit`.
    """
    from cvcourse import config  # noqa: PLC0415
    from cvcourse.losses import inverse_frequency_weights  # noqa: PLC0415
    from cvcourse.train import fit, lr_factor  # noqa: PLC0415

    if settings["class_weighting"] != "inverse_frequency":
        raise ValueError(f"class_weighting must be 'inverse_frequency', got {settings['class_weighting']!r}")
    if not isinstance(train_data, torch.utils.data.TensorDataset) or len(train_data.tensors) != 2:
        raise TypeError(f"train_data must be a TensorDataset of (images, masks), got {type(train_data).__name__}")
    dev = torch.device(device) if device is not None else config.device()
    masks = train_data.tensors[1]  # (N, H, W)
    weight = inverse_frequency_weights(masks, num_classes).to(dev)

    def loss_fn(logits: Tensor, targets: Tensor) -> Tensor:
        return nn.functional.cross_entropy(logits, targets, weight=weight)

    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    steps = settings["epochs"] * math.ceil(len(train_data) / settings["batch_size"])
    warmup, schedule = settings["warmup_steps"], settings["lr_schedule"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps, warmup, schedule))
    return fit(model, train_data, val_data, epochs=settings["epochs"], optimizer=optimizer, loss_fn=loss_fn,
               metrics=metrics if metrics is not None else {}, batch_size=settings["batch_size"], device=dev, seed=seed,
               progress=progress, scheduler=scheduler, scheduler_interval="step")


def lecture7_models(num_classes: int, settings: dict) -> dict[str, nn.Module]:
    """Lecture 7's three models, freshly initialised from the current torch seed, in the lecture's order.

    Args:
        num_classes: K.
        settings: :func:`lecture7_settings` (uses ``base_channels`` and ``norm``).

    Returns:
        ``{"FCN": FCN, "U-Net without skips": UNet(skips=False), "U-Net": UNet}``.
    """
    base, norm = settings["base_channels"], settings["norm"]
    return {
        "FCN": FCN(3, num_classes, base_channels=base, norm=norm),
        "U-Net without skips": UNet(3, num_classes, base_channels=base, depth=3, norm=norm, skips=False),
        "U-Net": UNet(3, num_classes, base_channels=base, depth=3, norm=norm),
    }
