"""ROUGE and PEGASUS gap-sentence selection (cvcourse.text), against hand-computed cases."""

import pytest

from cvcourse.data.essays import ESSAYS
from cvcourse.text import (
    mask_document, principal_scores, rouge_l, rouge_n, select_gap_sentences, split_sentences, tokenize,
)


def test_tokenize_and_split():
    assert tokenize("The Cat's hat, 2 times!") == ["the", "cat", "s", "hat", "2", "times"]
    assert split_sentences("One here. Two? Three! e.g. no split") == ["One here.", "Two?", "Three! e.g. no split"]


def test_rouge_hand_computed():
    # unigrams: overlap {the, cat} = 2 of 3 on each side -> P = R = F = 2/3
    assert rouge_n("the cat sat", "the cat ran", 1) == pytest.approx(2 / 3)
    # bigrams: only "the cat" shared, 1 of 2 on each side
    assert rouge_n("the cat sat", "the cat ran", 2) == pytest.approx(1 / 2)
    # clipping: "the" counted once; P = 1/3, R = 1/2, F = 2PR/(P+R) = 0.4
    assert rouge_n("the the the", "the cat", 1) == pytest.approx(0.4)
    # LCS of "a b c d" and "a c b d" has length 3 -> 3/4
    assert rouge_l("a b c d", "a c b d") == pytest.approx(0.75)
    assert rouge_l("x y", "a b") == 0.0
    assert rouge_n("", "the cat", 1) == 0.0 and rouge_n("cat", "cat", 2) == 0.0


def test_principal_scores_hand_computed():
    sentences = ["Cats purr.", "Cats purr loudly.", "Dogs bark."]
    # s0 vs "cats purr loudly dogs bark": P = 1, R = 2/5 -> 4/7; s1 vs "cats purr dogs bark": 2/3, 1/2 -> 4/7
    assert principal_scores(sentences) == pytest.approx([4 / 7, 4 / 7, 0.0])
    assert select_gap_sentences(sentences, "principal", ratio=0.6) == [0, 1]


def test_strategies_and_masking():
    sentences = split_sentences(ESSAYS["bees"])
    assert len(sentences) == 10
    assert select_gap_sentences(sentences, "lead") == [0, 1, 2]
    random_pick = select_gap_sentences(sentences, "random", seed=3)
    assert len(set(random_pick)) == 3 and random_pick == select_gap_sentences(sentences, "random", seed=3)
    source, target = mask_document(["A b.", "C d.", "E f."], [1])
    assert source == "A b. [MASK1] E f." and target == "C d."


def test_bad_input():
    with pytest.raises(ValueError, match="strategy"):
        select_gap_sentences(["A."], "best")
    with pytest.raises(ValueError, match="ratio"):
        select_gap_sentences(["A."], "lead", ratio=0)
    with pytest.raises(ValueError, match="non-empty"):
        select_gap_sentences([], "lead")
    with pytest.raises(ValueError, match="n must"):
        rouge_n("a", "a", 0)
    with pytest.raises(TypeError, match="str"):
        rouge_n(["a"], "a")
