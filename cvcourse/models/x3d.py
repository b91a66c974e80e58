"""X3D (Feichtenhofer, 2020): a tiny video network grown one axis at a time.

Paper notebook ``lectures/papers/x3d.ipynb`` (extends lecture 4, efficient CNNs). X3D starts from a tiny
*image* network (one frame, MobileNet-style depthwise convolutions) and expands it step by step along six axes:
the number of frames (duration), the frame rate (temporal stride), the spatial resolution, the width, the depth
and the bottleneck width. At each step it trains one candidate per axis, keeps the one with the best accuracy
gain per added compute, and repeats.

- :class:`X3DConfig`         the six axes of one network (frames, stride, resolution, width, depth, bottleneck)
- :func:`expand`             one expansion step along one axis (``AXES``)
- :class:`ClipSampler`       the input axes: pick ``frames`` frames ``stride`` apart, resize to ``resolution``
- :class:`X3DBlock`          1x1x1 -> depthwise 3x3x3 -> 1x1x1 bottleneck with a residual (the X3D block)
- :class:`X3D`               stem, three stages of blocks, head; ``build_x3d`` puts a sampler in front
- :func:`conv3d_cost`        parameters and multiply-adds of a 3-D convolution by formula
- :func:`progressive_expansion`  the greedy search of the paper, for any ``train_and_evaluate`` function

Letter legend: B batch, C channels, T frames, H, W height and width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from cvcourse._checks import check_tensor
from cvcourse.models.cost import count_macs

__all__ = ["AXES", "X3DConfig", "expand", "ClipSampler", "X3DBlock", "X3D", "build_x3d", "conv3d_cost",
           "x3d_macs", "progressive_expansion"]

#: The axes :func:`expand` can grow, in the paper's order (gamma_t, gamma_tau, gamma_s, gamma_w, gamma_d, gamma_b).
AXES = ("frames", "stride", "resolution", "width", "depth", "bottleneck")


@dataclass(frozen=True)
class X3DConfig:
    """The six expandable axes of an X3D network (the paper's gamma factors, here as absolute sizes).

    Attributes:
        frames: T, frames the network sees (they span ``(frames - 1) * stride + 1`` source frames).
        stride: temporal stride between the sampled source frames (frame rate = 1 / stride).
        resolution: H = W of the frames the network sees.
        width: channels of the first stage (stages have ``width``, ``2 width``, ``4 width``).
        depth: blocks per stage.
        bottleneck: inner width of a block as a multiple of its output width (the paper's 2.25).
    """

    frames: int = 1
    stride: int = 4
    resolution: int = 16
    width: int = 8
    depth: int = 1
    bottleneck: float = 1.5

    def __post_init__(self) -> None:
        for name in ("frames", "stride", "resolution", "width", "depth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"X3DConfig.{name} must be an integer >= 1, got {v!r}")
        if self.resolution < 8:
            raise ValueError(f"X3DConfig.resolution must be >= 8 (the network downsamples 8x), got {self.resolution}")
        if not self.bottleneck > 0:
            raise ValueError(f"X3DConfig.bottleneck must be > 0, got {self.bottleneck!r}")

    @property
    def duration(self) -> int:
        """Source frames spanned by the sampled clip, ``(frames - 1) * stride + 1``."""
        return (self.frames - 1) * self.stride + 1


def expand(config: X3DConfig, axis: str, max_duration: int | None = None, max_resolution: int | None = None) -> X3DConfig | None:
    """One expansion step of ``config`` along ``axis`` (one of :data:`AXES`), as in the paper's Fig. 2.

    - ``"frames"``: twice the frames at the same stride (the clip lasts twice as long: the paper's gamma_t);
    - ``"stride"``: twice the frames at half the stride (same duration, twice the frame rate: gamma_tau);
    - ``"resolution"``: ``round(resolution * sqrt(2))`` (twice the pixels: gamma_s);
    - ``"width"``: twice the channels (gamma_w); ``"depth"``: twice the blocks per stage (gamma_d);
    - ``"bottleneck"``: twice the inner width of every block (gamma_b).

    Returns:
        the expanded :class:`X3DConfig`, or ``None`` when the axis cannot grow: ``stride`` already 1, a clip longer
        than ``max_duration`` source frames, or a resolution above ``max_resolution`` (the source's size).

    Raises:
        ValueError: for an unknown axis.
    """
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
    if axis == "frames":
        new = replace(config, frames=2 * config.frames)
    elif axis == "stride":
        if config.stride == 1:
            return None
        new = replace(config, frames=2 * config.frames, stride=config.stride // 2)
    elif axis == "resolution":
        new = replace(config, resolution=round(config.resolution * math.sqrt(2)))
    elif axis == "width":
        new = replace(config, width=2 * config.width)
    elif axis == "depth":
        new = replace(config, depth=2 * config.depth)
    else:
        new = replace(config, bottleneck=2 * config.bottleneck)
    if max_duration is not None and new.duration > max_duration:
        return None
    if max_resolution is not None and new.resolution > max_resolution:
        return None
    return new


class ClipSampler(nn.Module):
    """The input axes of X3D: take ``frames`` frames ``stride`` apart around the clip's centre, resize to ``resolution``.

    Shape: ``(B, C, T_src, H_src, W_src) -> (B, C, frames, resolution, resolution)``. The frames are
    ``c - (frames - 1) * stride / 2 + i * stride`` (rounded down), ``c = (T_src - 1) / 2``: a centred window. Resizing
    is bilinear with ``antialias=True``, so a lower resolution really loses detail (what the resolution axis buys).
    """

    def __init__(self, frames: int, stride: int, resolution: int) -> None:
        super().__init__()
        self.frames, self.stride, self.resolution = frames, stride, resolution

    def forward(self, x: Tensor) -> Tensor:
        check_tensor(x, "x")
        if x.dim() != 5:
            raise ValueError(f"x must be a batch of clips (B, C, T, H, W), got {tuple(x.shape)}")
        t_src = x.shape[2]
        if (self.frames - 1) * self.stride + 1 > t_src:
            raise ValueError(f"{self.frames} frames {self.stride} apart need {(self.frames - 1) * self.stride + 1} "
                             f"source frames, the clips have {t_src}")
        start = math.floor((t_src - 1) / 2 - (self.frames - 1) * self.stride / 2)
        idx = torch.arange(self.frames, device=x.device) * self.stride + start
        x = x[:, :, idx]                                                  # (B, C, frames, H, W)
        if x.shape[-2:] != (self.resolution, self.resolution):
            b, c, t, h, w = x.shape
            flat = x.transpose(1, 2).reshape(b * t, c, h, w)              # (B, C, T, H, W) -> (B T, C, H, W)
            flat = nn.functional.interpolate(flat, size=(self.resolution,) * 2, mode="bilinear",
                                             align_corners=False, antialias=True)
            x = flat.reshape(b, t, c, self.resolution, self.resolution).transpose(1, 2)  # -> (B, C, T, r, r)
        return x

    def extra_repr(self) -> str:
        return f"frames={self.frames}, stride={self.stride}, resolution={self.resolution}"


def _conv_bn_act(c_in: int, c_out: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1),
                 groups: int = 1, act: bool = True) -> nn.Sequential:
    pad = tuple(k // 2 for k in kernel)
    layers = [nn.Conv3d(c_in, c_out, kernel, stride, pad, groups=groups, bias=False), nn.BatchNorm3d(c_out)]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class X3DBlock(nn.Module):
    """The X3D residual block: 1x1x1 conv -> depthwise 3x3x3 conv -> 1x1x1 conv, plus a shortcut (paper, Table 1).

    ``c_in -> inner -> c_out`` with ``inner = round(bottleneck * c_out)``; the depthwise 3x3x3 convolution (one
    filter per channel, ``groups=inner``) is the only one that looks across frames and pixels, and it carries the
    spatial stride (1, 2, 2) of a stage's first block. The shortcut is the identity, or a strided 1x1x1 conv with
    BatchNorm when the shape changes. SiLU (Swish) activations; the paper's squeeze-excite is left out.

    Shape: ``(B, c_in, T, H, W) -> (B, c_out, T, ceil(H / s), ceil(W / s))``.
    """

    def __init__(self, c_in: int, c_out: int, bottleneck: float, spatial_stride: int = 1) -> None:
        super().__init__()
        inner = max(1, round(bottleneck * c_out))
        s = (1, spatial_stride, spatial_stride)
        self.expand = _conv_bn_act(c_in, inner, (1, 1, 1))
        self.depthwise = _conv_bn_act(inner, inner, (3, 3, 3), s, groups=inner)
        self.project = _conv_bn_act(inner, c_out, (1, 1, 1), act=False)
        self.shortcut = (nn.Identity() if c_in == c_out and spatial_stride == 1
                         else _conv_bn_act(c_in, c_out, (1, 1, 1), s, act=False))
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.project(self.depthwise(self.expand(x))) + self.shortcut(x))


class X3D(nn.Module):
    """A small X3D for clips already sampled to ``(B, 3, T, r, r)``; ``features`` then ``head``.

    Stem: a 1x3x3 conv (spatial stride 2) to ``width`` channels, then a depthwise 3x1x1 temporal conv (the paper's
    ``conv1``: 1x3x3 then 5x1x1 depthwise). Three stages of ``depth`` :class:`X3DBlock` each, widths ``width``,
    ``2 width``, ``4 width``, the first block of the second and third stage halving the resolution (8x overall).
    Head: 1x1x1 conv to ``8 width``, global average pool over ``(T, H, W)``, a linear classifier. Time is never
    strided (as in X3D), so ``T`` frames stay ``T`` to the end.

    Shape: ``(B, 3, T, r, r) -> (B, num_classes)``.
    """

    def __init__(self, config: X3DConfig, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.config = config
        w = config.width
        self.stem = nn.Sequential(_conv_bn_act(in_channels, w, (1, 3, 3), (1, 2, 2)),
                                  _conv_bn_act(w, w, (3, 1, 1), groups=w))
        blocks: list[nn.Module] = []
        c_in = w
        for i, c_out in enumerate((w, 2 * w, 4 * w)):
            for j in range(config.depth):
                blocks.append(X3DBlock(c_in, c_out, config.bottleneck, spatial_stride=2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        self.features = nn.Sequential(self.stem, *blocks, _conv_bn_act(c_in, 8 * w, (1, 1, 1)))
        self.head = nn.Linear(8 * w, num_classes)
        # channels-last 3-D layout: on the CPU, PyTorch's depthwise Conv3d backward runs about twice as fast in it
        self.to(memory_format=torch.channels_last_3d)

    def forward_features(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last_3d)
        return self.features(x)                                     # (B, 8 w, T, r/8, r/8)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x).mean(dim=(2, 3, 4)))  # (B, 8 w, T, h, w) -> (B, 8 w) -> (B, K)


def build_x3d(config: X3DConfig, num_classes: int) -> nn.Sequential:
    """``ClipSampler`` then :class:`X3D`: a model that takes the full source clips ``(B, 3, T_src, H, W)``."""
    return nn.Sequential(ClipSampler(config.frames, config.stride, config.resolution), X3D(config, num_classes))


def conv3d_cost(c_in: int, c_out: int, kernel: int | Sequence[int], out_thw: Sequence[int], groups: int = 1) -> tuple[int, int]:
    """Weights and multiply-adds of ``nn.Conv3d(c_in, c_out, kernel, groups=groups, bias=False)`` by formula.

    ``params = kt * kh * kw * (C_in / groups) * C_out`` and ``MACs = params * T_out * H_out * W_out``. A depthwise
    convolution (``groups = c_in = c_out = C``) costs ``k^3 C`` weights against ``k^3 C^2`` for a full one: ``C``
    times fewer. The 3-D counterpart of :func:`cvcourse.models.cost.conv_macs`.

    Raises:
        ValueError: when the channels are not divisible by ``groups`` or a size is not positive.
    """
    kt, kh, kw = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
    if c_in % groups or c_out % groups:
        raise ValueError(f"c_in={c_in} and c_out={c_out} must both be divisible by groups={groups}")
    if len(tuple(out_thw)) != 3 or min(out_thw) < 1 or min(kt, kh, kw) < 1:
        raise ValueError(f"out_thw must be 3 positive sizes (T, H, W) and the kernel positive, got {out_thw}, {kernel}")
    params = kt * kh * kw * (c_in // groups) * c_out
    t, h, w = out_thw
    return params, params * t * h * w


def x3d_macs(config: X3DConfig, num_classes: int = 4) -> int:
    """Multiply-adds of one clip through :class:`X3D` built from ``config`` (counted by :func:`count_macs`)."""
    model = X3D(config, num_classes)
    return count_macs(model, torch.zeros(1, 3, config.frames, config.resolution, config.resolution))


def progressive_expansion(base: X3DConfig, train_and_evaluate: Callable[[X3DConfig], float], steps: int,
                          axes: Sequence[str] = AXES, cost: Callable[[X3DConfig], float] = x3d_macs,
                          max_duration: int | None = None, max_resolution: int | None = None,
                          progress: Callable | None = None) -> list[dict]:
    """The paper's greedy search: at each step expand every axis once, keep the best accuracy gain per added cost.

    Step ``k`` trains one candidate per axis (``expand(current, axis)``; axes that cannot grow are skipped) with
    ``train_and_evaluate(config) -> accuracy`` and picks the candidate with the largest
    ``(acc - acc_current) / (cost - cost_current)``; when no candidate improves on the current accuracy, the one
    with the highest accuracy (the smallest loss) is kept, so the search always moves. The paper expands until a
    target complexity; we run a fixed number of ``steps``.

    Args:
        base: the starting network (trained and evaluated first).
        train_and_evaluate: trains a fresh model of a config and returns its validation accuracy.
        steps: number of expansion steps, >= 1.
        axes: the axes to try.
        cost: a config's compute (default: :func:`x3d_macs`).
        max_duration, max_resolution: passed to :func:`expand`.
        progress: optional wrapper for the candidate loop (e.g. ``tqdm``).

    Returns:
        one dict per step (step 0 = the base): ``{"config", "axis", "acc", "cost", "candidates"}`` where
        ``candidates`` maps each tried axis to ``(config, acc, cost)``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    bad = [a for a in axes if a not in AXES]
    if bad or not axes:
        raise ValueError(f"axes must be a non-empty subset of {AXES}, got {tuple(axes)}")
    current, acc, c = base, float(train_and_evaluate(base)), float(cost(base))
    path = [{"config": current, "axis": None, "acc": acc, "cost": c, "candidates": {}}]
    for _ in range(steps):
        candidates = {}
        tried = [(a, expand(current, a, max_duration, max_resolution)) for a in axes]
        tried = [(a, cfg) for a, cfg in tried if cfg is not None]
        if not tried:
            break
        for a, cfg in (progress(tried) if progress else tried):
            candidates[a] = (cfg, float(train_and_evaluate(cfg)), float(cost(cfg)))
        gains = {a: (v[1] - acc) / max(v[2] - c, 1e-12) for a, v in candidates.items()}
        if max(v[1] for v in candidates.values()) > acc:
            best = max(gains, key=gains.get)
        else:
            best = max(candidates, key=lambda a: candidates[a][1])
        current, acc, c = candidates[best]
        path.append({"config": current, "axis": best, "acc": acc, "cost": c, "candidates": candidates})
    return path
