"""Box coder, anchors, RPN and RoI-head parts of cvcourse.detection, against torchvision's detection internals."""

import math

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection import _utils as tv_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import fastrcnn_loss
from torchvision.models.detection.rpn import RPNHead as TVRPNHead
from torchvision.models.detection.rpn import concat_box_prediction_layers

from cvcourse.detection import (
    AnchorGenerator,
    BoxCoder,
    FastRCNNHead,
    RPNHead,
    decode_boxes,
    encode_boxes,
    fast_rcnn_loss,
    filter_proposals,
    match_boxes,
    postprocess_detections,
    rpn_loss,
    sample_balanced,
)
from cvcourse.ops import box_iou


def random_boxes(n, size=100.0, generator=None, dtype=torch.float32):
    xy = torch.rand(n, 2, generator=generator, dtype=dtype) * size
    wh = torch.rand(n, 2, generator=generator, dtype=dtype) * size / 2 + 1
    return torch.cat([xy, xy + wh], dim=1)


# ---------------------------------------------------------------- box coder
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_encode_decode_match_torchvision(weights, dtype, device):
    g = torch.Generator().manual_seed(0)
    gt, props = random_boxes(50, generator=g, dtype=dtype).to(device), random_boxes(50, generator=g, dtype=dtype).to(device)
    tv = tv_utils.BoxCoder(weights)
    torch.testing.assert_close(encode_boxes(gt, props, weights), tv.encode_single(gt, props))
    deltas = torch.randn(50, 12, generator=g, dtype=dtype).to(device) * 3  # 3 classes, some dw/dh clamped
    deltas[0, 2] = 100.0
    torch.testing.assert_close(decode_boxes(deltas, props, weights), tv.decode_single(deltas, props))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0, 200), min_size=2, max_size=2), st.lists(st.floats(4, 200), min_size=2, max_size=2),
    st.lists(st.floats(0, 200), min_size=2, max_size=2), st.lists(st.floats(4, 200), min_size=2, max_size=2),
)
def test_decode_inverts_encode(gxy, gwh, pxy, pwh):
    # size ratios stay below 1000 / 16, where decode clamps dw, dh (see test_decode_clamps_large_dw_dh)
    gt = torch.tensor([gxy + [gxy[0] + gwh[0], gxy[1] + gwh[1]]], dtype=torch.float64)
    prop = torch.tensor([pxy + [pxy[0] + pwh[0], pxy[1] + pwh[1]]], dtype=torch.float64)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    torch.testing.assert_close(coder.decode(coder.encode(gt, prop), prop), gt)


def test_encode_known_answer():
    # proposal centre (5, 5), size 10 x 10; target centre (10, 5), size 20 x 5
    prop = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    gt = torch.tensor([[0.0, 2.5, 20.0, 7.5]])
    expected = torch.tensor([[(10 - 5) / 10, 0.0, math.log(2.0), math.log(0.5)]])
    torch.testing.assert_close(encode_boxes(gt, prop), expected)


def test_decode_clamps_large_dw_dh():
    prop = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    out = decode_boxes(torch.tensor([[0.0, 0.0, 50.0, 50.0]]), prop)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 2] - out[0, 0], torch.tensor(1000.0))  # 16 * exp(log(1000/16))


def test_box_coder_errors():
    with pytest.raises(ValueError, match="pair up one to one"):
        encode_boxes(random_boxes(3), random_boxes(4))
    with pytest.raises(ValueError, match=r"deltas must have shape \(N, 4K\)"):
        decode_boxes(torch.zeros(3, 5), random_boxes(3))
    with pytest.raises(ValueError, match="weights must have 4 entries"):
        BoxCoder((1.0, 1.0))
    with pytest.raises(ValueError, match="x2 < x1"):
        encode_boxes(torch.tensor([[5.0, 0.0, 1.0, 1.0]]), random_boxes(1))


