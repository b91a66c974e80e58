"""cvcourse.models.ttnet: shapes, the 1-D Gaussian targets against a hand formula, decoding, data stacks, errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from cvcourse.data.video import table_tennis_clip
from cvcourse.models.ttnet import TTNet, decode_position, gaussian_target, table_tennis_stacks, ttnet_evaluate, ttnet_loss


def test_output_shapes():
    torch.manual_seed(0)
    net = TTNet(frames=9, size=(48, 64), width=8, num_classes=3)
    out = net(torch.rand(2, 27, 48, 64))
    assert out["ball_x"].shape == (2, 64) and out["ball_y"].shape == (2, 48)
    assert out["event"].shape == (2,) and out["seg"].shape == (2, 3, 48, 64)
    assert TTNet(frames=3, size=(32, 32), width=4)(torch.rand(1, 9, 32, 32))["seg"].shape == (1, 3, 32, 32)


def test_gaussian_target_matches_the_hand_formula():
    # centre 2.5 (the middle of pixel 2) on 5 pixels, sigma 1: unnormalised weights exp(-d^2 / 2) at d = -2, -1, 0, 1, 2
    g = gaussian_target(torch.tensor([2.5]), 5, sigma=1.0)
    raw = [math.exp(-2.0), math.exp(-0.5), 1.0, math.exp(-0.5), math.exp(-2.0)]
    expected = torch.tensor([[r / sum(raw) for r in raw]])
    torch.testing.assert_close(g, expected)
    # a centre on a pixel border (3.0, sigma 0.5): pixels 2 and 3 (centres 2.5 and 3.5) share the peak
    h = gaussian_target(torch.tensor([3.0]), 6, sigma=0.5)[0]
    assert h[2] == pytest.approx(h[3]) and h[2] > h[1] and h.sum() == pytest.approx(1.0)
    assert h[1] / h[2] == pytest.approx(math.exp(-(1.5 ** 2 - 0.5 ** 2) / (2 * 0.25)))


def test_decode_position_is_the_centre_of_the_argmax_pixel_and_inverts_the_target():
    sx = torch.tensor([[0.0, 5.0, 1.0, 0.0], [3.0, 0.0, 0.0, 4.0]])
    sy = torch.tensor([[0.0, 0.0, 2.0], [9.0, 1.0, 0.0]])
    torch.testing.assert_close(decode_position(sx, sy), torch.tensor([[1.5, 2.5], [3.5, 0.5]]))
    # decoding the Gaussian target of a position gives that position to within half a pixel
    xy = torch.tensor([[10.2, 7.9], [0.3, 47.6], [63.99, 20.5]])
    dec = decode_position(gaussian_target(xy[:, 0], 64, 1.0), gaussian_target(xy[:, 1], 48, 1.0))
    assert ((dec - xy).abs() <= 0.5 + 1e-6).all()


def test_loss_is_minimal_at_the_gaussian_target():
    w, h = 16, 12
    ball = torch.tensor([[5.5, 6.5]])
    tx, ty = gaussian_target(ball[:, 0], w, 1.0), gaussian_target(ball[:, 1], h, 1.0)
    targets = {"ball": ball, "event": torch.tensor([1.0]), "mask": torch.zeros(1, 4, 4, dtype=torch.long)}
    seg = torch.zeros(1, 3, 4, 4)
    exact = {"ball_x": tx.log(), "ball_y": ty.log(), "event": torch.tensor([0.0]), "seg": seg}
    shifted = {"ball_x": tx.roll(1, 1).log(), "ball_y": ty.log(), "event": torch.tensor([0.0]), "seg": seg}
    a, b = ttnet_loss(exact, targets), ttnet_loss(shifted, targets)
    # at the target the cross-entropy equals the entropy of the two Gaussians
    entropy = -(tx * tx.log()).sum() - (ty * ty.log()).sum()
    torch.testing.assert_close(a["ball"], entropy)
    assert b["ball"] > a["ball"]
    torch.testing.assert_close(a["event"], torch.tensor(math.log(2.0)))
    torch.testing.assert_close(a["seg"], torch.tensor(math.log(3.0)))


def test_stacks_hold_nine_frames_and_the_right_labels():
    data = table_tennis_stacks(2, frames=20, size=(48, 64), seed=5)
    assert len(data) == 2 * 12
    stack, ball, event, mask = data[3]
    clip = table_tennis_clip(20, (48, 64), seed=5 * 100003)
    assert stack.shape == (27, 48, 64)
    # stack 3 of clip 0 is frames 3..11, oldest first; ball and mask of frame 11, event of frame 7
    torch.testing.assert_close(stack[:3], clip.frames[3], rtol=0, atol=0)
    torch.testing.assert_close(stack[-3:], clip.frames[11], rtol=0, atol=0)
    torch.testing.assert_close(ball, clip.ball[11], rtol=0, atol=0)
    assert event.item() == float(clip.events[7]) and torch.equal(mask, clip.masks[11])


def test_evaluate_reports_perfect_scores_for_an_oracle():
    data = table_tennis_stacks(1, frames=12, size=(48, 64), seed=1)

    class Oracle(TTNet):
        def forward(self, x):
            i = [int(j) for j in self._idx]
            return {"ball_x": gaussian_target(data.tensors[1][i, 0], 64), "ball_y": gaussian_target(data.tensors[1][i, 1], 48),
                    "event": data.tensors[2][i] * 2 - 1, "seg": F.one_hot(data.tensors[3][i], 3).permute(0, 3, 1, 2).float()}

    oracle = Oracle(width=2)
    oracle._idx = torch.arange(len(data))
    m = ttnet_evaluate(oracle, data, batch_size=len(data))
    assert m["ball_error_px"] <= 0.5 * math.sqrt(2) and m["ball_within_2px"] == 1.0
    assert m["event_acc"] == 1.0 and m["seg_miou"] == 1.0


def test_errors():
    with pytest.raises(ValueError, match="sigma"):
        gaussian_target(torch.tensor([1.0]), 5, sigma=0.0)
    with pytest.raises(ValueError, match="lie in"):
        gaussian_target(torch.tensor([6.0]), 5)
    with pytest.raises(ValueError, match=r"\(N,\)"):
        gaussian_target(torch.zeros(2, 2), 5)
    with pytest.raises(ValueError, match="same N"):
        decode_position(torch.zeros(2, 5), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="multiples of 16"):
        TTNet(size=(50, 64))
    with pytest.raises(ValueError, match="27"):
        TTNet()(torch.rand(1, 24, 48, 64))
    with pytest.raises(ValueError, match="window"):
        table_tennis_stacks(1, frames=20, window=8)
