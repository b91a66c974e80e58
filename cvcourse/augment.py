"""Mixing augmentations: CutMix (Yun et al., 2019) and Attentive CutMix (Walawalkar et al., 2020).

Paper notebook ``lectures/papers/attentive_cutmix.ipynb`` (extends lecture 6: a pretrained network's final
feature map says where the object is). Lecture 3's crops and flips live in :mod:`cvcourse.models.classic`
(``random_crop_flip``).

Letters: B batch, C channels, H, W image size, K classes, g attention grid side.

Both functions pair every image ``i`` of a batch with a partner ``perm[i]`` (a random permutation of the
batch), paste a region of the partner into image ``i`` and mix the labels by area:
``target_i = (1 - a_i) * onehot(y_i) + a_i * onehot(y_perm[i])``, where ``a_i`` is the fraction of image ``i``'s
pixels that came from the partner. The targets are probabilities (rows sum to 1); train with
``torch.nn.functional.cross_entropy(logits, targets)``, which accepts them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse._checks import check_tensor

__all__ = ["attention_grid", "attentive_cutmix", "cutmix", "mixing_step", "rand_box", "sample_beta", "top_cells"]


def _check_batch(images: Tensor, labels: Tensor, num_classes: int) -> None:
    check_tensor(images, "images")
    check_tensor(labels, "labels")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if labels.shape != (images.shape[0],) or labels.dtype != torch.int64:
        raise ValueError(f"labels must be int64 class indices of shape ({images.shape[0]},), got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    if num_classes < 1 or (labels.numel() and (labels.min() < 0 or labels.max() >= num_classes)):
        raise ValueError(f"labels must lie in 0..{num_classes - 1} (num_classes={num_classes})")


def _mix_targets(labels: Tensor, perm: Tensor, pasted: Tensor, num_classes: int) -> Tensor:
    one = F.one_hot(labels, num_classes).float()  # (B, K)
    pasted = pasted.float()[:, None]  # (B,) -> (B, 1)
    return (1 - pasted) * one + pasted * one[perm]


def sample_beta(alpha: float, generator: torch.Generator | None = None) -> float:
    """One draw from ``Beta(alpha, alpha)``, reproducible with a ``torch.Generator``.

    Inverse-CDF sampling: a uniform draw from ``generator`` through ``scipy.special.betaincinv``
    (``torch.distributions.Beta`` cannot take a generator).
    """
    from scipy.special import betaincinv

    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    u = torch.rand((), generator=generator, dtype=torch.float64).item()
    return float(betaincinv(alpha, alpha, u))


def rand_box(size: tuple[int, int], lam: float, generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """CutMix's random box ``(x1, y1, x2, y2)`` (pixels, ``x2``/``y2`` exclusive) covering about ``1 - lam``.

    Sides ``sqrt(1 - lam) * (W, H)``, centre uniform over the image, clipped at the borders (so the box can be
    smaller than asked; :func:`cutmix` mixes the labels by the area actually pasted).
    """
    if not 0 <= lam <= 1:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    h, w = size
    ratio = (1.0 - lam) ** 0.5
    cut_w, cut_h = int(w * ratio), int(h * ratio)
    cx = int(torch.randint(w, (), generator=generator))
    cy = int(torch.randint(h, (), generator=generator))
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    return x1, y1, x2, y2


def cutmix(images: Tensor, labels: Tensor, num_classes: int, alpha: float = 1.0,
           generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """CutMix: paste one random box of a partner image into each image; mix the labels by the box's area.

    As in the reference implementation (``clovaai/CutMix-PyTorch``) one ``lam ~ Beta(alpha, alpha)`` and one
    box (:func:`rand_box`) per batch; partners are a random permutation of the batch.

    Args:
        images (Tensor[B, C, H, W]); labels (Tensor[B]) int64 in ``0..K-1``; num_classes: ``K``.
        alpha: the Beta parameter (the paper's default 1: ``lam`` uniform).
        generator: for reproducible boxes and partners.

    Returns:
        ``(mixed (Tensor[B, C, H, W]), targets (Tensor[B, K]))``, targets as in the module docstring.
    """
    _check_batch(images, labels, num_classes)
    b, _, h, w = images.shape
    perm = torch.randperm(b, generator=generator).to(images.device)
    x1, y1, x2, y2 = rand_box((h, w), sample_beta(alpha, generator), generator)
    mixed = images.clone()
    mixed[:, :, y1:y2, x1:x2] = images[perm][:, :, y1:y2, x1:x2]
    pasted = torch.full((b,), (x2 - x1) * (y2 - y1) / (h * w), device=images.device)
    return mixed, _mix_targets(labels, perm, pasted, num_classes)


@torch.no_grad()
def attention_grid(model: nn.Module, images: Tensor, size: int | None = None, stage: str | None = None,
                   batch_size: int = 64) -> Tensor:
    """Attentive CutMix's attention: the channel mean of a pretrained network's final feature map.

    (The paper does not say how the 2048 channels of its ResNet-50 map become one score per cell; the channel
    mean is the class-agnostic choice.)

    Args:
        model: has ``forward_features(x) -> (B, D, h, w)`` and takes images in [0, 1] (e.g. lecture 6's
            ``pretrained_body``: Lite0 behind its normalisation; at 224 px its map is 7 x 7, the paper's grid).
        images (Tensor[B, 3, H, W]) in [0, 1].
        size: resize the images to ``size x size`` first (bilinear), e.g. to give small images a larger map.
        stage: None for the final map (``forward_features``), or a key of ``model.forward_stages(x)`` such as
            ``"stride16"`` for a finer, cheaper map of an earlier stage.
        batch_size: images per forward pass.

    Returns:
        Tensor[B, h, w] on the images' device.
    """
    check_tensor(images, "images")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    dev = next(model.parameters()).device
    out = []
    for x in images.split(batch_size):
        x = x.to(dev)
        if size is not None:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        f = model.forward_features(x) if stage is None else model.forward_stages(x)[stage]
        out.append(f.mean(1).to(images.device))  # (B, D, h, w) -> (B, h, w)
    return torch.cat(out) if out else images.new_zeros(0, 1, 1)


def top_cells(attention: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` largest cells of each attention map, flattened row-major, largest first.

    Args:
        attention (Tensor[B, g, g']); k: ``1 <= k <= g * g'``.

    Returns:
        Tensor[B, k] int64; cell ``(r, c)`` has index ``r * g' + c``.
    """
    check_tensor(attention, "attention")
    if attention.dim() != 3:
        raise ValueError(f"attention must have shape (B, g, g), got {tuple(attention.shape)}")
    n = attention.shape[1] * attention.shape[2]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n} (the number of grid cells), got {k}")
    return attention.flatten(1).topk(k, dim=1).indices  # (B, g, g) -> (B, g*g) -> (B, k)


def attentive_cutmix(images: Tensor, labels: Tensor, num_classes: int, attention: Tensor, k: int = 6,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Attentive CutMix: paste the partner's ``k`` most-attended grid cells, at the same places.

    The image is cut into the attention map's ``g x g'`` grid of cells (pixel row ``y`` is in cell row
    ``floor(y * g / H)``, likewise for columns);
    the partner's top-``k`` cells (:func:`top_cells`) replace the same cells of image ``i``, and the labels
    are mixed by the pasted area. The paper uses a 7 x 7 grid and ``k = 6``.

    Args:
        images (Tensor[B, C, H, W]); labels (Tensor[B]) int64; num_classes: ``K``.
        attention (Tensor[B, g, g']): one map per image, e.g. from :func:`attention_grid`; image ``j``'s map
            chooses what is pasted *from* ``j``.
        k: cells pasted per image.
        generator: for reproducible partners.

    Returns:
        ``(mixed (Tensor[B, C, H, W]), targets (Tensor[B, K]))``, targets as in the module docstring.
    """
    _check_batch(images, labels, num_classes)
    b, _, h, w = images.shape
    if attention.dim() != 3 or attention.shape[0] != b:
        raise ValueError(f"attention must have shape ({b}, g, g) (one map per image), got {tuple(attention.shape)}")
    gh, gw = attention.shape[1:]
    if gh > h or gw > w:
        raise ValueError(f"the attention grid {gh} x {gw} is finer than the images ({h} x {w})")
    perm = torch.randperm(b, generator=generator).to(images.device)
    cells = top_cells(attention, k)  # (B, k), the cells each image would give away
    grid_mask = torch.zeros(b, gh * gw, device=images.device)
    grid_mask.scatter_(1, cells.to(images.device), 1.0)
    grid_mask = grid_mask[perm].view(b, 1, gh, gw)  # image i receives its partner's cells
    rows = (torch.arange(h, device=images.device) * gh) // h  # pixel row -> cell row
    cols = (torch.arange(w, device=images.device) * gw) // w
    mask = grid_mask[:, :, rows][:, :, :, cols]  # (B, 1, g, g') -> (B, 1, H, W)
    mixed = images * (1 - mask) + images[perm] * mask
    return mixed, _mix_targets(labels, perm, mask.mean(dim=(1, 2, 3)), num_classes)


def mixing_step(method: str, num_classes: int, k: int = 6, alpha: float = 1.0,
                generator: torch.Generator | None = None):
    """A ``step_fn`` for :func:`cvcourse.train.fit` that mixes every training batch before the loss.

    The batches must be ``(images, attention, labels)`` (e.g. a ``TensorDataset`` of the images, their
    :func:`attention_grid` maps and labels), so that the three methods see the same data and order.

    Args:
        method: ``"none"`` (plain cross-entropy), ``"cutmix"`` or ``"attentive"``.
        num_classes, k, alpha: as in :func:`cutmix` / :func:`attentive_cutmix`.
        generator: for reproducible boxes and partners.

    Returns:
        ``step_fn(model, batch) -> loss``: cross-entropy of the model's logits on the (mixed) targets.
    """
    if method not in ("none", "cutmix", "attentive"):
        raise ValueError(f"method must be 'none', 'cutmix' or 'attentive', got {method!r}")

    def step_fn(model: nn.Module, batch) -> Tensor:
        images, attention, labels = batch
        if method == "cutmix":
            images, targets = cutmix(images, labels, num_classes, alpha, generator)
        elif method == "attentive":
            images, targets = attentive_cutmix(images, labels, num_classes, attention, k, generator)
        else:
            targets = labels
        return F.cross_entropy(model(images), targets)

    return step_fn
