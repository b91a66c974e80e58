"""Few-shot classification with a frozen embedding (Tian et al., 2020: "a good embedding is all you need?").

Paper notebook ``lectures/papers/few_shot_embedding.ipynb`` (extends lecture 6, transfer learning). Instead of
meta-learning, train an ordinary classifier on the base classes, freeze it, and on each new few-shot task fit a
logistic regression on the (L2-normalised) embeddings of the few labelled examples. Optionally improve the
embedding by born-again self-distillation: a student of the same architecture learns from the labels and from
the teacher's softened predictions.

- :func:`sample_episode`                  an N-way K-shot task: disjoint support and query indices
- :func:`nearest_mean_predict`            prototypical baseline: the nearest class mean (Snell et al., 2017)
- :func:`logistic_regression_predict`     the paper's classifier: multinomial logistic regression, L2 penalty
- :func:`evaluate_episodes`               accuracy of a classifier over many episodes
- :func:`mean_confidence_interval`        mean and 95 % half-width (Student t), as few-shot papers report
- :func:`distillation_loss`, :func:`born_again_step`   the self-distillation objective, as a ``fit`` step
- :func:`pooled_features`                 globally pooled outputs of a feature extractor

Letter legend: M items in the pool, F feature size, N ways (classes per episode), K shots (support images per
class), Q queries per class, E episodes, C classes of a classifier.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse._checks import check_tensor

__all__ = [
    "sample_episode",
    "nearest_mean_predict",
    "logistic_regression_predict",
    "evaluate_episodes",
    "mean_confidence_interval",
    "distillation_loss",
    "born_again_step",
    "pooled_features",
]

Classifier = Callable[[Tensor, Tensor, Tensor, int], Tensor]


def sample_episode(labels: Tensor, n_way: int, k_shot: int, n_query: int = 15,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Draw one N-way K-shot episode from a labelled pool.

    N classes are drawn among those with at least ``K + Q`` items; from each, ``K + Q`` distinct items, the first
    K for the support set and the rest for the query set. Episode labels are ``0..N-1`` in the order the classes
    were drawn.

    Args:
        labels (Tensor[M]): integer class of every item of the pool.
        n_way, k_shot, n_query: N, K, Q.
        generator: for reproducible episodes.

    Returns:
        ``(support_idx (Tensor[N*K]), support_y (Tensor[N*K]), query_idx (Tensor[N*Q]), query_y (Tensor[N*Q]))``:
        indices into the pool and episode labels; support and query indices never overlap.

    Raises:
        ValueError: for non-positive N or K, negative Q, non-1-D labels, or fewer than N classes with K + Q items.
    """
    check_tensor(labels, "labels")
    if labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"labels must be a 1-D integer tensor (M,), got shape {tuple(labels.shape)}, {labels.dtype}")
    if n_way < 1 or k_shot < 1 or n_query < 0:
        raise ValueError(f"n_way and k_shot must be >= 1 and n_query >= 0, got {n_way}, {k_shot}, {n_query}")
    classes, counts = labels.unique(return_counts=True)
    eligible = classes[counts >= k_shot + n_query]
    if len(eligible) < n_way:
        raise ValueError(f"a {n_way}-way episode with {k_shot} shots and {n_query} queries needs {n_way} classes "
                         f"with at least {k_shot + n_query} items each; the pool has {len(eligible)}")
    chosen = eligible[torch.randperm(len(eligible), generator=generator)[:n_way]]
    s_idx, q_idx = [], []
    for c in chosen:
        members = (labels == c).nonzero().squeeze(1)
        pick = members[torch.randperm(len(members), generator=generator)[: k_shot + n_query]]
        s_idx.append(pick[:k_shot]); q_idx.append(pick[k_shot:])
    ways = torch.arange(n_way)
    return (torch.cat(s_idx), ways.repeat_interleave(k_shot), torch.cat(q_idx), ways.repeat_interleave(n_query))


