"""Supervised Contrastive Learning (Khosla et al., 2020): the SupCon loss and its self-supervised special case.

Paper notebook ``lectures/papers/supervised_contrastive.ipynb`` (extends lecture 6, transfer learning and frozen
features). Every image of a batch is augmented twice; an encoder and a small projection head map each view to a
unit vector ``z``. For every *anchor* ``i`` the loss pulls ``z_i`` towards its *positives* (all other views with the
same label) and pushes it away from everything else in the batch, with a softmax over dot products divided by a
temperature ``tau`` (the digest's formula, "L^sup_out" in the paper)::

    L_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i . z_p / tau) / sum_{k != i} exp(z_i . z_k / tau) )

With two views per image ``|P(i)| = 2 N_{y_i} - 1``. When every image is its own class (labels = image index), the
only positive is the other view of the same image and the loss is SimCLR's NT-Xent (self-supervised) loss.

- :func:`supcon_loss`        the loss above for ``M`` embeddings and their labels (vectorised, one ``M x M`` matrix)
- :func:`nt_xent_loss`       the self-supervised special case for two batches of views ``z1[n] <-> z2[n]``
- :class:`ProjectionHead`    the paper's MLP with one hidden layer, output normalised to unit length
- :class:`SupConNet`         encoder + projection head, with ``forward_features`` for a linear probe
- :func:`augment_view`       one random view of a batch (shift, gain, noise): the notebook's augmentation module

Letter legend: M embeddings (2N for two views of N images), D embedding size, B batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse._checks import check_tensor
from cvcourse.models.classic import random_crop_flip

__all__ = ["supcon_loss", "nt_xent_loss", "ProjectionHead", "SupConNet", "augment_view"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_embeddings(z: Tensor, name: str) -> None:
    check_tensor(z, name)
    if z.dim() != 2:
        raise ValueError(f"{name} must have shape (M, D) (one embedding per row), got {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {z.dtype}")


def supcon_loss(features: Tensor, labels: Tensor, temperature: float = 0.1, reduction: str = "mean") -> Tensor:
    """The supervised contrastive loss of Khosla et al. (2020), paper notebook ``supervised_contrastive``.

    The embeddings are L2-normalised here (the paper normalises the projection output before the loss), so any
    scale of ``features`` gives the same loss. Each row is an anchor; its positives are the *other* rows with the
    same label, its denominator runs over all other rows. There is no ``torch.nn.functional`` equivalent; the
    reference code of the paper (``SupConLoss``) takes ``(B, views, D)`` and averages over anchors, which is
    ``reduction="mean"`` here on the views stacked into ``M = B * views`` rows (without its extra
    ``temperature / base_temperature`` factor).

    Args:
        features (Tensor[M, D]): one embedding per row (e.g. both views of a batch, ``torch.cat([z1, z2])``).
        labels (Tensor[M]): integer class of each row. Every row needs at least one other row of its class.
        temperature: ``tau`` > 0; smaller values sharpen the softmax (the paper uses 0.1 on ImageNet).
        reduction: ``"mean"`` over anchors (default), ``"sum"`` (the digest's ``L^sup = sum_i L_i``) or ``"none"``
            (``Tensor[M]``, one value per anchor).

    Returns:
        A scalar, or ``Tensor[M]`` with ``reduction="none"``.

    Raises:
        ValueError: wrong shapes, fewer than two rows, a label that occurs once, ``temperature <= 0`` or an
            unknown ``reduction``.
    """
    _check_embeddings(features, "features")
    check_tensor(labels, "labels")
    if labels.dim() != 1 or labels.shape[0] != features.shape[0]:
        raise ValueError(f"labels must have shape (M,) = ({features.shape[0]},) to match features "
                         f"{tuple(features.shape)}, got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices, got {labels.dtype}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    M = features.shape[0]
    if M < 2:
        raise ValueError(f"supcon_loss needs at least two embeddings, got {M}")
    labels = labels.to(features.device)
    z = F.normalize(features, dim=1)
    logits = z @ z.T / temperature  # (M, D) x (D, M) -> (M, M), row i: z_i . z_k / tau
    self_mask = torch.eye(M, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))  # k != i in the denominator
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (M, M) log-softmax over k != i
    positives = (labels[:, None] == labels[None, :]) & ~self_mask  # (M, M), P(i) in row i
    n_pos = positives.sum(1)  # |P(i)|
    if bool((n_pos == 0).any()):
        i = int((n_pos == 0).nonzero()[0, 0])
        raise ValueError(f"row {i} (label {int(labels[i])}) has no positive: every label must occur at least twice "
                         "(pass both views of every image)")
    per_anchor = -log_prob.masked_fill(~positives, 0.0).sum(1) / n_pos  # (M,)
    if reduction == "none":
        return per_anchor
    return per_anchor.sum() if reduction == "sum" else per_anchor.mean()


def nt_xent_loss(z1: Tensor, z2: Tensor, temperature: float = 0.1, reduction: str = "mean") -> Tensor:
    """SimCLR's self-supervised NT-Xent loss, the special case of :func:`supcon_loss` in which row ``n`` of ``z1``
    and row ``n`` of ``z2`` (two views of image ``n``) are each other's only positive.

    Args:
        z1 (Tensor[N, D]), z2 (Tensor[N, D]): embeddings of the first and second view of the same N images.
        temperature, reduction: as :func:`supcon_loss`, over the ``2N`` anchors ``[z1; z2]``.

    Returns:
        A scalar, or ``Tensor[2N]`` with ``reduction="none"``.
    """
    _check_embeddings(z1, "z1")
    _check_embeddings(z2, "z2")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape (N, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    ids = torch.arange(z1.shape[0], device=z1.device)
    return supcon_loss(torch.cat([z1, z2]), torch.cat([ids, ids]), temperature, reduction)  # (2N, D), labels (2N,)


class ProjectionHead(nn.Module):
    """The paper's projection network: Linear -> ReLU -> Linear, then L2 normalisation (output on the unit sphere).

    Used only while training with the contrastive loss; thrown away afterwards (the linear probe reads the
    encoder's output). The paper maps 2048 -> 2048 -> 128.

    Shape: ``(B, in_dim) -> (B, out_dim)``, rows of unit length.
    """

    def __init__(self, in_dim: int, hidden: int | None = None, out_dim: int = 128) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or (hidden is not None and hidden < 1):
            raise ValueError(f"dimensions must be positive, got in_dim={in_dim}, hidden={hidden}, out_dim={out_dim}")
        hidden = in_dim if hidden is None else hidden
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.mlp(x), dim=1)


class SupConNet(nn.Module):
    """An encoder followed by a :class:`ProjectionHead`.

    Args:
        encoder: maps ``(B, C, H, W)`` to ``(B, feat_dim)`` (e.g. conv stages, global pooling, flatten).
        feat_dim: the encoder's output size.
        proj_dim, hidden: passed to :class:`ProjectionHead`.

    ``forward(x)`` returns the unit-length projections ``(B, proj_dim)`` (what the loss sees);
    ``forward_features(x)`` returns the encoder's features ``(B, feat_dim)`` (what a linear probe sees, e.g. via
    :func:`cvcourse.transfer.extract_features`).
    """

    def __init__(self, encoder: nn.Module, feat_dim: int, proj_dim: int = 128, hidden: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = ProjectionHead(feat_dim, hidden, proj_dim)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))  # (B, C, H, W) -> (B, feat_dim) -> (B, proj_dim)


def augment_view(images: Tensor, generator: torch.Generator | None = None, shift: int = 2,
                 gain: tuple[float, float] = (0.6, 1.4), noise: float = 0.1) -> Tensor:
    """One random view of every image of a batch, for small grey-level data such as the digits: a random
    translation by up to ``shift`` pixels (zero padding, then :func:`cvcourse.models.classic.random_crop_flip`
    without flips, since a mirrored digit is another symbol), a random brightness gain per image and Gaussian
    pixel noise, clamped to [0, 1]. The paper's augmentation module (random resized crop, then AutoAugment,
    RandAugment or colour distortion and blur) scaled down to 16x16 digits. Call it twice for two views.

    Args:
        images (Tensor[B, C, H, H]): square images, float in [0, 1].
        generator: random generator for reproducible views (None: the global one).
        shift: largest translation in pixels (>= 0).
        gain: range of the uniform brightness factor.
        noise: standard deviation of the added Gaussian noise (>= 0).

    Returns:
        Tensor[B, C, H, H].
    """
    check_tensor(images, "images")
    if images.dim() != 4 or images.shape[2] != images.shape[3]:
        raise ValueError(f"images must be a batch of square images (B, C, H, H), got {tuple(images.shape)}")
    if shift < 0 or noise < 0 or not gain[0] <= gain[1]:
        raise ValueError(f"need shift >= 0, noise >= 0 and gain[0] <= gain[1], got {shift}, {noise}, {gain}")
    B, _, H, _ = images.shape
    x = F.pad(images, (shift, shift, shift, shift))  # (B, C, H + 2s, H + 2s)
    x = random_crop_flip(x, H, generator=generator, flip=False)  # (B, C, H + 2s, H + 2s) -> (B, C, H, H)
    g = gain[0] + (gain[1] - gain[0]) * torch.rand(B, 1, 1, 1, generator=generator)
    n = noise * torch.randn(x.shape, generator=generator)
    return (x * g.to(x.device) + n.to(x.device)).clamp(0.0, 1.0)
