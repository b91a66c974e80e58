"""cvcourse.fewshot: episodes, the two few-shot classifiers (logistic regression against scikit-learn), the CI
formula and the distillation loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from cvcourse.fewshot import (
    distillation_loss,
    evaluate_episodes,
    logistic_regression_predict,
    mean_confidence_interval,
    nearest_mean_predict,
    sample_episode,
)


@pytest.mark.parametrize("n_way,k_shot,n_query", [(5, 1, 15), (3, 5, 2), (2, 4, 0)])
def test_episode_has_n_classes_k_shots_and_disjoint_support_and_query(n_way, k_shot, n_query):
    labels = torch.arange(7).repeat_interleave(20)[torch.randperm(140, generator=torch.Generator().manual_seed(0))]
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        s, sy, q, qy = sample_episode(labels, n_way, k_shot, n_query, generator=g)
        assert s.shape == sy.shape == (n_way * k_shot,) and q.shape == qy.shape == (n_way * n_query,)
        assert not set(s.tolist()) & set(q.tolist()) and len(set(s.tolist())) == len(s) and len(set(q.tolist())) == len(q)
        assert torch.equal(torch.bincount(sy, minlength=n_way), torch.full((n_way,), k_shot))
        # every episode label maps to one pool class, the same in support and query, and N distinct pool classes
        pool_of = {int(a): int(labels[i]) for a, i in zip(sy, s)}
        assert len(set(pool_of.values())) == n_way
        assert all(pool_of[int(a)] == int(labels[i]) for a, i in zip(qy, q))


def test_episode_skips_classes_with_too_few_items_and_rejects_impossible_requests():
    labels = torch.tensor([0] * 10 + [1] * 10 + [2] * 3)
    for _ in range(10):
        s, _, q, _ = sample_episode(labels, 2, 2, 5)
        assert 2 not in labels[torch.cat([s, q])].tolist()
    with pytest.raises(ValueError, match="needs 3 classes"):
        sample_episode(labels, 3, 2, 5)
    with pytest.raises(ValueError, match="n_way and k_shot"):
        sample_episode(labels, 2, 0, 5)
    with pytest.raises(ValueError, match="1-D integer"):
        sample_episode(labels.float(), 2, 1, 1)


def _separable(n_way=4, per_class=10, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(dim)[:n_way] * 10
    y = torch.arange(n_way).repeat_interleave(per_class)
    return centres[y] + 0.5 * torch.randn(len(y), dim, generator=g), y


@pytest.mark.parametrize("normalize", [True, False])
def test_nearest_mean_and_logistic_regression_are_perfect_on_separated_clusters(normalize):
    x, y = _separable()
    for clf in (nearest_mean_predict, logistic_regression_predict):
        accs = evaluate_episodes(x, y, lambda s, sy, q, n: clf(s, sy, q, n, normalize=normalize), n_way=4, k_shot=1,
                                 n_query=5, episodes=10)
        assert torch.equal(accs, torch.ones(10, dtype=accs.dtype))


def test_nearest_mean_hand_case():
    # class 0 mean (0, 0), class 1 mean (4, 0); the query (1.9, 5) is nearer to (0, 0)
    support = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [4.0, 0.0]])
    pred = nearest_mean_predict(support, torch.tensor([0, 0, 1]), torch.tensor([[1.9, 5.0], [2.1, -5.0]]), 2,
                                normalize=False)
    assert pred.tolist() == [0, 1]


@pytest.mark.parametrize("C", [0.1, 1.0, 10.0])
def test_logistic_regression_matches_sklearn(C):
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(3)
    support, sy = torch.randn(25, 8, generator=g), torch.arange(5).repeat(5)
    query = torch.randn(200, 8, generator=g)
    ours = logistic_regression_predict(support, sy, query, 5, C=C, normalize=False)
    ref = LogisticRegression(C=C, max_iter=1000, tol=1e-10).fit(support.numpy(), sy.numpy())
    agree = (ours.numpy() == ref.predict(query.numpy())).mean()
    assert agree >= 0.99, agree


def test_classifiers_reject_bad_episodes():
    s, sy, q = torch.randn(4, 3), torch.tensor([0, 0, 1, 1]), torch.randn(2, 3)
    with pytest.raises(ValueError, match="same F"):
        nearest_mean_predict(s, sy, torch.randn(2, 4), 2)
    with pytest.raises(ValueError, match="at least one support"):
        logistic_regression_predict(s, sy, q, 3)
    with pytest.raises(ValueError, match="C must be positive"):
        logistic_regression_predict(s, sy, q, 2, C=0.0)


def test_confidence_interval_hand_cases():
    # two values 0 and 1: mean 0.5, s = 1/sqrt(2), se = 0.5, t_{0.975, 1} = 12.7062
    mean, half = mean_confidence_interval(torch.tensor([0.0, 1.0]))
    assert mean == pytest.approx(0.5) and half == pytest.approx(12.7062 * 0.5, rel=1e-4)
    # many values: t -> z = 1.95996, half-width = 1.96 s / sqrt(n)
    v = torch.tensor([0.0, 1.0] * 5000)
    mean, half = mean_confidence_interval(v)
    assert half == pytest.approx(1.95996 * v.std().item() / math.sqrt(len(v)), rel=1e-3)
    with pytest.raises(ValueError, match="at least 2"):
        mean_confidence_interval(torch.tensor([1.0]))


def test_distillation_loss_limits():
    g = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g), torch.randint(4, (6,), generator=g)
    torch.testing.assert_close(distillation_loss(s, t, y, alpha=0.0), F.cross_entropy(s, y))
    # alpha = 1 and the student equal to the teacher: KL = 0
    assert distillation_loss(t, t, y, alpha=1.0).abs() < 1e-6
    # the soft term by hand: T^2 * sum p_t (log p_t - log p_s) / B
    pt, ps = F.softmax(t / 2, 1), F.softmax(s / 2, 1)
    by_hand = 4 * (pt * (pt.log() - ps.log())).sum(1).mean()
    torch.testing.assert_close(distillation_loss(s, t, y, temperature=2.0, alpha=1.0), by_hand)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(s, t, y, temperature=0.0)
