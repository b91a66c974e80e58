"""cvcourse.data.video: shapes, determinism, labels that match what is drawn, errors."""

import numpy as np
import pytest
import torch

from cvcourse.data.video import (
    DIRECTIONS,
    MovingShapesClips,
    TT_CLASSES,
    moving_shape_clip,
    table_tennis_clip,
)


def _centroids(clip):
    """Per-frame centroid (x, y) of the pixels that differ from the frame's most common colour, (T, 2)."""
    out = []
    for f in clip.permute(1, 0, 2, 3):  # (3, T, H, W) -> (T, 3, H, W)
        bg = f.reshape(3, -1).median(dim=1).values[:, None, None]
        weight = (f - bg).abs().sum(0)
        ys, xs = torch.meshgrid(torch.arange(f.shape[1]) + 0.5, torch.arange(f.shape[2]) + 0.5, indexing="ij")
        out.append(torch.stack([(weight * xs).sum() / weight.sum(), (weight * ys).sum() / weight.sum()]))
    return torch.stack(out)


def test_moving_shape_clip_shape_range_and_determinism():
    a = moving_shape_clip(0, frames=8, size=(24, 40), speed=1.0, seed=3)
    assert a.shape == (3, 8, 24, 40) and a.dtype == torch.float32
    assert 0 <= a.min() and a.max() <= 1
    torch.testing.assert_close(a, moving_shape_clip(0, frames=8, size=(24, 40), speed=1.0, seed=3), rtol=0, atol=0)
    assert not torch.equal(a, moving_shape_clip(0, frames=8, size=(24, 40), speed=1.0, seed=4))


@pytest.mark.parametrize("direction", range(4))
def test_the_shape_moves_in_the_labelled_direction_at_the_given_speed(direction):
    clip = moving_shape_clip(direction, frames=10, size=32, speed=1.5, seed=direction, noise=0.0)
    c = _centroids(clip)
    step = (c[1:] - c[:-1]).mean(0)  # mean displacement per frame, (x, y)
    expected = {"right": (1.5, 0.0), "left": (-1.5, 0.0), "down": (0.0, 1.5), "up": (0.0, -1.5)}[DIRECTIONS[direction]]
    torch.testing.assert_close(step, torch.tensor(expected), atol=0.05, rtol=0)


def test_the_middle_frame_does_not_tell_the_direction():
    # same seed, four directions: the middle frame of an odd-length clip is the same picture
    clips = [moving_shape_clip(d, frames=9, size=32, speed=1.0, seed=5) for d in range(4)]
    for c in clips[1:]:
        torch.testing.assert_close(c[:, 4], clips[0][:, 4], rtol=0, atol=0)
    assert not torch.equal(clips[0][:, 0], clips[1][:, 0])


def test_moving_shapes_dataset_is_balanced_disjoint_and_deterministic():
    train, val = MovingShapesClips(8, "train", frames=6, seed=0), MovingShapesClips(8, "val", frames=6, seed=0)
    assert len(train) == 8 and train[0][0].shape == (3, 6, 32, 32)
    assert train.num_classes == 8 and np.bincount(train.labels.numpy()).tolist() == [1] * 8
    assert MovingShapesClips(8, speeds=(1.0,)).num_classes == 4
    torch.testing.assert_close(train[5][0], MovingShapesClips(8, "train", frames=6, seed=0)[5][0], rtol=0, atol=0)
    assert not torch.equal(train[5][0], val[5][0])
    with pytest.raises(IndexError):
        train[8]


def test_table_tennis_clip_shapes_and_determinism():
    c = table_tennis_clip(20, size=(40, 56), seed=2)
    assert c.frames.shape == (20, 3, 40, 56) and c.ball.shape == (20, 2) and c.masks.shape == (20, 40, 56)
    assert c.events.shape == (20,) and c.events.dtype == torch.bool
    assert set(c.masks.unique().tolist()) <= set(range(len(TT_CLASSES))) and (c.masks == 1).any() and (c.masks == 2).any()
    d = table_tennis_clip(20, size=(40, 56), seed=2)
    torch.testing.assert_close(c.frames, d.frames, rtol=0, atol=0)
    torch.testing.assert_close(c.ball, d.ball, rtol=0, atol=0)
    assert not torch.equal(c.ball, table_tennis_clip(20, size=(40, 56), seed=3).ball)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ball_label_is_the_centroid_of_the_rendered_ball(seed):
    c = table_tennis_clip(40, seed=seed, noise=0.0)
    # the ball is the only white thing: its coverage is how far the darkest channel rose towards 1
    lo = c.frames.min(dim=1).values                                  # (T, H, W)
    base = torch.where(lo < 0.5, lo, torch.zeros_like(lo)).amax(dim=(1, 2), keepdim=True)  # brightest non-ball min
    weight = ((lo - base) / (1 - base)).clamp(min=0)
    ys, xs = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    centroid = torch.stack([(weight * xs).sum((1, 2)), (weight * ys).sum((1, 2))], 1) / weight.sum((1, 2))[:, None]
    torch.testing.assert_close(centroid, c.ball, atol=0.35, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_bounces_are_where_the_vertical_velocity_flips_down_to_up_at_the_table(seed):
    c = table_tennis_clip(60, seed=seed)
    vy = c.ball[1:, 1] - c.ball[:-1, 1]                              # velocity from frame t to t + 1
    flips = [t for t in range(1, 59) if vy[t - 1] > 0 and vy[t] < 0]
    assert c.bounces.tolist() == flips and len(flips) >= 2
    assert c.events.nonzero().flatten().tolist() == flips
    # each bounce happens at the table top: the ball is within a frame's travel of resting on the table there
    table_rows = (c.masks[0] == 1).any(dim=1).nonzero().flatten()
    table_top = float(table_rows.min())
    low = c.ball[c.bounces, 1] + c.ball_radius
    assert ((low > table_top - 4.0) & (low <= table_top + 1.0)).all(), (low, table_top)


def test_errors():
    with pytest.raises(ValueError, match="direction"):
        moving_shape_clip(4)
    with pytest.raises(ValueError, match="frames"):
        moving_shape_clip(0, frames=0)
    with pytest.raises(ValueError, match="does not fit"):
        moving_shape_clip(0, frames=40, size=16, speed=2.0)
    with pytest.raises(ValueError, match="speed"):
        moving_shape_clip(0, speed=0.0)
    with pytest.raises(ValueError, match="split"):
        MovingShapesClips(4, "test")
    with pytest.raises(ValueError, match="speeds"):
        MovingShapesClips(4, speeds=(0.5, -1.0))
    with pytest.raises(ValueError, match="frames"):
        table_tennis_clip(2)
    with pytest.raises(ValueError, match="size"):
        table_tennis_clip(10, size=(20, 64))
    with pytest.raises(ValueError, match="noise"):
        table_tennis_clip(10, noise=-1.0)
