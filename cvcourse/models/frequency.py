"""Learning in the frequency domain (Xu et al., 2020): a CNN fed with 8x8 block-DCT channels instead of pixels.

Paper notebook ``lectures/papers/dct_frequency_domain.ipynb`` (extends lecture 4). The DCT reshape
(:func:`cvcourse.ops.dct.block_dct`) already brings the image to 1/8 resolution with 192 channels, so the network
drops the stride-2 layers a spatial network needs to get there; a gate learns which frequency channels to keep.

- :class:`FrequencyGate`   the paper's dynamic gate: global average -> 1x1 conv -> two logits per channel ->
  hard Gumbel-softmax (straight-through) on/off decision per image and channel
- :class:`DCTNet`          images -> YCbCr -> block DCT -> per-channel standardisation -> (gate) -> channel
  selection -> body at 1/8 resolution -> classes
- :class:`SpatialNet`      the RGB baseline: three stride-2 ConvBNAct layers bring the image to 1/8, then the
  same body
- :func:`gate_penalty_loss` cross-entropy plus ``lam`` times the share of open gates, for :func:`cvcourse.train.fit`

Letter legend: B batch, K frequency channels (192 = 3 colours x 64 frequencies), H, W image size, h, w = H/8, W/8.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse.models.blocks import ConvBNAct
from cvcourse.ops.dct import block_dct, rgb_to_ycbcr

__all__ = ["FrequencyGate", "DCTNet", "SpatialNet", "gate_penalty_loss"]


class FrequencyGate(nn.Module):
    """Per-image on/off gates for K frequency channels (the paper's "gate module", SE-like).

    ``s = avgpool(x)`` (B, K, 1, 1) -> 1x1 conv -> ``(B, K, 2)`` logits (off, on). In training a hard Gumbel-softmax
    sample decides each gate (forward: exactly 0 or 1; backward: the gradient of the soft sample, straight-through);
    in eval mode the gate is open where the "on" logit wins. Unlike squeeze-excite, a channel is kept or dropped,
    not re-weighted.

    Args:
        channels: K.
        tau: Gumbel-softmax temperature.

    Forward: ``x (Tensor[B, K, h, w]) -> (x * gate, gate)`` with ``gate (Tensor[B, K])`` in {0, 1}.
    """

    def __init__(self, channels: int, tau: float = 1.0) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, 2 * channels, 1)
        nn.init.zeros_(self.fc.weight)
        with torch.no_grad():  # start with every gate open (logit "on" - "off" = 1, about 73 % on when sampled)
            self.fc.bias.view(channels, 2).copy_(torch.tensor([0.0, 1.0]))
        self.channels, self.tau = channels, tau

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.fc(F.adaptive_avg_pool2d(x, 1)).view(x.shape[0], self.channels, 2)  # (B, 2K, 1, 1) -> (B, K, 2)
        if self.training:
            gate = F.gumbel_softmax(logits, tau=self.tau, hard=True)[..., 1]
        else:
            gate = (logits[..., 1] > logits[..., 0]).to(x.dtype)
        return x * gate[:, :, None, None], gate


def _body(in_channels: int, width: int, num_classes: int) -> tuple[nn.Sequential, nn.Sequential]:
    features = nn.Sequential(ConvBNAct(in_channels, width, 3), ConvBNAct(width, 2 * width, 3, stride=2),
                             ConvBNAct(2 * width, 2 * width, 3))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))
    return features, head


class DCTNet(nn.Module):
    """A classifier on block-DCT channels: no stride layer before the body (the paper's point).

    Input are RGB images; the module converts them (YCbCr, 8x8 block DCT, reshape to 192 channels at 1/8 resolution)
    and standardises each channel with a ``BatchNorm2d(affine=False)`` (DCT coefficients differ in scale by orders of
    magnitude: the DC term is up to 8, high frequencies are near 0).

    Args:
        num_classes: outputs.
        width: channels of the body's first layer.
        gate: add a :class:`FrequencyGate` (train with :func:`gate_penalty_loss`).
        channels: indices of the DCT channels to keep (static selection), default all 192.

    Attributes: ``last_gate`` (Tensor[B, K] of the last forward, or None), ``features`` and ``head``.

    Shape: ``(B, 3, H, W) -> (B, num_classes)``, H and W multiples of 8.
    """

    def __init__(self, num_classes: int, width: int = 32, gate: bool = False,
                 channels: Sequence[int] | None = None) -> None:
        super().__init__()
        keep = torch.arange(192) if channels is None else torch.as_tensor(list(channels), dtype=torch.int64)
        if keep.numel() == 0 or keep.min() < 0 or keep.max() >= 192 or keep.unique().numel() != keep.numel():
            raise ValueError(f"channels must be distinct indices in 0..191, got {keep.tolist()}")
        self.register_buffer("channels", keep)
        k = keep.numel()
        self.standardise = nn.BatchNorm2d(k, affine=False)
        self.gate = FrequencyGate(k) if gate else None
        self.features, self.head = _body(k, width, num_classes)
        self.last_gate: Tensor | None = None

    def frequency_input(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` RGB -> ``(B, K, H/8, W/8)`` standardised DCT channels (the selected ones)."""
        coef = block_dct(rgb_to_ycbcr(images))           # (B, 3, H, W) -> (B, 192, H/8, W/8)
        return self.standardise(coef[:, self.channels])  # (B, 192, h, w) -> (B, K, h, w)

    def forward(self, images: Tensor) -> Tensor:
        x = self.frequency_input(images)
        if self.gate is not None:
            x, self.last_gate = self.gate(x)
        return self.head(self.features(x))


class SpatialNet(nn.Module):
    """The spatial baseline of :class:`DCTNet`: RGB pixels, three stride-2 ``ConvBNAct`` layers down to 1/8, then the
    same body. ``(B, 3, H, W) -> (B, num_classes)``."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        half = width // 2
        self.stem = nn.Sequential(ConvBNAct(3, half, 3, stride=2), ConvBNAct(half, half, 3, stride=2),
                                  ConvBNAct(half, width, 3, stride=2))  # (B, 3, H, W) -> (B, width, H/8, W/8)
        self.features, self.head = _body(width, width, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(self.stem(images)))


def gate_penalty_loss(model: DCTNet, lam: float) -> Callable[[Tensor, Tensor], Tensor]:
    """A ``loss_fn`` for :func:`cvcourse.train.fit`: cross-entropy + ``lam`` x (mean share of open gates).

    The paper adds such a term to push the gates to close channels the task does not need; ``lam`` trades accuracy
    for fewer channels. Reads ``model.last_gate`` from the forward pass that produced ``logits``.
    """
    if model.gate is None:
        raise ValueError("model has no gate; build it with DCTNet(..., gate=True)")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")

    def loss(logits: Tensor, targets: Tensor) -> Tensor:
        ce = F.cross_entropy(logits, targets)
        if model.last_gate is None or not model.training:
            return ce
        return ce + lam * model.last_gate.mean()

    return loss
