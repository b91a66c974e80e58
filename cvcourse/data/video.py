"""Synthetic video, deterministic by seed: moving-shape clips and a side view of a table-tennis rally.

Used by the paper notebooks ``lectures/papers/x3d.ipynb`` (moving shapes: the class is how the shape moves, its
direction and optionally its speed, so one frame cannot tell it) and ``lectures/papers/ttnet.ipynb`` (table tennis: ball position, bounce events and a
segmentation mask per frame).

Letter legend: T frames, C colour channels (3), H, W height and width, N clips.
Convention: a pixel ``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)`` in continuous coordinates, so its
centre is ``(j + 0.5, i + 0.5)``; positions are ``(x, y)`` in those coordinates, ``y`` pointing down.

- :func:`moving_shape_clip`   one clip ``Tensor[C, T, H, W]`` of a shape moving in one of four directions
- :class:`MovingShapesClips`  a data set of such clips, ``(clip, direction + 4 * speed index)``
- :func:`table_tennis_clip`   one rally: frames, ball positions, bounce frames, segmentation masks
- :class:`TableTennisClip`    what :func:`table_tennis_clip` returns
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["DIRECTIONS", "moving_shape_clip", "MovingShapesClips", "TT_CLASSES", "TableTennisClip",
           "table_tennis_clip"]

#: Classes of :class:`MovingShapesClips`: the direction the shape moves in (image coordinates, y down).
DIRECTIONS = ("right", "left", "down", "up")
_UNIT = {"right": (1.0, 0.0), "left": (-1.0, 0.0), "down": (0.0, 1.0), "up": (0.0, -1.0)}
_SHAPES = ("square", "disc", "diamond")

#: Classes of :attr:`TableTennisClip.masks`.
TT_CLASSES = ("background", "table", "player")


def _check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _size(size: int | tuple[int, int], minimum: int) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    _check_positive_int(h, "size (H)", minimum)
    _check_positive_int(w, "size (W)", minimum)
    return int(h), int(w)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)``, each ``(H, W)``."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    return xs, ys


def _shape_coverage(kind: str, cx: np.ndarray, cy: np.ndarray, r: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape of radius ``r`` centred at ``(cx[t], cy[t])``: ``(T, H, W)``."""
    dx = xs[None] - cx[:, None, None]  # (T, H, W)
    dy = ys[None] - cy[:, None, None]
    if kind == "disc":
        dist = np.hypot(dx, dy)
    elif kind == "square":
        dist = np.maximum(np.abs(dx), np.abs(dy))
    else:  # diamond
        dist = (np.abs(dx) + np.abs(dy)) / np.sqrt(2.0)
    return np.clip(r + 0.5 - dist, 0.0, 1.0)


