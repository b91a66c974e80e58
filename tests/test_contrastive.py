"""Tests of cvcourse.contrastive (SupCon and NT-Xent), against hand-computed values and an independent loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cvcourse.contrastive import ProjectionHead, SupConNet, nt_xent_loss, supcon_loss


def _supcon_loop(z, labels, tau):
    """The digest's formula term by term, one anchor and one positive at a time (no masks, no logsumexp)."""
    z = [v / v.norm() for v in z]
    out = []
    for i in range(len(z)):
        denom = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(len(z)) if k != i)
        pos = [j for j in range(len(z)) if j != i and int(labels[j]) == int(labels[i])]
        out.append(-sum(math.log(math.exp(float(z[i] @ z[j]) / tau) / denom) for j in pos) / len(pos))
    return torch.tensor(out, dtype=torch.float64)


def test_two_views_of_one_image_give_zero():
    # one positive and it is the whole denominator: -log(1) = 0, whatever the vectors
    z = torch.tensor([[1.0, 2.0], [-3.0, 0.5]])
    assert supcon_loss(z, torch.tensor([4, 4])).item() == pytest.approx(0.0, abs=1e-6)


def test_four_points_on_a_circle_by_hand():
    # right, up, left, down; classes {right, up} and {left, down}; tau = 1.
    # every anchor: positive at 90 deg (dot 0), one negative at 90 deg (0), one at 180 deg (-1):
    # L_i = -log(e^0 / (e^0 + e^0 + e^-1)) = log(2 + 1/e)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    expected = math.log(2 + math.exp(-1))
    torch.testing.assert_close(supcon_loss(z, labels, temperature=1.0, reduction="none"), torch.full((4,), expected))
    assert supcon_loss(z, labels, temperature=1.0, reduction="sum").item() == pytest.approx(4 * expected, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tau", [0.07, 0.5, 2.0])
def test_matches_an_independent_loop(seed, tau):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(10, 5, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1, 2])  # 4, 3 and 3 members: 3, 2, 2 positives
    torch.testing.assert_close(supcon_loss(z, labels, tau, reduction="none"), _supcon_loop(z, labels, tau))
    torch.testing.assert_close(supcon_loss(z, labels, tau), _supcon_loop(z, labels, tau).mean())


def test_nt_xent_is_the_special_case_and_matches_simclr_cross_entropy_form():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 8, generator=g, dtype=torch.float64), torch.randn(6, 8, generator=g, dtype=torch.float64)
    ids = torch.arange(6)
    special = supcon_loss(torch.cat([z1, z2]), torch.cat([ids, ids]), 0.2)
    torch.testing.assert_close(nt_xent_loss(z1, z2, 0.2), special)
    # SimCLR's usual code: cross-entropy over the similarity matrix without the diagonal, target = the other view
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T / 0.2).fill_diagonal_(float("-inf"))
    target = torch.cat([ids + 6, ids])
    torch.testing.assert_close(nt_xent_loss(z1, z2, 0.2), F.cross_entropy(sim, target))


def test_supcon_with_more_positives_differs_from_nt_xent():
    # same embeddings, but two images share a class: the supervised loss has extra positives
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    y = torch.tensor([0, 0, 1, 2])
    sup = supcon_loss(torch.cat([z1, z2]), torch.cat([y, y]))
    assert abs(sup.item() - nt_xent_loss(z1, z2).item()) > 1e-3


def test_temperature_limits_on_perfect_clusters():
    # three classes, three identical unit vectors each (orthogonal between classes): |P(i)| = 2, M = 9.
    # tau -> infinity: every logit equal, L_i = log(M - 1) = log 8; tau -> 0: the two positives dominate the
    # denominator, L_i -> log 2. In between the loss falls monotonically as tau falls.
    z = torch.eye(3, dtype=torch.float64).repeat_interleave(3, dim=0)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert supcon_loss(z, labels, 1e6).item() == pytest.approx(math.log(8), rel=1e-5)
    assert supcon_loss(z, labels, 0.01).item() == pytest.approx(math.log(2), rel=1e-6)
    taus = [5.0, 1.0, 0.5, 0.1]
    values = [supcon_loss(z, labels, t).item() for t in taus]
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_scale_invariant_and_gradcheck():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    torch.testing.assert_close(supcon_loss(3.7 * z, labels), supcon_loss(z, labels))
    assert torch.autograd.gradcheck(lambda v: supcon_loss(v, labels, 0.3), (z,))


def test_bad_inputs_raise():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="no positive"):
        supcon_loss(z, torch.tensor([0, 0, 1, 2]))
    with pytest.raises(ValueError, match="shape"):
        supcon_loss(z, torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match=r"\(M, D\)"):
        supcon_loss(torch.randn(2, 2, 3), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="temperature"):
        supcon_loss(z, torch.tensor([0, 0, 1, 1]), temperature=0.0)
    with pytest.raises(ValueError, match="reduction"):
        supcon_loss(z, torch.tensor([0, 0, 1, 1]), reduction="avg")
    with pytest.raises(TypeError, match="integer"):
        supcon_loss(z, torch.tensor([0.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_loss(torch.randn(3, 2), torch.randn(4, 2))


def test_projection_head_and_net_shapes():
    torch.manual_seed(0)
    head = ProjectionHead(16, hidden=32, out_dim=8)
    out = head(torch.randn(5, 16))
    assert out.shape == (5, 8)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    net = SupConNet(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16)), 16, proj_dim=8)
    x = torch.randn(5, 3, 2, 2)
    assert net.forward_features(x).shape == (5, 16) and net(x).shape == (5, 8)
    with pytest.raises(ValueError, match="positive"):
        ProjectionHead(0)


def test_augment_view_shifts_digits_and_is_seeded():
    from cvcourse.contrastive import augment_view

    img = torch.zeros(1, 1, 8, 8)
    img[0, 0, 3, 4] = 1.0
    views = [augment_view(img, torch.Generator().manual_seed(s), shift=2, gain=(1.0, 1.0), noise=0.0)
             for s in range(40)]
    spots = {tuple(int(v) for v in (v[0, 0] == 1).nonzero()[0]) for v in views}
    assert all(abs(r - 3) <= 2 and abs(c - 4) <= 2 for r, c in spots) and len(spots) > 5  # moved, by <= 2 px
    a = augment_view(img.expand(3, 3, 8, 8), torch.Generator().manual_seed(1))
    b = augment_view(img.expand(3, 3, 8, 8), torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert a.shape == (3, 3, 8, 8) and a.min() >= 0 and a.max() <= 1
    with pytest.raises(ValueError, match="square"):
        augment_view(torch.zeros(1, 1, 8, 6))
