"""cvcourse.models.x3d: shapes, the cost of depthwise 3-D convolutions, the expansion operator and the greedy search."""

import math

import pytest
import torch
from torch import nn

from cvcourse.models.cost import count_macs, count_parameters
from cvcourse.models.x3d import (
    AXES,
    ClipSampler,
    X3D,
    X3DBlock,
    X3DConfig,
    build_x3d,
    conv3d_cost,
    expand,
    progressive_expansion,
    x3d_macs,
)


@pytest.mark.parametrize("cfg", [X3DConfig(), X3DConfig(frames=4, stride=2, resolution=23, width=4, depth=2, bottleneck=3.0)])
def test_output_shapes(cfg):
    torch.manual_seed(0)
    model = X3D(cfg, num_classes=5)
    x = torch.rand(2, 3, cfg.frames, cfg.resolution, cfg.resolution)
    assert model(x).shape == (2, 5)
    feats = model.forward_features(x)
    assert feats.shape == (2, 8 * cfg.width, cfg.frames, math.ceil(cfg.resolution / 8), math.ceil(cfg.resolution / 8))
    full = build_x3d(cfg, 5)
    assert full(torch.rand(2, 3, 16, 32, 32)).shape == (2, 5)
    assert sum(isinstance(m, X3DBlock) for m in model.modules()) == 3 * cfg.depth


def test_block_is_bottleneck_with_depthwise_3d_conv():
    block = X3DBlock(8, 16, bottleneck=2.0, spatial_stride=2)
    dw = block.depthwise[0]
    assert isinstance(dw, nn.Conv3d) and dw.groups == dw.in_channels == dw.out_channels == 32
    assert dw.kernel_size == (3, 3, 3) and dw.stride == (1, 2, 2)
    assert block(torch.rand(1, 8, 3, 8, 8)).shape == (1, 16, 3, 4, 4)


def test_clip_sampler_takes_centred_frames_stride_apart():
    src = torch.arange(9.0).reshape(1, 1, 9, 1, 1).expand(2, 3, 9, 8, 8)  # frame t holds the value t
    # 3 frames 2 apart around the centre frame 4: frames 2, 4, 6
    out = ClipSampler(3, 2, 8)(src)
    assert out.shape == (2, 3, 3, 8, 8)
    assert out[0, 0, :, 0, 0].tolist() == [2.0, 4.0, 6.0]
    assert ClipSampler(1, 4, 8)(src)[0, 0, :, 0, 0].tolist() == [4.0]
    # resizing a constant frame keeps it constant
    assert torch.allclose(ClipSampler(2, 1, 4)(src), torch.full((2, 3, 2, 4, 4), 3.0) + torch.tensor([0.0, 1.0]).view(1, 1, 2, 1, 1))
    with pytest.raises(ValueError, match="source frames"):
        ClipSampler(4, 3, 8)(src)  # needs 10 frames
    with pytest.raises(ValueError, match="B, C, T, H, W"):
        ClipSampler(1, 1, 8)(torch.rand(3, 8, 8))


@pytest.mark.parametrize("c,t,h,w", [(8, 4, 6, 6), (12, 1, 5, 7)])
def test_depthwise_conv3d_macs_match_the_hand_formula_and_the_counter(c, t, h, w):
    dw = nn.Conv3d(c, c, 3, padding=1, groups=c, bias=False)
    full = nn.Conv3d(c, c, 3, padding=1, bias=False)
    x = torch.rand(1, c, t, h, w)
    # one 3x3x3 filter per channel, applied at every output position: 27 * C * T * H * W multiply-adds
    assert count_macs(dw, x) == 27 * c * t * h * w
    assert count_macs(full, x) == 27 * c * c * t * h * w
    assert conv3d_cost(c, c, 3, (t, h, w), groups=c) == (27 * c, 27 * c * t * h * w)
    assert conv3d_cost(c, c, 3, (t, h, w)) == (27 * c * c, 27 * c * c * t * h * w)
    assert conv3d_cost(c, c, 3, (t, h, w), groups=c)[0] == count_parameters(dw)
    assert conv3d_cost(c, 2 * c, (3, 1, 1), (t, h, w)) == (3 * 2 * c * c, 6 * c * c * t * h * w)


def test_x3d_macs_counts_the_temporal_axis_linearly():
    # time is never strided, so every layer's output has T frames: twice the frames, twice the multiply-adds
    one, two = x3d_macs(X3DConfig(frames=2)), x3d_macs(X3DConfig(frames=4))
    # the convolutions double; the classifier sees the pooled vector, 8 * width -> 4 classes, whatever T
    head = 8 * 8 * 4
    assert two - head == 2 * (one - head)


