"""Tests of cvcourse.losses: the Baikal loss (hand values, analytic gradient, gradcheck) and the expression trees."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cvcourse.losses import (BAIKAL_TREE, CROSS_ENTROPY_TREE, baikal_loss, crossover, evaluate_tree,
                             inverse_frequency_weights, mutate, random_tree, tree_loss, tree_size, tree_str)


# ------------------------------------------------------------------------------- inverse-frequency class weights


def test_inverse_frequency_weights_hand_computed():
    # 8 pixels: 6 background, 2 of class 1, none of class 2. Frequencies 3/4 and 1/4; 1/f = 4/3 and 4, whose
    # pixel average is 3/4 * 4/3 + 1/4 * 4 = 2, so the weights are 2/3 and 2 (pixel average 1/2 + 1/2 = 1).
    targets = torch.tensor([[[0, 0, 1, 0], [0, 1, 0, 0]]])
    w = inverse_frequency_weights(targets, 3)
    assert w.dtype == torch.float32 and w.shape == (3,)
    torch.testing.assert_close(w[:2], torch.tensor([2 / 3, 2.0]))
    assert w[2] > 1e3  # absent class: large, finite, and irrelevant to cross-entropy on these targets
    assert torch.isfinite(w).all()


def test_inverse_frequency_weights_match_sklearn_balanced_and_average_to_one():
    from sklearn.utils.class_weight import compute_class_weight

    g = torch.Generator().manual_seed(0)
    targets = torch.multinomial(torch.tensor([0.9, 0.07, 0.02, 0.01]), 4000, replacement=True, generator=g)
    targets = targets.reshape(10, 20, 20)
    w = inverse_frequency_weights(targets, 4)
    ref = compute_class_weight("balanced", classes=np.arange(4), y=targets.flatten().numpy())
    torch.testing.assert_close(w, torch.tensor(ref, dtype=torch.float32))
    per_pixel = w[targets]  # the weight of every pixel's true class
    assert per_pixel.mean().item() == pytest.approx(1.0, rel=1e-5)


def test_inverse_frequency_weights_reject_bad_targets():
    with pytest.raises(ValueError, match="integer class indices"):
        inverse_frequency_weights(torch.zeros(2, 3), 2)
    with pytest.raises(ValueError, match=r"class indices in 0..1, got 0..2"):
        inverse_frequency_weights(torch.tensor([0, 2]), 2)
    with pytest.raises(ValueError, match="empty"):
        inverse_frequency_weights(torch.zeros(0, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="positive integer"):
        inverse_frequency_weights(torch.tensor([0]), 0)


def test_hand_computed_value():
    # p = (1/2, 1/4, 1/4), true class 0: -1/3 * (ln 1/2 - 1/(1/2) + ln 1/4 + ln 1/4)
    expected = -(math.log(0.5) - 2.0 + 2 * math.log(0.25)) / 3
    logits = torch.tensor([[0.5, 0.25, 0.25]]).log() + 7.0  # any shift of the logits gives the same softmax
    assert baikal_loss(logits, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)
    # second row, true class 2 of a uniform 4-way prediction: -1/4 * (4 ln 1/4 - 4) = ln 4 + 1
    two = baikal_loss(torch.zeros(1, 4), torch.tensor([2]))
    assert two.item() == pytest.approx(math.log(4) + 1, rel=1e-6)


def test_reductions_and_probability_targets():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(5, 4, generator=g), torch.tensor([0, 3, 1, 1, 2])
    per = baikal_loss(logits, target, reduction="none")
    assert per.shape == (5,)
    torch.testing.assert_close(baikal_loss(logits, target), per.mean())
    torch.testing.assert_close(baikal_loss(logits, target, reduction="sum"), per.sum())
    torch.testing.assert_close(baikal_loss(logits, F.one_hot(target, 4).float(), reduction="none"), per)


def test_gradient_matches_the_hand_derivation_and_finite_differences():
    # L = -1/C [sum_i log p_i - 1/p_c], dlog p_i/dz_j = delta_ij - p_j, so
    # dL/dz_j = -1/C [1 - C p_j + (delta_cj - p_j) / p_c]
    g = torch.Generator().manual_seed(1)
    z = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([4, 0, 2])
    baikal_loss(z, target, reduction="sum").backward()
    p = F.softmax(z.detach(), dim=1)
    pc = p.gather(1, target[:, None])
    expected = -(1 - 5 * p + (F.one_hot(target, 5) - p) / pc) / 5
    torch.testing.assert_close(z.grad, expected)
    assert torch.autograd.gradcheck(lambda v: baikal_loss(v, target), (z.detach().requires_grad_(),))


@pytest.mark.parametrize("C", [3, 10])
def test_minimum_is_at_p_true_equal_one_over_sqrt_c(C):
    # along logits (t, 0, ..., 0) the wrong classes share 1 - p equally; setting dL/dp = 0 by hand gives
    # 1/p + 1/p^2 = (C - 1)/(1 - p), i.e. C p^2 = 1. Cross-entropy only decreases along the same path.
    t = torch.linspace(-3, 12, 30001, dtype=torch.float64)
    logits = torch.zeros(len(t), C, dtype=torch.float64)
    logits[:, 0] = t
    target = torch.zeros(len(t), dtype=torch.long)
    losses = baikal_loss(logits, target, reduction="none")
    p_best = F.softmax(logits[losses.argmin()], 0)[0].item()
    assert p_best == pytest.approx(1 / math.sqrt(C), abs=1e-3)
    ce = F.cross_entropy(logits, target, reduction="none")
    assert bool((ce[1:] < ce[:-1]).all())


def test_trees_reproduce_baikal_and_cross_entropy():
    g = torch.Generator().manual_seed(2)
    logits, target = torch.randn(6, 4, generator=g), torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(tree_loss(BAIKAL_TREE)(logits, target), baikal_loss(logits, target))
    torch.testing.assert_close(4 * tree_loss(CROSS_ENTROPY_TREE)(logits, target), F.cross_entropy(logits, target))
    assert tree_str(BAIKAL_TREE) == "(log(y) - (x / y))" and tree_size(BAIKAL_TREE) == 6


def test_protected_operators_stay_finite():
    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]])
    for tree in [("/", "x", ("-", "y", "y")), ("log", ("-", "y", "y")), ("sqrt", "-1"), ("/", "1", ("*", "-1", "x"))]:
        assert bool(torch.isfinite(evaluate_tree(tree, x, y)).all()), tree
    assert evaluate_tree(("/", "1", ("*", "-1", "x")), x, y)[0, 0].item() == pytest.approx(-1.0)  # sign kept
    assert evaluate_tree(("sq", ("+", "y", "1")), x, y)[0, 1].item() == pytest.approx(2.25)


def test_genetic_operators_give_valid_trees_and_are_seeded():
    x, y = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.3, 0.7]])
    trees = []
    for seed in range(50):
        rng = random.Random(seed)
        a, b = random_tree(rng), random_tree(rng)
        for t in (a, b, mutate(a, rng), crossover(a, b, rng)):
            assert evaluate_tree(t, x, y).shape == (1, 2)
        trees.append(tree_str(a))
    assert len(set(trees)) > 20  # really random
    assert tree_str(random_tree(random.Random(7))) == tree_str(random_tree(random.Random(7)))
    # crossover puts a subtree of b into a: with a leaf as a, the child is a subtree of b
    rng = random.Random(0)
    child = crossover("x", BAIKAL_TREE, rng)
    assert tree_str(child) in tree_str(BAIKAL_TREE)


def test_bad_inputs_raise():
    logits = torch.randn(3, 4)
    with pytest.raises(ValueError, match="0..3"):
        baikal_loss(logits, torch.tensor([0, 4, 1]))
    with pytest.raises(ValueError, match=r"\(B,\)"):
        baikal_loss(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        baikal_loss(torch.randn(4), torch.tensor([0]))
    with pytest.raises(ValueError, match="reduction"):
        baikal_loss(logits, torch.tensor([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match="leaf"):
        tree_loss(("log", "z"))
    with pytest.raises(ValueError, match="binary"):
        tree_loss(("+", "x"))
    with pytest.raises(ValueError, match="depth"):
        random_tree(random.Random(0), depth=-1)


def test_evolve_keeps_the_elite_and_improves_a_known_fitness():
    from cvcourse.losses import evolve

    # fitness: how close the expression's value at (x=1, y=0.5) is to 3; the best possible is 0
    x, y = torch.tensor([[1.0]]), torch.tensor([[0.5]])

    def fitness(tree):
        return -abs(evaluate_tree(tree, x, y).item() - 3.0)

    calls = []
    hist = evolve(lambda t: calls.append(tree_str(t)) or fitness(t), population=20, generations=15,
                  rng=random.Random(0))
    best = [max(h["fitness"] for h in hist if h["generation"] == g) for g in range(15)]
    assert all(b2 >= b1 for b1, b2 in zip(best, best[1:])), best  # elitism: never worse
    assert best[0] < 0 and best[-1] == pytest.approx(0.0, abs=1e-6), best  # found an exact expression for 3
    assert len(calls) == len(set(calls))  # each distinct tree scored once
    assert sum(h["generation"] == 0 for h in hist) == 20
    seeded = evolve(fitness, population=3, generations=1, seeds=[("+", "1", ("+", "x", "x"))])
    assert seeded[0]["text"] == "(1 + (x + x))" and seeded[0]["fitness"] == 0.0  # 1 + 1 + 1 = 3
    with pytest.raises(ValueError, match="elite"):
        evolve(fitness, population=3, elite=3)