# ---------------------------------------------------------------- anchors
@pytest.mark.parametrize("image_size,feature_size", [((64, 64), (8, 8)), ((128, 96), (16, 12)), ((50, 70), (7, 9))])
def test_anchors_match_torchvision(image_size, feature_size, device):
    sizes, ratios = (16, 32, 64), (0.5, 1.0, 2.0)
    ours = AnchorGenerator(sizes, ratios)(image_size, feature_size, device=device)
    tv = TVAnchorGenerator((sizes,), (ratios,))
    images = ImageList(torch.zeros(1, 3, *image_size, device=device), [image_size])
    expected = tv(images, [torch.zeros(1, 8, *feature_size, device=device)])[0]
    assert ours.shape == (feature_size[0] * feature_size[1] * 9, 4)
    torch.testing.assert_close(ours, expected)


def test_anchor_shapes_known_answer():
    # size 32, ratio h/w = 4: width 32 / 2 = 16, height 32 * 2 = 64, centred on the cell corner (0, 0)
    a = AnchorGenerator((32,), (4.0,))((32, 32), (2, 2))
    torch.testing.assert_close(a[0], torch.tensor([-8.0, -32.0, 8.0, 32.0]))
    torch.testing.assert_close(a[1], torch.tensor([8.0, -32.0, 24.0, 32.0]))  # next column: stride 16


def test_anchor_errors():
    with pytest.raises(ValueError, match="positive"):
        AnchorGenerator((0, 32))
    with pytest.raises(ValueError, match="no larger than image_size"):
        AnchorGenerator()((8, 8), (16, 16))


# ---------------------------------------------------------------- RPN
def test_rpn_head_layout_matches_torchvision():
    torch.manual_seed(0)
    ours, tv = RPNHead(8, 6), TVRPNHead(8, 6)
    for p in ours.parameters():
        torch.nn.init.normal_(p)
    tv.conv[0][0].load_state_dict(ours.conv.state_dict())
    tv.cls_logits.load_state_dict(ours.cls_logits.state_dict())
    tv.bbox_pred.load_state_dict(ours.bbox_pred.state_dict())
    x = torch.randn(2, 8, 5, 7)
    obj, deltas = ours(x)
    tv_obj, tv_deltas = concat_box_prediction_layers(*tv([x]))
    torch.testing.assert_close(obj.reshape(-1, 1), tv_obj)
    torch.testing.assert_close(deltas.reshape(-1, 4), tv_deltas)


@pytest.mark.parametrize("low_quality", [False, True])
def test_match_boxes_matches_torchvision(low_quality):
    g = torch.Generator().manual_seed(1)
    iou = box_iou(random_boxes(5, generator=g), random_boxes(300, generator=g))
    expected = tv_utils.Matcher(0.7, 0.3, allow_low_quality_matches=low_quality)(iou)
    torch.testing.assert_close(match_boxes(iou, 0.7, 0.3, low_quality), expected)


def test_match_boxes_edge_cases():
    assert match_boxes(torch.zeros(0, 4), 0.7, 0.3).tolist() == [-1, -1, -1, -1]
    # exactly at the thresholds: 0.7 is foreground, 0.3 is "between" (ignored), just below 0.3 is background
    iou = torch.tensor([[0.7, 0.3, 0.2999]])
    assert match_boxes(iou, 0.7, 0.3).tolist() == [0, -2, -1]
    with pytest.raises(ValueError, match="must not exceed"):
        match_boxes(iou, 0.3, 0.7)


def test_sample_balanced_respects_fraction():
    labels = torch.tensor([1] * 50 + [0] * 500 + [-1] * 10)
    pos, neg = sample_balanced(labels, 64, 0.25, torch.Generator().manual_seed(0))
    assert len(pos) == 16 and len(neg) == 48
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    pos, neg = sample_balanced(torch.tensor([1, 0, 0]), 64, 0.5)  # too few of both: take all
    assert sorted(pos.tolist()) == [0] and sorted(neg.tolist()) == [1, 2]


