"""cvcourse.ops.nms against torchvision.ops: random clustered boxes, crafted threshold cases, NMS laws."""

import pytest
import torch
import torchvision.ops as tvo
from hypothesis import given, settings
from hypothesis import strategies as st

import importlib
from cvcourse.ops import batched_nms, box_iou, nms, nms_naive

nms_module = importlib.import_module("cvcourse.ops.nms")  # the module (cvcourse.ops.nms is the function)


def clustered_boxes(n, objects=20, seed=0, dtype=torch.float32):
    """Boxes jittered around a few objects (what a detector emits), with distinct random scores."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(objects, 2, generator=g) * 300
    sizes = 10 + torch.rand(objects, 2, generator=g) * 60
    k = torch.randint(0, objects, (n,), generator=g)
    ctr = centres[k] + torch.randn(n, 2, generator=g) * sizes[k] * 0.15
    wh = sizes[k] * (1 + 0.15 * torch.randn(n, 2, generator=g)).clamp(min=0.3)
    boxes = torch.cat([ctr - wh / 2, ctr + wh / 2], dim=1).to(dtype)
    scores = (torch.randperm(n, generator=g).to(dtype) + 1) / n  # distinct, so the order is unique
    return boxes, scores


@pytest.mark.parametrize("n", [1, 7, 300, 1500])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_torchvision(device, n, threshold):
    boxes, scores = clustered_boxes(n, seed=n)
    boxes, scores = boxes.to(device), scores.to(device)
    expected = tvo.nms(boxes, scores, threshold)
    got = nms(boxes, scores, threshold)
    assert got.dtype == torch.int64 and got.device == boxes.device
    assert torch.equal(got, expected)


def test_nms_blocks_do_not_change_the_answer(monkeypatch):
    boxes, scores = clustered_boxes(300, objects=15, seed=3)
    expected = tvo.nms(boxes, scores, 0.5)
    for block in (3, 64, 10_000):  # many tiny blocks, and one block holding everything
        monkeypatch.setattr(nms_module, "_BLOCK_CPU", block)
        assert torch.equal(nms(boxes, scores, 0.5), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_nms_dtypes(dtype):
    boxes, scores = clustered_boxes(400, seed=5, dtype=dtype)
    # float16 boxes are processed in float32 (torchvision's CPU kernel has no float16 version).
    expected = tvo.nms(boxes.float() if dtype == torch.float16 else boxes, scores.float() if dtype == torch.float16 else scores, 0.5)
    assert torch.equal(nms(boxes, scores, 0.5), expected)


def test_nms_naive_equals_nms():
    for seed in range(3):
        boxes, scores = clustered_boxes(200, seed=seed)
        assert torch.equal(nms_naive(boxes, scores, 0.5), nms(boxes, scores, 0.5))


def test_iou_exactly_at_threshold_is_kept():
    # B overlaps A with IoU exactly equal to the float32 IoU computed by torchvision: build B so that the
    # threshold sits right at that IoU, then check the box on the threshold survives (IoU > t suppresses).
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    for x2, threshold in zip(torch.linspace(10.5, 19.5, 19), [0.3, 0.5, 0.6, 0.7, 1 / 3] * 4):
        # B = [5, 0, x2, 10]: a range of IoUs; test both t = that IoU and a round threshold
        b = torch.tensor([[5.0, 0.0, float(x2), 10.0]])
        boxes, scores = torch.cat([a, b]), torch.tensor([0.9, 0.8])
        iou = float(box_iou(a, b))  # float32 IoU
        for t in (iou, threshold):
            expected = tvo.nms(boxes, scores, t)
            assert torch.equal(nms(boxes, scores, t), expected), (x2, t)
            assert torch.equal(nms_naive(boxes, scores, t), expected)
            assert torch.equal(batched_nms(boxes, scores, torch.zeros(2, dtype=torch.long), t), expected)
        # At t = IoU (as a float) the pair is not suppressed: only strictly greater IoUs suppress.
        assert nms(boxes, scores, iou).tolist() == [0, 1]


def test_threshold_rounding_matches_float64_comparison():
    # float32(0.3) > 0.3: an IoU equal to float32(0.3) is greater than 0.3 and must be suppressed,
    # although `iou > 0.3` on a float32 tensor (which rounds 0.3 up) would say it is not.
    a = torch.tensor([0.0, 0.0, 10.0, 10.0])
    iou32 = torch.tensor(0.3, dtype=torch.float32)
    assert float(iou32) > 0.3
    # Find B = [0, 0, 10, h] with IoU h/10 rounding to float32(0.3).
    b = torch.tensor([0.0, 0.0, 10.0, 3.0])
    boxes, scores = torch.stack([a, b]), torch.tensor([1.0, 0.5])
    assert box_iou(boxes[:1], boxes[1:]).item() == iou32.item()
    assert tvo.nms(boxes, scores, 0.3).tolist() == [0]
    assert nms(boxes, scores, 0.3).tolist() == [0]
    assert nms_naive(boxes, scores, 0.3).tolist() == [0]


def test_suppression_chain_keeps_the_third_box():
    # A suppresses B (IoU 0.6), B overlaps C (IoU 0.6), A and C barely overlap: greedy NMS keeps A and C.
    boxes = torch.tensor([[0.0, 0, 10, 10], [2.5, 0, 12.5, 10], [5.0, 0, 15, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert box_iou(boxes[1:2], boxes[2:]).item() > 0.5 and box_iou(boxes[:1], boxes[2:]).item() < 0.5
    for f in (nms, nms_naive):
        assert f(boxes, scores, 0.5).tolist() == [0, 2]
    assert tvo.nms(boxes, scores, 0.5).tolist() == [0, 2]
    # A long chain where each box overlaps only its neighbours: every other box survives.
    x = torch.arange(40, dtype=torch.float32) * 2.5
    chain = torch.stack([x, torch.zeros(40), x + 10, torch.full((40,), 10.0)], dim=1)
    s = torch.linspace(1, 0.1, 40)
    assert torch.equal(nms(chain, s, 0.5), tvo.nms(chain, s, 0.5))


def test_equal_scores_keep_input_order():
    boxes = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [1, 0, 11, 10], [40, 40, 50, 50]] * 5)
    scores = torch.ones(len(boxes))
    expected = tvo.nms(boxes, scores, 0.5)
    assert expected.tolist() == [0, 1, 3]
    assert torch.equal(nms(boxes, scores, 0.5), expected)
    assert torch.equal(nms_naive(boxes, scores, 0.5), expected)


def test_zero_area_boxes_never_suppress():
    boxes = torch.tensor([[1.0, 1, 1, 1], [1.0, 1, 1, 1], [0, 0, 5, 5]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.0).tolist() == tvo.nms(boxes, scores, 0.0).tolist() == [0, 1, 2]


def test_empty(device):
    empty = torch.zeros(0, 4, device=device)
    for f in (nms, nms_naive):
        out = f(empty, torch.zeros(0, device=device), 0.5)
        assert out.shape == (0,) and out.dtype == torch.int64 and out.device == empty.device
    out = batched_nms(empty, torch.zeros(0, device=device), torch.zeros(0, dtype=torch.long, device=device), 0.5)
    assert out.shape == (0,) and out.dtype == torch.int64


@pytest.mark.parametrize("n", [50, 1000, 5000])
def test_batched_nms_is_per_class_nms(device, n):
    boxes, scores = clustered_boxes(n, seed=n)
    idxs = torch.randint(0, 7 if n < 1000 else 80, (n,), generator=torch.Generator().manual_seed(1))
    boxes, scores, idxs = boxes.to(device), scores.to(device), idxs.to(device)
    # Reference: torchvision's NMS run class by class, then merged by score.
    parts = [torch.nonzero(idxs == c)[:, 0] for c in idxs.unique()]
    ref = torch.cat([p[tvo.nms(boxes[p], scores[p], 0.5)] for p in parts])
    ref = ref[torch.sort(scores[ref], descending=True).indices]
    got = batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(got, ref)
    assert torch.equal(got, tvo.batched_nms(boxes, scores, idxs, 0.5))


def _per_class_reference(boxes, scores, idxs, threshold):
    """torchvision's NMS run class by class, merged by decreasing score (stable: input order on ties)."""
    parts = [torch.nonzero(idxs == c)[:, 0] for c in idxs.unique()]
    ref = torch.cat([p[tvo.nms(boxes[p], scores[p], threshold)] for p in parts])
    ref = ref.sort().values  # input order, so that the stable sort below breaks ties by input position
    return ref[torch.sort(scores[ref], descending=True, stable=True).indices]