def test_expand_each_axis():
    base = X3DConfig(frames=2, stride=4, resolution=16, width=8, depth=1, bottleneck=1.5)
    assert expand(base, "frames") == X3DConfig(4, 4, 16, 8, 1, 1.5)
    assert expand(base, "stride") == X3DConfig(4, 2, 16, 8, 1, 1.5)     # same span, twice the frame rate
    assert expand(base, "stride").duration == base.duration + 2  # (4 - 1) * 2 + 1 = 7 vs (2 - 1) * 4 + 1 = 5
    assert expand(base, "resolution") == X3DConfig(2, 4, 23, 8, 1, 1.5)  # round(16 * 1.414) = 23
    assert expand(base, "width") == X3DConfig(2, 4, 16, 16, 1, 1.5)
    assert expand(base, "depth") == X3DConfig(2, 4, 16, 8, 2, 1.5)
    assert expand(base, "bottleneck") == X3DConfig(2, 4, 16, 8, 1, 3.0)
    assert expand(X3DConfig(stride=1), "stride") is None
    assert expand(base, "frames", max_duration=12) is None            # 4 frames 4 apart span 13 source frames
    assert expand(base, "frames", max_duration=13) == X3DConfig(4, 4, 16, 8, 1, 1.5)
    assert expand(base, "resolution", max_resolution=20) is None
    with pytest.raises(ValueError, match="axis"):
        expand(base, "height")


def test_expand_respects_max_duration():
    base = X3DConfig(frames=4, stride=4)                     # spans 13 source frames
    assert expand(base, "frames", max_duration=16) is None   # 8 frames 4 apart span 29
    assert expand(base, "stride", max_duration=16) == X3DConfig(frames=8, stride=2)  # spans 15


def test_progressive_expansion_picks_the_best_gain_per_cost():
    # a made-up world: accuracy grows with frames fast and with width slowly; cost = frames * width * depth
    def acc(cfg):
        return min(1.0, 0.2 * cfg.frames + 0.01 * cfg.width + 0.001 * cfg.depth)

    def cost(cfg):
        return float(cfg.frames * cfg.width * cfg.depth)

    base = X3DConfig(frames=1, stride=4, width=8)
    path = progressive_expansion(base, acc, steps=2, axes=("frames", "width", "depth"), cost=cost)
    # base: acc 0.281, cost 8. Step 1: frames -> 0.481 (+0.2 for +8 cost: 0.025 per unit); width -> 0.361 (0.01 per
    # unit); depth -> 0.282. Step 2 from (0.481, 16): frames -> 0.881 (+0.4 for +16: 0.025); width -> 0.561 (0.005)
    assert [p["axis"] for p in path] == [None, "frames", "frames"]
    assert path[1]["config"] == X3DConfig(frames=2, stride=4, width=8)
    assert path[2]["cost"] == 32.0 and path[2]["acc"] == pytest.approx(0.881)
    assert set(path[1]["candidates"]) == {"frames", "width", "depth"}


def test_progressive_expansion_moves_to_the_most_accurate_when_nothing_improves():
    def acc(cfg):
        return 0.5 - 0.1 * (cfg.width > 8) - 0.2 * (cfg.depth > 1)

    path = progressive_expansion(X3DConfig(), acc, steps=1, axes=("width", "depth"), cost=lambda c: float(c.width * c.depth))
    assert path[1]["axis"] == "width"


def test_errors():
    with pytest.raises(ValueError, match="frames"):
        X3DConfig(frames=0)
    with pytest.raises(ValueError, match="resolution"):
        X3DConfig(resolution=4)
    with pytest.raises(ValueError, match="bottleneck"):
        X3DConfig(bottleneck=0)
    with pytest.raises(ValueError, match="num_classes"):
        X3D(X3DConfig(), num_classes=1)
    with pytest.raises(ValueError, match="groups"):
        conv3d_cost(6, 8, 3, (1, 2, 2), groups=4)
    with pytest.raises(ValueError, match="steps"):
        progressive_expansion(X3DConfig(), lambda c: 0.0, steps=0)
    with pytest.raises(ValueError, match="axes"):
        progressive_expansion(X3DConfig(), lambda c: 0.0, steps=1, axes=("colour",))
    assert AXES == ("frames", "stride", "resolution", "width", "depth", "bottleneck")