def _check_episode(support: Tensor, support_y: Tensor, query: Tensor, n_way: int) -> None:
    for name, x in (("support", support), ("support_y", support_y), ("query", query)):
        check_tensor(x, name)
    if support.dim() != 2 or query.dim() != 2 or support.shape[1] != query.shape[1]:
        raise ValueError(f"support and query must be (N*K, F) and (N*Q, F) with the same F, got "
                         f"{tuple(support.shape)} and {tuple(query.shape)}")
    if support_y.shape != (support.shape[0],):
        raise ValueError(f"support_y must have shape ({support.shape[0]},), got {tuple(support_y.shape)}")
    if n_way < 1 or (support_y.numel() and (int(support_y.min()) < 0 or int(support_y.max()) >= n_way)):
        raise ValueError(f"support_y must hold episode labels in 0..{n_way - 1}")
    if set(support_y.tolist()) != set(range(n_way)):
        raise ValueError(f"every one of the {n_way} classes needs at least one support example")


def nearest_mean_predict(support: Tensor, support_y: Tensor, query: Tensor, n_way: int, normalize: bool = True) -> Tensor:
    """Prototypical classifier: each query goes to the class whose support mean is nearest (Euclidean).

    Args:
        support (Tensor[N*K, F]), support_y (Tensor[N*K]) with labels ``0..N-1``, query (Tensor[N*Q, F]), n_way N.
        normalize: L2-normalise the features first (the paper does it for both classifiers).

    Returns:
        Tensor[N*Q] of predicted episode labels.
    """
    _check_episode(support, support_y, query, n_way)
    if normalize:
        support, query = F.normalize(support, dim=1), F.normalize(query, dim=1)
    one_hot = F.one_hot(support_y, n_way).to(support.dtype)  # (N*K, N)
    means = one_hot.T @ support / one_hot.sum(0)[:, None]  # (N, F)
    return torch.cdist(query, means).argmin(dim=1)