def moving_shape_clip(direction: int, frames: int = 16, size: int | tuple[int, int] = 32, speed: float = 1.0,
                      seed: int = 0, noise: float = 0.05) -> Tensor:
    """One clip of a random shape moving at constant velocity in one of :data:`DIRECTIONS` (paper notebook X3D).

    The shape (square, disc or diamond, radius 3-5 px, random colour) is, at the clip's middle time ``(T - 1) / 2``,
    at a random place drawn from a range that keeps the whole path inside the frame for *every* direction, on a
    random flat background with Gaussian pixel noise. The random draws do not depend on ``direction``: the same
    seed gives the same shape, colours and middle position for all four directions, so the middle frame (exactly,
    for odd T) is the same picture whatever the class; only the change between frames tells them apart.

    Args:
        direction: index into :data:`DIRECTIONS` (0 right, 1 left, 2 down, 3 up).
        frames: T, >= 1.
        size: ``H`` (square frames) or ``(H, W)``, each >= 16.
        speed: pixels per frame, > 0; the shape travels ``speed * (T - 1)`` px, which must fit in the frame.
        seed: the same seed gives the same clip.
        noise: standard deviation of the added pixel noise, >= 0.

    Returns:
        Tensor[3, T, H, W] float32 in [0, 1] (the ``(C, T, H, W)`` layout of ``nn.Conv3d``).

    Raises:
        ValueError: for a direction outside 0-3, a bad size / frame count / speed / noise, or a path longer than
            the frame.
    """
    if isinstance(direction, bool) or not isinstance(direction, (int, np.integer)) or not 0 <= direction < 4:
        raise ValueError(f"direction must be an integer in 0..3 (one of {DIRECTIONS}), got {direction!r}")
    frames = _check_positive_int(frames, "frames")
    h, w = _size(size, 16)
    if not speed > 0:
        raise ValueError(f"speed must be > 0 pixels per frame, got {speed!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    kind = _SHAPES[rng.integers(len(_SHAPES))]
    r = float(rng.uniform(3.0, 5.0))
    ux, uy = _UNIT[DIRECTIONS[direction]]
    travel = speed * (frames - 1)
    margin = r + 1.0
    span_x, span_y = w - 2 * margin - travel, h - 2 * margin - travel
    if span_x < 0 or span_y < 0:
        raise ValueError(f"a path of {travel:.1f} px (speed {speed} x {frames - 1} steps) does not fit in a "
                         f"{h}x{w} frame with a radius-{r:.1f} shape; use fewer frames, a lower speed or a larger size")
    # the position at the clip's middle time (T - 1) / 2 is drawn from the same range whatever the direction, so
    # that where the shape is in the middle frame says nothing about where it is going
    xm = margin + travel / 2 + rng.uniform(0, span_x)
    ym = margin + travel / 2 + rng.uniform(0, span_y)
    t = np.arange(frames, dtype=np.float64) - (frames - 1) / 2
    cx, cy = xm + ux * speed * t, ym + uy * speed * t
    xs, ys = _grid(h, w)
    alpha = _shape_coverage(kind, cx, cy, r, xs, ys)[None]                 # (1, T, H, W)
    bg = rng.uniform(0.0, 1.0, size=3)
    fg = (bg + rng.uniform(0.35, 0.65, size=3) * rng.choice([-1, 1], size=3)) % 1.0
    clip = bg[:, None, None, None] * (1 - alpha) + fg[:, None, None, None] * alpha   # (3, T, H, W)
    clip = clip + rng.normal(0.0, noise, size=clip.shape) if noise else clip
    return torch.from_numpy(np.clip(clip, 0.0, 1.0).astype(np.float32))


class MovingShapesClips(Dataset):
    """``n`` moving-shape clips labelled by how the shape moves (paper notebook X3D); items ``(Tensor[3, T, H, W], int)``.

    The label is ``direction + 4 * speed_index``: one of the four :data:`DIRECTIONS` at one of the ``speeds``
    (px per frame), so there are ``4 * len(speeds)`` classes (:attr:`num_classes`); the default two speeds make
    8 classes: direction needs two frames, telling slow from fast needs a long enough or fine enough look.
    Labels cycle through the classes (balanced); clip ``i`` of split ``"train"`` / ``"val"`` uses its own seed
    derived from ``(seed, split, i)``, so the two splits never share a clip.
    """

    def __init__(self, n: int, split: str = "train", frames: int = 16, size: int | tuple[int, int] = 32,
                 speeds: tuple[float, ...] = (0.5, 1.0), seed: int = 0, noise: float = 0.05) -> None:
        self.n = _check_positive_int(n, "n")
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        speeds = tuple(float(v) for v in speeds)
        if not speeds or min(speeds) <= 0:
            raise ValueError(f"speeds must be a non-empty sequence of positive px-per-frame values, got {speeds!r}")
        self.split, self.frames, self.size, self.speeds, self.seed, self.noise = split, frames, size, speeds, seed, noise
        self.num_classes = 4 * len(speeds)
        self.labels = torch.arange(self.n) % self.num_classes
        self._base = int(np.random.SeedSequence([seed, 0 if split == "train" else 1]).generate_state(1)[0])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} clips")
        label = int(self.labels[i])
        clip = moving_shape_clip(label % 4, self.frames, self.size, self.speeds[label // 4],
                                 seed=self._base + 7919 * i, noise=self.noise)
        return clip, label


@dataclass
class TableTennisClip:
    """A synthetic table-tennis rally seen from the side (paper notebook TTNet).

    Attributes:
        frames (Tensor[T, 3, H, W]): float32 RGB in [0, 1].
        ball (Tensor[T, 2]): ball centre ``(x, y)`` in continuous pixel coordinates (see the module docstring).
        bounces (Tensor[K]): int64 frame indices where the ball hits the table (its vertical velocity flips from
            down to up: ``y[t]`` is larger than ``y[t - 1]`` and ``y[t + 1]``).
        events (Tensor[T]): bool, True at the bounce frames.
        masks (Tensor[T, H, W]): int64 classes of :data:`TT_CLASSES` (the ball is not a class: finding it is the
            position head's job).
        ball_radius: radius of the rendered ball in pixels.
    """

    frames: Tensor
    ball: Tensor
    bounces: Tensor
    events: Tensor
    masks: Tensor
    ball_radius: float


def _trajectory(rng: np.random.Generator, frames: int, h: int, w: int, table_y: float, x_lo: float, x_hi: float,
                r: float) -> np.ndarray:
    """Ball centres ``(T, 2)``: gravity, bounces on the table top (restitution < 1), returned at the ends."""
    g = rng.uniform(0.25, 0.4)                        # px / frame^2
    e = rng.uniform(0.8, 0.95)                        # restitution of a bounce
    floor = table_y - r                               # the centre's lowest point: ball resting on the table
    x, y = rng.uniform(x_lo, x_hi), rng.uniform(0.3 * h, floor - 0.2 * h)
    vx, vy = rng.uniform(1.5, 3.0) * rng.choice([-1, 1]), rng.uniform(-1.0, 1.0)
    out = np.empty((frames, 2))
    for t in range(frames):
        out[t] = x, y
        # one frame of motion in 20 sub-steps, so that a bounce happens at the right time within the frame
        for _ in range(20):
            vy += g / 20
            x, y = x + vx / 20, y + vy / 20
            if y > floor:                             # bounce: reflect the overshoot and lose some speed
                y, vy = floor - (y - floor) * e, -abs(vy) * e
                if vy > -1.5:                         # the rally would die out: the player lifts the ball again
                    vy = -rng.uniform(2.5, 3.5)
            if not x_lo <= x <= x_hi:                 # a racket hit at the end of the table sends the ball back
                x, vx = np.clip(x, x_lo, x_hi), -vx
            y = max(y, r + 1.0)                       # never leave the top of the frame
            vy = max(vy, -4.5) if y <= r + 1.0 else vy
    return out


def table_tennis_clip(frames: int = 32, size: tuple[int, int] = (48, 64), seed: int = 0,
                      noise: float = 0.03) -> TableTennisClip:
    """A synthetic table-tennis rally, side view (paper notebook TTNet).

    A green background, a dark blue table (a horizontal slab across the lower part of the frame, with legs), a
    red "player" rectangle that sways at one end, and a white ball of radius 1.5-2.2 px moving under gravity: it
    bounces on the table top (vertical velocity flips, with restitution 0.8-0.95) and is sent back at the table's
    ends. The ball is drawn anti-aliased at sub-pixel positions; ``ball`` is its exact centre.

    Args:
        frames: T, >= 3.
        size: ``(H, W)``, each >= 32.
        seed: the same seed gives the same clip.
        noise: standard deviation of the added pixel noise, >= 0.

    Returns:
        :class:`TableTennisClip`.

    Raises:
        ValueError: for fewer than 3 frames, a frame smaller than 32x32 or a negative noise.
    """
    frames = _check_positive_int(frames, "frames", 3)
    h, w = _size(size, 32)
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    r = float(rng.uniform(1.5, 2.2))
    table_y = float(rng.uniform(0.62, 0.72) * h)                     # the table top, continuous y
    tx0, tx1 = float(rng.uniform(0.08, 0.15) * w), float(rng.uniform(0.85, 0.92) * w)
    ball = _trajectory(rng, frames, h, w, table_y, tx0 + r + 1, tx1 - r - 1, r)

    xs, ys = _grid(h, w)
    table = (xs >= tx0) & (xs < tx1) & (ys >= table_y) & (ys < table_y + 0.06 * h)
    legs = ((np.abs(xs - (tx0 + 0.1 * w)) < 1.0) | (np.abs(xs - (tx1 - 0.1 * w)) < 1.0)) & (ys >= table_y)
    table = table | legs
    side = rng.choice([0, 1])                                        # the player stands left or right
    pw, ph = 0.08 * w, 0.45 * h
    px = (0.0 if side == 0 else w - pw) + (0.02 * w if side == 0 else -0.02 * w)
    sway = 1.5 * np.sin(np.arange(frames) * rng.uniform(0.2, 0.4) + rng.uniform(0, 2 * np.pi))
    py0 = table_y - 0.6 * ph
    player = ((xs[None] >= px + sway[:, None, None]) & (xs[None] < px + pw + sway[:, None, None])
              & (ys[None] >= py0) & (ys[None] < py0 + ph))            # (T, H, W)

    masks = np.zeros((frames, h, w), dtype=np.int64)
    masks[:, table] = 1
    masks[player] = 2
    palette = np.array([[0.15, 0.45, 0.2], [0.1, 0.2, 0.6], [0.75, 0.2, 0.2]]) + rng.uniform(-0.05, 0.05, (3, 3))
    img = palette[masks]                                             # (T, H, W, 3)
    alpha = _shape_coverage("disc", ball[:, 0], ball[:, 1], r, xs, ys)[..., None]   # (T, H, W, 1)
    img = img * (1 - alpha) + 1.0 * alpha                            # a white ball on top
    if noise:
        img = img + rng.normal(0.0, noise, size=img.shape)
    frames_t = torch.from_numpy(np.clip(img, 0, 1).astype(np.float32)).permute(0, 3, 1, 2)  # (T, H, W, 3) -> (T, 3, H, W)

    y = ball[:, 1]
    is_bounce = np.zeros(frames, dtype=bool)
    is_bounce[1:-1] = (y[1:-1] > y[:-2]) & (y[1:-1] > y[2:])
    return TableTennisClip(frames=frames_t, ball=torch.from_numpy(ball.astype(np.float32)),
                           bounces=torch.from_numpy(np.flatnonzero(is_bounce)), events=torch.from_numpy(is_bounce),
                           masks=torch.from_numpy(masks), ball_radius=r)