@pytest.mark.parametrize("group, block", [(1 << 18, 512), (64, 512), (1 << 18, 16)])
def test_batched_nms_grouped_and_blocked_paths_agree(monkeypatch, group, block):
    # Classes of very different sizes (1 to ~600 boxes), tied scores, integer and negative coordinates.
    # group=64 puts nearly every class in a group of its own; block=16 sends the large classes down the
    # blocked path (a class larger than one block), so both ways of solving classes are compared.
    monkeypatch.setattr(nms_module, "_GROUP_CPU", group)
    monkeypatch.setattr(nms_module, "_BLOCK_CPU", block)
    g = torch.Generator().manual_seed(5)
    boxes, _ = clustered_boxes(1200, objects=15, seed=11)
    boxes[::3] = boxes[::3].round() - 200  # some integer, negative coordinates
    scores = torch.randint(0, 40, (1200,), generator=g).float() / 40  # many ties
    idxs = (torch.rand(1200, generator=g) ** 3 * 30).long() * 7 - 50  # skewed sizes, negative class ids
    got = batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(got, _per_class_reference(boxes, scores, idxs, 0.5))


def test_batched_nms_classes_do_not_interact():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10], [0.5, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1]
    assert batched_nms(boxes, scores, torch.tensor([3, 1, 2]), 0.5).tolist() == [0, 1, 2]