def test_rpn_loss_known_answer():
    # zero logits: every sampled anchor costs log(2); anchors that sit exactly on a box and zero deltas cost 0
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0], [20.0, 20.0, 30.0, 30.0]])
    gt = [torch.tensor([[0.0, 0.0, 10.0, 10.0]])]
    losses = rpn_loss(torch.zeros(1, 3), torch.zeros(1, 3, 4), anchors, gt, BoxCoder())
    torch.testing.assert_close(losses["loss_objectness"], torch.tensor(math.log(2.0)))
    torch.testing.assert_close(losses["loss_rpn_box_reg"], torch.tensor(0.0))
    # a confident, correct prediction costs almost nothing
    losses = rpn_loss(torch.tensor([[20.0, -20.0, -20.0]]), torch.zeros(1, 3, 4), anchors, gt, BoxCoder())
    assert losses["loss_objectness"] < 1e-6


def test_filter_proposals_properties():
    g = torch.Generator().manual_seed(0)
    anchors = AnchorGenerator((8, 16), (0.5, 1.0, 2.0))((32, 32), (4, 4))
    obj, deltas = torch.randn(2, len(anchors), generator=g), torch.randn(2, len(anchors), 4, generator=g) * 0.3
    boxes, scores = filter_proposals(obj, deltas, anchors, (32, 32), BoxCoder(), post_nms_top_n=20, nms_thresh=0.5)
    for b, s in zip(boxes, scores):
        assert 0 < len(b) <= 20
        assert (b >= 0).all() and (b[:, 2] <= 32).all() and (b[:, 3] <= 32).all()
        assert (s[:-1] >= s[1:]).all()
        iou = box_iou(b, b).fill_diagonal_(0)
        assert iou.max() <= 0.5


# ---------------------------------------------------------------- RoI heads
def test_fast_rcnn_loss_matches_torchvision():
    g = torch.Generator().manual_seed(0)
    logits, deltas = torch.randn(20, 5, generator=g), torch.randn(20, 20, generator=g)
    labels, targets = torch.randint(0, 5, (20,), generator=g), torch.randn(20, 4, generator=g)
    ours = fast_rcnn_loss(logits, deltas, labels, targets)
    tv_cls, tv_box = fastrcnn_loss(logits, deltas, [labels], [targets])
    torch.testing.assert_close(ours["loss_classifier"], tv_cls)
    torch.testing.assert_close(ours["loss_box_reg"], tv_box)
    with pytest.raises(ValueError, match="expected labels"):
        fast_rcnn_loss(logits, deltas, labels[:3], targets)


@pytest.mark.parametrize("pooler", ["pool", "align"])
def test_fast_rcnn_head_pools_like_torchvision(pooler):
    head = FastRCNNHead(4, num_classes=3, roi_size=5, hidden=16, pooler=pooler)
    feats = torch.randn(2, 4, 8, 8)
    props = [random_boxes(3, size=40), random_boxes(2, size=40)]
    pooled = head.pool(feats, props, 0.125)
    if pooler == "pool":
        expected = torchvision.ops.roi_pool(feats, props, (5, 5), 0.125)
    else:
        expected = torchvision.ops.roi_align(feats, props, (5, 5), 0.125, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(pooled, expected)
    logits, deltas = head(feats, props, 0.125)
    assert logits.shape == (5, 3) and deltas.shape == (5, 12)
    with pytest.raises(ValueError, match="pooler must be"):
        FastRCNNHead(4, 3, pooler="max")


def test_postprocess_known_answer():
    # two proposals on the same object, both sure it is class 2; zero deltas keep the proposals;
    # NMS leaves the better one; a third proposal far away is background
    props = [torch.tensor([[10.0, 10.0, 30.0, 30.0], [11.0, 11.0, 31.0, 31.0], [40.0, 40.0, 50.0, 50.0]])]
    logits = torch.tensor([[0.0, 0.0, 9.0], [0.0, 0.0, 8.0], [9.0, 0.0, 0.0]])
    dets = postprocess_detections(logits, torch.zeros(3, 12), props, (64, 64), BoxCoder((10, 10, 5, 5)), score_thresh=0.5)
    assert len(dets) == 1
    torch.testing.assert_close(dets[0]["boxes"], props[0][:1])
    assert dets[0]["labels"].tolist() == [2]
    torch.testing.assert_close(dets[0]["scores"], torch.softmax(logits[0], 0)[2:])
