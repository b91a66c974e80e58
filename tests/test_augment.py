"""cvcourse.augment: CutMix and Attentive CutMix."""

from __future__ import annotations

import pytest
import torch
from scipy import stats
from torch.testing import assert_close

from cvcourse.augment import attention_grid, attentive_cutmix, cutmix, mixing_step, rand_box, sample_beta, top_cells


def _indexed_batch(b=6, h=12, w=16):
    # image i is filled with the value i + 1, so every pixel says which image it came from
    images = (torch.arange(b, dtype=torch.float32) + 1).view(b, 1, 1, 1).expand(b, 3, h, w).clone()
    labels = torch.arange(b) % 4
    return images, labels


def _source(mixed):
    return mixed[:, 0].round().long() - 1  # (B, H, W): index of the image each pixel came from


@pytest.mark.parametrize("seed", range(5))
def test_cutmix_labels_are_the_pasted_area_fractions_and_pixels_come_from_the_partner(seed):
    images, labels = _indexed_batch()
    mixed, targets = cutmix(images, labels, 4, generator=torch.Generator().manual_seed(seed))
    assert_close(targets.sum(1), torch.ones(6))
    src = _source(mixed)
    for i in range(6):
        foreign = src[i] != i
        partners = src[i][foreign].unique()
        assert len(partners) <= 1  # one partner per image
        area = foreign.float().mean()
        if len(partners):
            j = int(partners[0])
            expected = (1 - area) * torch.nn.functional.one_hot(labels[i], 4) + area * torch.nn.functional.one_hot(labels[j], 4)
            assert_close(targets[i], expected.float())
            rows, cols = foreign.nonzero(as_tuple=True)  # the pasted region is one box
            assert foreign[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


def test_rand_box_area_and_clipping():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        x1, y1, x2, y2 = rand_box((20, 30), 0.75, g)
        assert 0 <= x1 <= x2 <= 30 and 0 <= y1 <= y2 <= 20
        assert (x2 - x1) <= 15 and (y2 - y1) <= 10  # sides sqrt(1 - 0.75) = 1/2 of the image's, or clipped
    x1, y1, x2, y2 = rand_box((20, 30), 1.0, g)
    assert (x2 - x1) * (y2 - y1) == 0  # lam = 1 pastes nothing


def test_sample_beta_follows_the_beta_distribution():
    g = torch.Generator().manual_seed(0)
    draws = [sample_beta(0.5, g) for _ in range(2000)]
    assert stats.kstest(draws, stats.beta(0.5, 0.5).cdf).pvalue > 0.01


def test_top_cells_match_the_argmax_of_a_hand_made_map():
    att = torch.zeros(2, 3, 3)
    att[0, 2, 1] = 5.0   # cell 7
    att[0, 0, 0] = 3.0   # cell 0
    att[1, 1, 2] = 9.0   # cell 5
    att[1, 2, 2] = -1.0
    cells = top_cells(att, 2)
    assert cells[0].tolist() == [7, 0]
    assert cells[1, 0].item() == 5 == att[1].flatten().argmax().item()


def test_attentive_cutmix_pastes_the_partners_top_cells_at_their_places():
    images, labels = _indexed_batch(b=5, h=12, w=12)
    att = torch.rand(5, 3, 3, generator=torch.Generator().manual_seed(0))
    k = 2
    mixed, targets = attentive_cutmix(images, labels, 4, att, k=k, generator=torch.Generator().manual_seed(1))
    src = _source(mixed)
    assert_close(targets.sum(1), torch.ones(5))
    for i in range(5):
        partners = src[i][src[i] != i].unique()
        if not len(partners):
            continue  # paired with itself: nothing changes
        j = int(partners[0])
        expected = torch.zeros(12, 12, dtype=torch.bool)
        for cell in att[j].flatten().argsort(descending=True)[:k].tolist():  # j's top-k cells, 4 x 4 pixels each
            r, c = divmod(cell, 3)
            expected[4 * r:4 * r + 4, 4 * c:4 * c + 4] = True
        assert torch.equal(src[i] == j, expected)
        frac = k / 9
        assert targets[i, labels[j]].item() == pytest.approx(frac if labels[i] != labels[j] else 1.0, abs=1e-6)


def test_attentive_cutmix_uneven_grid_label_is_the_pasted_fraction():
    images, labels = _indexed_batch(b=4, h=10, w=10)  # 10 px in a 3 x 3 grid: cells of 4, 3 and 3 pixels
    att = torch.zeros(4, 3, 3)
    att[:, 0, 0] = 1.0  # the 4 x 4 top-left cell
    labels = torch.tensor([0, 1, 2, 3])
    mixed, targets = attentive_cutmix(images, labels, 4, att, k=1, generator=torch.Generator().manual_seed(3))
    src = _source(mixed)
    for i in range(4):
        if (src[i] != i).any():
            j = int(src[i, 0, 0])
            assert (src[i] != i).sum().item() == 16
            assert targets[i, j].item() == pytest.approx(0.16)


def test_determinism_with_a_generator():
    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(8) % 3
    att = torch.rand(8, 4, 4, generator=torch.Generator().manual_seed(1))
    for fn in (lambda g: cutmix(images, labels, 3, generator=g),
               lambda g: attentive_cutmix(images, labels, 3, att, k=3, generator=g)):
        a, b = fn(torch.Generator().manual_seed(7)), fn(torch.Generator().manual_seed(7))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        c = fn(torch.Generator().manual_seed(8))
        assert not torch.equal(a[0], c[0])


def test_attention_grid_is_the_channel_mean_of_forward_features():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 4, stride=4)

        def forward_features(self, x):
            return self.conv(x)

    net = Net()
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    att = attention_grid(net, x, batch_size=2)
    assert_close(att, net.conv(x).mean(1))
    assert attention_grid(net, x, size=32).shape == (3, 8, 8)


def test_bad_input_raises():
    images, labels = _indexed_batch()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        cutmix(images[0], labels, 4)
    with pytest.raises(ValueError, match="int64"):
        cutmix(images, labels.float(), 4)
    with pytest.raises(ValueError, match="0..3"):
        cutmix(images, labels + 1, 4)
    with pytest.raises(ValueError, match="alpha"):
        cutmix(images, labels, 4, alpha=0.0)
    with pytest.raises(ValueError, match="one map per image"):
        attentive_cutmix(images, labels, 4, torch.rand(2, 3, 3))
    with pytest.raises(ValueError, match="k must be in 1..9"):
        attentive_cutmix(images, labels, 4, torch.rand(6, 3, 3), k=10)
    with pytest.raises(ValueError, match="lam"):
        rand_box((4, 4), 1.5)


def test_mixing_step_losses():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    att = torch.rand(6, 2, 2)
    plain = mixing_step("none", 3)(model, (x, att, y))
    assert_close(plain, torch.nn.functional.cross_entropy(model(x), y))
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    mixed, targets = attentive_cutmix(x, y, 3, att, k=1, generator=g1)
    assert_close(mixing_step("attentive", 3, k=1, generator=g2)(model, (x, att, y)),
                 torch.nn.functional.cross_entropy(model(mixed), targets))
    with pytest.raises(ValueError, match="method"):
        mixing_step("mixup", 3)