def test_errors():
    boxes, scores = clustered_boxes(5)
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\)"):
        nms(boxes[:, :3], scores, 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \(5\)"):
        nms(boxes, scores[:4], 0.5)
    bad = boxes.clone()
    bad[2, 2] = bad[2, 0] - 1
    with pytest.raises(ValueError, match=r"boxes\[2\].*x2 < x1"):
        nms(bad, scores, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        nms(boxes, torch.tensor([0.1, float("nan"), 0.3, 0.4, 0.5]), 0.5)
    with pytest.raises(TypeError, match="floating point"):
        nms(boxes.long(), scores, 0.5)
    with pytest.raises(TypeError, match="iou_threshold"):
        nms(boxes, scores, torch.tensor(0.5))
    with pytest.raises(ValueError, match=">= 0"):
        nms(boxes, scores, float("nan"))
    with pytest.raises(TypeError, match="idxs must be an integer"):
        batched_nms(boxes, scores, torch.zeros(5), 0.5)
    with pytest.raises(ValueError, match=r"idxs must have shape \(5\)"):
        batched_nms(boxes, scores, torch.zeros(4, dtype=torch.long), 0.5)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            nms(boxes, scores.cuda(), 0.5)


grid = st.integers(0, 40).map(float)
box_st = st.tuples(grid, grid, st.integers(1, 20), st.integers(1, 20)).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=60, deadline=None)
@given(st.lists(box_st, min_size=1, max_size=30), st.sampled_from([0.0, 0.25, 0.5, 0.7]), st.integers(0, 10**6))
def test_nms_laws(box_list, threshold, seed):
    boxes = torch.tensor(box_list)
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 5, (len(boxes),), generator=g).float()  # ties on purpose
    keep = nms(boxes, scores, threshold)
    assert torch.equal(keep, tvo.nms(boxes, scores, threshold))
    assert torch.equal(keep, nms_naive(boxes, scores, threshold))
    assert len(set(keep.tolist())) == len(keep)  # a subset ...
    assert (scores[keep].diff() <= 0).all()  # ... sorted by score
    iou = box_iou(boxes[keep], boxes[keep]).fill_diagonal_(0)
    assert (iou <= threshold).all()  # no two kept boxes overlap too much
    again = nms(boxes[keep], scores[keep], threshold)
    assert torch.equal(keep[again], keep)  # idempotent
    dropped = torch.ones(len(boxes), dtype=torch.bool)
    dropped[keep] = False
    if dropped.any():  # every dropped box overlaps a kept box with a score at least as high
        over = box_iou(boxes[dropped], boxes[keep]) > threshold
        assert over.any(dim=1).all()