def logistic_regression_predict(support: Tensor, support_y: Tensor, query: Tensor, n_way: int, C: float = 1.0,
                                normalize: bool = True, max_iter: int = 100) -> Tensor:
    """The paper's few-shot classifier: multinomial logistic regression on the support set, then predict the queries.

    Minimises ``C * sum_i CE(W x_i + b, y_i) + ||W||^2 / 2`` (the intercept is not penalised) with L-BFGS, which is
    the objective of ``sklearn.linear_model.LogisticRegression(C=C)`` that the paper's code calls (tested against
    it). Torch, so it runs on the features' device.

    Args:
        support (Tensor[N*K, F]), support_y (Tensor[N*K]) with labels ``0..N-1``, query (Tensor[N*Q, F]), n_way N.
        C: inverse regularisation strength (sklearn's default 1.0).
        normalize: L2-normalise the features first (as the paper does).
        max_iter: L-BFGS iterations.

    Returns:
        Tensor[N*Q] of predicted episode labels.

    Raises:
        ValueError: for mismatched shapes, labels outside ``0..N-1``, a class without support, or ``C <= 0``.
    """
    _check_episode(support, support_y, query, n_way)
    if not C > 0:
        raise ValueError(f"C must be positive, got {C}")
    if normalize:
        support, query = F.normalize(support, dim=1), F.normalize(query, dim=1)
    x = support.detach().double()
    w = torch.zeros(n_way, x.shape[1], dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.zeros(n_way, dtype=x.dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=1e-6, tolerance_change=1e-9,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = C * F.cross_entropy(x @ w.T + b, support_y, reduction="sum") + 0.5 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return (query.double() @ w.T + b).argmax(dim=1)


def evaluate_episodes(features: Tensor, labels: Tensor, classifier: Classifier, n_way: int = 5, k_shot: int = 1,
                      n_query: int = 15, episodes: int = 600, seed: int = 0) -> Tensor:
    """Accuracy of ``classifier(support, support_y, query, n_way) -> predictions`` on ``episodes`` random
    episodes of a feature pool (the same seed gives the same episodes to every classifier).

    Args:
        features (Tensor[M, F]), labels (Tensor[M]): the pool, usually classes never seen in training.

    Returns:
        Tensor[E] of per-episode query accuracies in [0, 1].
    """
    check_tensor(features, "features")
    if features.dim() != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError(f"features must be (M, F) with one row per label, got {tuple(features.shape)} and "
                         f"{tuple(labels.shape)} labels")
    if episodes < 1 or n_query < 1:
        raise ValueError(f"episodes and n_query must be >= 1, got {episodes}, {n_query}")
    g = torch.Generator().manual_seed(seed)
    accs = []
    for _ in range(episodes):
        s, sy, q, qy = sample_episode(labels, n_way, k_shot, n_query, generator=g)
        pred = classifier(features[s], sy.to(features.device), features[q], n_way)
        accs.append((pred.cpu() == qy).double().mean())
    return torch.stack(accs)


def mean_confidence_interval(values: Tensor, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width ``t_{(1+c)/2, n-1} * s / sqrt(n)`` of the Student-t confidence interval of the mean
    (``s`` the sample standard deviation), the "± 95 % CI" of few-shot tables.

    Raises:
        ValueError: for fewer than 2 values or a confidence outside (0, 1).
    """
    from scipy.stats import t

    check_tensor(values, "values")
    v = values.double().flatten()
    if v.numel() < 2:
        raise ValueError(f"a confidence interval needs at least 2 values, got {v.numel()}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = v.numel()
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * float(v.std(unbiased=True)) / math.sqrt(n)
    return float(v.mean()), half


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, targets: Tensor, temperature: float = 4.0,
                      alpha: float = 0.5) -> Tensor:
    """Born-again / knowledge-distillation objective (Hinton et al., 2015; the paper's section 3.3):

    ``(1 - alpha) * CE(student, y) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))``

    (the ``T^2`` keeps the soft term's gradients on the scale of the hard one). The paper weights both terms 0.5
    and uses T = 4.

    Raises:
        ValueError: for logits of different shapes, ``temperature <= 0`` or ``alpha`` outside [0, 1].
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(f"student and teacher logits must both be (B, C), got {tuple(student_logits.shape)} and "
                         f"{tuple(teacher_logits.shape)}")
    if not temperature > 0 or not 0 <= alpha <= 1:
        raise ValueError(f"temperature must be > 0 and alpha in [0, 1], got {temperature}, {alpha}")
    hard = F.cross_entropy(student_logits, targets)
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits.detach() / temperature, dim=1), log_target=True,
                    reduction="batchmean")
    return (1 - alpha) * hard + alpha * temperature ** 2 * soft


def born_again_step(teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.5):
    """A ``step_fn`` for :func:`cvcourse.train.fit` that trains a student with :func:`distillation_loss` against a
    frozen ``teacher`` (kept in eval mode, no gradient)."""
    teacher.eval()

    def step(student: nn.Module, batch) -> Tensor:
        images, targets = batch
        with torch.no_grad():
            t_logits = teacher(images)
        return distillation_loss(student(images), t_logits, targets, temperature, alpha)

    return step


@torch.no_grad()
def pooled_features(features: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """Globally average-pooled ``features(images)`` (e.g. a ``NormConvNet``'s ``.features``) -> Tensor[M, F] on the
    CPU; the module runs in eval mode on its own device and its mode is restored. For bodies with
    ``forward_features`` and a ``Dataset`` see :func:`cvcourse.transfer.extract_features`."""
    check_tensor(images, "images")
    if images.dim() != 4:
        raise ValueError(f"images must be (M, C, H, W), got {tuple(images.shape)}")
    was = features.training
    features.eval()
    dev = next(features.parameters()).device
    try:
        out = [features(b.to(dev)).mean(dim=(2, 3)).cpu() for b in images.split(batch_size)]  # (b, F, h, w) -> (b, F)
    finally:
        features.train(was)
    return torch.cat(out)
