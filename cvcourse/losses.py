"""Losses and their helpers: class weights for unbalanced segmentation (lecture 7), and loss functions found by
search: the Baikal loss of Gonzalez & Miikkulainen (2019) and a tiny version of their genetic search over expression
trees (GLO, Genetic Loss-function Optimization).

- :func:`inverse_frequency_weights`  cross-entropy class weights inversely proportional to the classes' pixel
  frequencies (lecture 7 and the ``unpool_unet`` assignment), for ``F.cross_entropy(..., weight=...)``

Paper notebook ``lectures/papers/baikal_loss.ipynb`` (extends lecture 2, where cross-entropy trains AlexNet/VGG).
GLO writes a classification loss as ``L = -1/n * sum_i f(x_i, y_i)`` over the ``n`` classes, with ``x`` the target
(one-hot) and ``y`` the predicted probabilities, and searches over the expression ``f`` built from
``log, square, sqrt`` and ``+, -, *, /`` on the leaves ``x, y, 1, -1``. Cross-entropy is ``f = n * x * log(y)``
(the factor ``n`` only rescales); the search found the **Baikal** loss, ``f = log(y) - x / y``::

    L_Baikal = -1/n * sum_i ( log(y_i) - x_i / y_i )

- :func:`baikal_loss`     the Baikal loss on logits, with the signature of ``F.cross_entropy``
- :func:`tree_loss`       turn an expression tree ``f`` into such a loss (``CROSS_ENTROPY_TREE``, ``BAIKAL_TREE``)
- :func:`evaluate_tree`, :func:`tree_str`, :func:`random_tree`, :func:`mutate`, :func:`crossover`: the genetic
  operators of the search, on trees written as nested tuples, e.g. ``("-", ("log", "y"), ("/", "x", "y"))``
- :func:`evolve`          a minimal genetic loop (elitism, tournament selection, crossover, mutation) around a
  fitness function, e.g. the validation accuracy of a short training run with :func:`tree_loss`

Letter legend: B batch, C classes (``n`` in the paper).
"""

from __future__ import annotations

import random
from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from cvcourse._checks import check_tensor

__all__ = [
    "inverse_frequency_weights",
    "baikal_loss", "tree_loss", "evaluate_tree", "tree_str", "tree_size", "random_tree", "mutate", "crossover", "evolve",
    "BAIKAL_TREE", "CROSS_ENTROPY_TREE", "LEAVES", "UNARY", "BINARY",
]

Tree = Union[str, tuple]

#: Leaves of GLO's search space: the target ``x``, the prediction ``y`` and the constants 1 and -1.
LEAVES = ("x", "y", "1", "-1")
#: Unary operators: natural log, square, square root (the last two written ``sq`` and ``sqrt``).
UNARY = ("log", "sq", "sqrt")
#: Binary operators.
BINARY = ("+", "-", "*", "/")
#: The Baikal loss's ``f(x, y) = log(y) - x / y``.
BAIKAL_TREE: Tree = ("-", ("log", "y"), ("/", "x", "y"))
#: Cross-entropy's ``f(x, y) = x * log(y)`` (up to the factor ``n``).
CROSS_ENTROPY_TREE: Tree = ("*", "x", ("log", "y"))

_EPS = 1e-6
_REDUCTIONS = ("mean", "sum", "none")


def _targets(input: Tensor, target: Tensor) -> Tensor:
    """Class indices ``(B,)`` or probabilities ``(B, C)`` -> float ``(B, C)``, checked against ``input (B, C)``."""
    check_tensor(input, "input")
    check_tensor(target, "target")
    if input.dim() != 2 or not input.is_floating_point():
        raise ValueError(f"input must be float logits of shape (B, C), got {input.dtype} {tuple(input.shape)}")
    B, C = input.shape
    if target.dim() == 1 and not target.is_floating_point():
        if target.shape[0] != B:
            raise ValueError(f"target must have shape (B,) = ({B},) to match input {tuple(input.shape)}, "
                             f"got {tuple(target.shape)}")
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= C):
            raise ValueError(f"target class indices must be in 0..{C - 1}, got {target.min()}..{target.max()}")
        return F.one_hot(target.to(input.device), C).to(input.dtype)
    if target.shape != input.shape or not target.is_floating_point():
        raise ValueError(f"target must be class indices (B,) or float probabilities (B, C) = {tuple(input.shape)}, "
                         f"got {target.dtype} {tuple(target.shape)}")
    return target.to(input.device, input.dtype)


