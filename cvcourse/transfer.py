"""Transfer learning helpers, lecture 6: normalised inputs, partly frozen bodies, frozen features.

Letters: B batch, N data set size, C channels, H, W image size, h, w feature-map size.

The pretrained network of the course (``efficientnet_lite0``) expects normalised input, while the data
sets give images in [0, 1]. :class:`Normalized` puts the normalisation in front of any model, so that the
training loop feeds it raw images; :class:`PartlyFrozen` freezes all but some stages of a body *including
their BatchNorm statistics*; :func:`extract_features` and :func:`stage_activations` run a frozen body once
over a data set and global-average-pool what it computes ("crocodile learning": a new head on old
features).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

__all__ = ["Normalized", "PartlyFrozen", "extract_features", "stage_activations"]


class Normalized(nn.Module):
    """``model(normalize(x))``: per-channel ``(x - mean) / std`` in front of a model (lecture 6).

    Mirrors ``nn.Sequential(torchvision.transforms.v2.Normalize(mean, std), model)`` and passes
    ``forward_features`` / ``forward_stages`` through the same normalisation when the model has them.

    Args:
        model: the network; it stays reachable as ``.model``.
        mean, std: one value per input channel (e.g. ``weights.transforms().mean``).

    Shape: ``(B, C, H, W) -> model's output``.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std need one value per channel each, got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))

    def normalize(self, x: Tensor) -> Tensor:
        """``(x - mean) / std`` per channel, for ``x (Tensor[B, C, H, W])`` in [0, 1]."""
        if x.ndim != 4 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"expected images (B, {self.mean.shape[0]}, H, W), got {tuple(x.shape)}")
        return (x - self.mean) / self.std

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self.normalize(x))

    def forward_features(self, x: Tensor) -> Tensor:
        """The wrapped model's ``forward_features`` on normalised input."""
        return self.model.forward_features(self.normalize(x))

    def forward_stages(self, x: Tensor) -> dict[str, Tensor]:
        """The wrapped model's ``forward_stages`` on normalised input."""
        return self.model.forward_stages(self.normalize(x))


class PartlyFrozen(nn.Module):
    """A model whose ``features`` stages outside ``trainable`` are frozen, statistics included (lecture 6).

    Frozen stages get ``requires_grad=False`` *and* stay in eval mode when the model is put in training
    mode: a BatchNorm layer updates its running mean and variance in ``train()`` even without gradients,
    so a stage that is only "frozen" by ``requires_grad`` drifts anyway. The head (everything outside
    ``features``) keeps its own ``requires_grad``.

    Args:
        model: a network with an indexable ``features`` (``nn.Sequential`` of stages), e.g. Lite0.
        trainable: indices of the stages that keep training.
    """

    def __init__(self, model: nn.Module, trainable: Iterable[int]) -> None:
        super().__init__()
        stages = getattr(model, "features", None)
        if not isinstance(stages, nn.Sequential):
            raise TypeError(f"model must have an nn.Sequential `features`, got {type(stages).__name__}")
        self.trainable = frozenset(trainable)
        bad = sorted(i for i in self.trainable if not 0 <= i < len(stages))
        if bad:
            raise ValueError(f"trainable stages must be in 0..{len(stages) - 1}, got {bad}")
        self.model = model
        for i, stage in enumerate(stages):
            stage.requires_grad_(i in self.trainable)

    def train(self, mode: bool = True) -> "PartlyFrozen":
        super().train(mode)
        for i, stage in enumerate(self.model.features):
            if i not in self.trainable:
                stage.eval()  # frozen means frozen statistics too
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _pool(f: Tensor) -> Tensor:
    return f.mean(dim=(2, 3)) if f.ndim == 4 else f  # (B, C, h, w) -> (B, C)


@torch.no_grad()
def extract_features(model: nn.Module, dataset: Dataset, batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """Globally pooled ``model.forward_features`` of every item of ``dataset``, and the labels (lecture 6).

    The model runs in eval mode on its own device (its mode is restored); the result is on the CPU.

    Args:
        model: a body with ``forward_features`` (e.g. ``Normalized(efficientnet_lite0(weights=...), ...)``).
        dataset: items ``(image (Tensor[C, H, W]), label)``.
        batch_size: images per forward pass.

    Returns:
        features (Tensor[N, C]) and labels (Tensor[N]).
    """
    if not hasattr(model, "forward_features"):
        raise TypeError(f"model must have forward_features (a body), got {type(model).__name__}")
    was_training, device = model.training, _device(model)
    model.eval()
    feats, labels = [], []
    try:
        for images, y in DataLoader(dataset, batch_size=batch_size):
            feats.append(_pool(model.forward_features(images.to(device))).cpu())
            labels.append(torch.as_tensor(y))
    finally:
        model.train(was_training)
    return torch.cat(feats), torch.cat(labels)


@torch.no_grad()
def stage_activations(model: nn.Module, images: Tensor, stage: str = "stride16", batch_size: int = 64) -> Tensor:
    """Mean activation of every channel of one stage of ``model.forward_stages`` per image (lecture 6).

    Args:
        model: a network with ``forward_stages`` returning a dict of ``(B, C, h, w)`` maps.
        images (Tensor[N, 3, H, W]): the images.
        stage: key of ``forward_stages``, e.g. ``"stride16"``.
        batch_size: images per forward pass.

    Returns:
        Tensor[N, C] on the CPU: each channel's activation averaged over the map.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    was_training, device = model.training, _device(model)
    model.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            maps = model.forward_stages(images[i: i + batch_size].to(device))
            if stage not in maps:
                raise ValueError(f"unknown stage {stage!r}; forward_stages gives {list(maps)}")
            out.append(_pool(maps[stage]).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)