def _reduce(per_sample: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return per_sample
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def inverse_frequency_weights(targets: Tensor, num_classes: int) -> Tensor:
    """Class weights inversely proportional to the classes' frequencies in ``targets``, for weighted cross-entropy.

    Introduced in lecture 7 (and used by the ``unpool_unet`` learning test): on segmentation data where a class
    covers under 1 % of the pixels, plain cross-entropy is minimised well enough by never predicting it; weighting
    each pixel's loss by ``1 / frequency`` of its true class makes every class count equally. The U-Net paper
    (Ronneberger et al., 2015) balances class frequencies with a weight map too.

    With ``f_c`` the share of the pixels (or samples) of class ``c``, the weight is
    ``w_c = (1 / f_c) / sum_k f_k (1 / f_k)``, normalised so that the pixel-averaged weight ``sum_c f_c w_c`` is 1 (``F.cross_entropy`` with
    ``reduction="mean"`` divides by the summed weights of the pixels, so there only the ratios matter; the
    normalisation keeps ``reduction="sum"`` losses on the unweighted scale). When every class is present this is
    ``N / (C * n_c)``, scikit-learn's ``compute_class_weight("balanced", ...)``. A class absent from ``targets`` gets
    a large finite weight (``f_c`` is clamped at 1e-6); it changes nothing in cross-entropy with class-index targets,
    which weights each pixel by its own class only.

    Args:
        targets (Tensor[...] integer): class indices in ``0 .. num_classes - 1``, e.g. the label maps
            ``(N, H, W)`` of a training set.
        num_classes: ``C``.

    Returns:
        Tensor[C] float32 on ``targets``' device: pass it as ``F.cross_entropy(logits, targets, weight=w)``.

    Raises:
        ValueError: if ``targets`` is empty, not integer, or holds indices outside ``0 .. num_classes - 1``.
    """
    check_tensor(targets, "targets")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices, got {targets.dtype}")
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if targets.numel() == 0:
        raise ValueError("targets is empty: class frequencies need at least one pixel")
    lo, hi = int(targets.min()), int(targets.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"targets must be class indices in 0..{num_classes - 1}, got {lo}..{hi}")
    freq = torch.bincount(targets.flatten(), minlength=num_classes).double() / targets.numel()  # (C,)
    weight = (1.0 / freq.clamp(min=1e-6)).float()
    return weight / (weight * freq.float()).sum()  # the pixel-averaged weight is 1


def baikal_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """The Baikal loss, paper notebook ``baikal_loss``: ``-1/C * sum_i (log p_i - t_i / p_i)`` with
    ``p = softmax(input)``, averaged over the batch.

    Mirrors ``torch.nn.functional.cross_entropy(input, target, reduction=...)``: ``input`` are logits and
    ``target`` class indices or class probabilities (no ``weight``, ``ignore_index`` or ``label_smoothing``). It is
    computed from ``log_softmax`` (``1 / p_i = exp(-log p_i)``), so it stays finite for confident logits as long as
    ``1 / p`` of the target class fits in the dtype.

    Unlike cross-entropy its minimum is *not* at ``p_target = 1``: the ``log p_i`` of the wrong classes push their
    probabilities away from 0, a built-in penalty on over-confidence (see the notebook).

    Args:
        input (Tensor[B, C]): logits.
        target (Tensor[B] int64 or Tensor[B, C] float): class indices, or probabilities per row.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (``Tensor[B]``).

    Raises:
        ValueError: shapes that do not match, class indices out of range, unknown ``reduction``.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    t = _targets(input, target)
    log_p = F.log_softmax(input, dim=1)  # (B, C)
    per_sample = -(log_p - t * torch.exp(-log_p)).mean(dim=1)  # mean over C is the 1/n * sum_i
    return _reduce(per_sample, reduction)


# ------------------------------------------------------------------------------------------- expression trees


def _check_tree(tree: Tree) -> None:
    if isinstance(tree, str):
        if tree not in LEAVES:
            raise ValueError(f"unknown leaf {tree!r}; leaves are {LEAVES}")
        return
    if not isinstance(tree, tuple) or not tree:
        raise ValueError(f"a tree is a leaf {LEAVES} or a tuple (op, child[, child]), got {tree!r}")
    op, *kids = tree
    if (op in UNARY and len(kids) != 1) or (op in BINARY and len(kids) != 2) or op not in UNARY + BINARY:
        raise ValueError(f"bad node {tree!r}: unary ops {UNARY} take one child, binary ops {BINARY} two")
    for k in kids:
        _check_tree(k)


def evaluate_tree(tree: Tree, x: Tensor, y: Tensor) -> Tensor:
    """Evaluate ``f(x, y)`` elementwise with GLO's protected operators: ``log`` and ``sqrt`` of ``|a|`` (``log``
    clamped at 1e-6), division by ``b`` with ``|b|`` clamped at 1e-6 (keeping its sign), so that any tree is defined
    everywhere.

    Args:
        tree: a leaf in :data:`LEAVES` or a tuple ``(op, child)`` / ``(op, left, right)``.
        x, y (Tensor[B, C]): targets and predicted probabilities.

    Returns:
        Tensor[B, C] (the constants broadcast to it).
    """
    if isinstance(tree, str):
        if tree == "x":
            return x
        if tree == "y":
            return y
        if tree in ("1", "-1"):
            return torch.full_like(y, float(tree))
        raise ValueError(f"unknown leaf {tree!r}; leaves are {LEAVES}")
    _check_tree(tree)
    op, *kids = tree
    v = [evaluate_tree(k, x, y) for k in kids]
    if op == "log":
        return torch.log(v[0].abs().clamp_min(_EPS))
    if op == "sq":
        return v[0] * v[0]
    if op == "sqrt":
        return v[0].abs().sqrt()
    a, b = v
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    sign = torch.where(b < 0, -1.0, 1.0).to(b.dtype)
    return a / (sign * b.abs().clamp_min(_EPS))  # op == "/"


def tree_loss(tree: Tree, reduction: str = "mean") -> Callable[[Tensor, Tensor], Tensor]:
    """The loss ``L = -1/C * sum_i f(x_i, y_i)`` of expression tree ``f``, as ``loss(logits, target)`` (like
    ``F.cross_entropy``; ``y = softmax(logits)``, ``x`` the one-hot target). ``tree_loss(BAIKAL_TREE)`` equals
    :func:`baikal_loss` up to the protected division; ``tree_loss(CROSS_ENTROPY_TREE)`` is cross-entropy / C.
    """
    _check_tree(tree)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")

    def loss(input: Tensor, target: Tensor) -> Tensor:
        x = _targets(input, target)
        y = F.softmax(input, dim=1)
        return _reduce(-evaluate_tree(tree, x, y).mean(dim=1), reduction)

    loss.__name__ = f"tree_loss[{tree_str(tree)}]"
    return loss


def tree_str(tree: Tree) -> str:
    """Infix text of a tree: ``tree_str(BAIKAL_TREE) == "(log(y) - (x / y))"``."""
    if isinstance(tree, str):
        return tree
    op, *kids = tree
    if op in UNARY:
        return f"{op}({tree_str(kids[0])})"
    return f"({tree_str(kids[0])} {op} {tree_str(kids[1])})"


def random_tree(rng: random.Random, depth: int = 3) -> Tree:
    """A random tree of at most ``depth`` operator levels (GLO's "grow" initialisation): at each level a leaf with
    probability 0.3 (always at depth 0), else a unary (1/3) or binary (2/3) operator."""
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(LEAVES)
    if rng.random() < 1 / 3:
        return (rng.choice(UNARY), random_tree(rng, depth - 1))
    return (rng.choice(BINARY), random_tree(rng, depth - 1), random_tree(rng, depth - 1))


def _paths(tree: Tree, prefix: tuple = ()) -> list[tuple]:
    """Paths (child indices from the root) of every node, root first."""
    out = [prefix]
    if isinstance(tree, tuple):
        for i, k in enumerate(tree[1:], start=1):
            out += _paths(k, prefix + (i,))
    return out


def _get(tree: Tree, path: tuple) -> Tree:
    for i in path:
        tree = tree[i]
    return tree


def _replace(tree: Tree, path: tuple, new: Tree) -> Tree:
    if not path:
        return new
    i = path[0]
    return tree[:i] + (_replace(tree[i], path[1:], new),) + tree[i + 1:]


def mutate(tree: Tree, rng: random.Random, depth: int = 2) -> Tree:
    """Replace one node, chosen uniformly, by a fresh :func:`random_tree` of at most ``depth`` levels."""
    _check_tree(tree)
    return _replace(tree, rng.choice(_paths(tree)), random_tree(rng, depth))


def crossover(a: Tree, b: Tree, rng: random.Random) -> Tree:
    """Subtree crossover: a copy of ``a`` with one random node replaced by a random subtree of ``b``."""
    _check_tree(a)
    _check_tree(b)
    return _replace(a, rng.choice(_paths(a)), _get(b, rng.choice(_paths(b))))


def tree_size(tree: Tree) -> int:
    """Number of nodes (leaves included)."""
    return len(_paths(tree))



def evolve(fitness: Callable[[Tree], float], population: int = 6, generations: int = 3, elite: int = 2,
           depth: int = 3, rng: random.Random | None = None, seeds: list[Tree] | None = None) -> list[dict]:
    """A minimal version of GLO's genetic loop, paper notebook ``baikal_loss``.

    Generation 0 is ``seeds`` (if any) topped up with :func:`random_tree` s. Each later generation keeps the
    ``elite`` best trees unchanged and fills the rest with children: two parents picked by tournaments of two, a
    :func:`crossover` with probability 1/2, then a :func:`mutate` with probability 1/2 (always when there was no
    crossover). Fitness is higher-is-better and is computed once per distinct tree (by its :func:`tree_str`).
    GLO itself uses a population of 80 and also fine-tunes the constants of the best trees with CMA-ES
    ("Baikal CMA"); neither is done here.

    Args:
        fitness: ``fitness(tree) -> float``, higher is better (e.g. validation accuracy).
        population, generations, elite: sizes; ``0 <= elite < population``.
        depth: depth of the random trees of generation 0.
        rng: ``random.Random`` for reproducible runs (default ``random.Random(0)``).
        seeds: trees to start generation 0 with.

    Returns:
        One dict per evaluated member and generation: ``{"generation", "tree", "text", "fitness"}``,
        each generation sorted best first.
    """
    if population < 2 or not 0 <= elite < population or generations < 1:
        raise ValueError(f"need population >= 2, 0 <= elite < population and generations >= 1, got "
                         f"population={population}, elite={elite}, generations={generations}")
    rng = rng if rng is not None else random.Random(0)
    cache: dict[str, float] = {}

    def score(tree: Tree) -> float:
        key = tree_str(tree)
        if key not in cache:
            cache[key] = float(fitness(tree))
        return cache[key]

    members = list(seeds or [])[:population]
    for t in members:
        _check_tree(t)
    members += [random_tree(rng, depth) for _ in range(population - len(members))]
    history: list[dict] = []
    for gen in range(generations):
        ranked = sorted(members, key=score, reverse=True)
        history += [{"generation": gen, "tree": t, "text": tree_str(t), "fitness": score(t)} for t in ranked]
        if gen == generations - 1:
            break

        def pick() -> Tree:
            a, b = rng.sample(ranked, 2)
            return a if score(a) >= score(b) else b

        children = []
        while len(children) < population - elite:
            child, crossed = pick(), rng.random() < 0.5
            if crossed:
                child = crossover(child, pick(), rng)
            if not crossed or rng.random() < 0.5:
                child = mutate(child, rng)
            children.append(child)
        members = ranked[:elite] + children
    return history
