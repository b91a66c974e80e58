"""cvcourse.data.words: rendering determinism, the character vocabulary and the recognition metrics."""

import numpy as np
import pytest
import torch

from cvcourse.data.words import (
    WORDS,
    CharVocab,
    SyntheticWords,
    character_accuracy,
    edit_distance,
    font_paths,
    random_text,
    render_word,
    word_accuracy,
)


def test_vocab_ids_and_encode_hand_case():
    v = CharVocab("abc")
    assert len(v) == 6 and v.itos[:3] == ["<pad>", "<sos>", "<eos>"]
    # sos=1, 'c'=5, 'a'=3, eos=2, then pad=0 up to length 6
    assert v.encode("ca", length=6).tolist() == [1, 5, 3, 2, 0, 0]
    assert v.encode("").tolist() == [1, 2]


@pytest.mark.parametrize("text", ["a", "hello", "zebra", "qqq", ""])
def test_encode_decode_roundtrip(text):
    v = CharVocab()
    assert v.decode(v.encode(text, length=9)) == text


def test_decode_stops_at_first_eos_and_skips_specials():
    v = CharVocab("ab")
    # sos a pad b eos a  ->  "ab" (pad skipped, everything after eos ignored)
    assert v.decode([1, 3, 0, 4, 2, 3]) == "ab"
    batch = v.encode_batch(["a", "bab"])
    assert batch.shape == (2, 5)
    assert v.decode_batch(batch) == ["a", "bab"]


def test_vocab_errors():
    v = CharVocab()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        v.encode("Hello")
    with pytest.raises(ValueError, match="too short"):
        v.encode("abcd", length=5)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        v.decode([1, 99])
    with pytest.raises(ValueError, match="repeat"):
        CharVocab("aba")


def test_font_paths_exist_and_bad_name_errors():
    paths = font_paths()
    assert len(paths) >= 3 and all(p.endswith(".ttf") for p in paths)
    with pytest.raises(ValueError, match="no font"):
        font_paths(["NoSuchFont"])


def test_render_is_deterministic_by_seed_and_in_range():
    a = render_word("cat", np.random.default_rng(3))
    b = render_word("cat", np.random.default_rng(3))
    c = render_word("cat", np.random.default_rng(4))
    assert a.shape == (3, 32, 96) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1
    assert a.min() >= 0 and a.max() <= 1


def test_render_draws_ink_where_the_text_is():
    # no noise, no rotation: the image is exactly two colours blended by the glyph mask, and a longer word
    # covers more pixels than a shorter one in the same style
    short = render_word("i", np.random.default_rng(0), noise_std=0.0, max_rotation=0.0)
    long = render_word("mmmm", np.random.default_rng(0), noise_std=0.0, max_rotation=0.0)
    background = short[:, 0, 0]
    ink = lambda img: (np.abs(img - background[:, None, None]).max(0) > 0.05).mean()
    assert 0 < ink(short) < ink(long) < 0.8


def test_render_errors():
    with pytest.raises(ValueError, match="non-empty"):
        render_word("", np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 8"):
        render_word("a", np.random.default_rng(0), size=(4, 40))


def test_dataset_determinism_seeds_and_tokens():
    a, b = SyntheticWords(6, seed=0, source="mixed"), SyntheticWords(6, seed=0, source="mixed")
    c = SyntheticWords(6, seed=1, source="mixed")
    assert a.texts == b.texts
    # any order gives the same item
    torch.testing.assert_close(a[4][0], b[4][0])
    _ = b[0]
    torch.testing.assert_close(a[4][0], b[4][0])
    assert a.texts != c.texts or not torch.equal(a[0][0], c[0][0])
    image, tokens = a[2]
    assert image.shape == (3, 32, 96) and tokens.shape == (8,)
    assert a.vocab.decode(tokens) == a.texts[2]


def test_dataset_sources():
    words = SyntheticWords(30, source="words")
    assert all(t in WORDS for t in words.texts)
    rand = SyntheticWords(30, source="random", length=(3, 4))
    assert all(3 <= len(t) <= 4 for t in rand.texts)
    assert sum(t in WORDS for t in rand.texts) < 5


def test_dataset_errors():
    with pytest.raises(ValueError, match="source"):
        SyntheticWords(3, source="poems")
    with pytest.raises(ValueError, match="max_len"):
        SyntheticWords(3, source="words", max_len=3)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        SyntheticWords(3, source="words", words=["Hi"])
    with pytest.raises(IndexError):
        SyntheticWords(3)[3]
    with pytest.raises(ValueError, match="source"):
        random_text(np.random.default_rng(0), source="poems")


@pytest.mark.parametrize("a, b, d", [
    ("kitten", "sitting", 3),   # k->s, e->i, +g
    ("", "abc", 3), ("abc", "", 3), ("abc", "abc", 0),
    ("flaw", "lawn", 2),        # -f, +n
    ("ab", "ba", 2),            # no transpositions in Levenshtein
])
def test_edit_distance_hand_cases(a, b, d):
    assert edit_distance(a, b) == d
    assert edit_distance(b, a) == d


def test_edit_distance_against_brute_force():
    # reference: recursion over the three operations, memoised (small strings)
    import functools

    def ref(a, b):
        @functools.lru_cache(None)
        def d(i, j):
            if i == 0 or j == 0:
                return i + j
            return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
        return d(len(a), len(b))

    rng = np.random.default_rng(0)
    for _ in range(50):
        a = "".join(rng.choice(list("abc"), size=rng.integers(0, 6)))
        b = "".join(rng.choice(list("abc"), size=rng.integers(0, 6)))
        assert edit_distance(a, b) == ref(a, b)


def test_accuracies_hand_case():
    preds, targets = ["cat", "dg", "", "bird"], ["cat", "dog", "sun", "bird"]
    # per word 1 - ed / max len: 1, 1 - 1/3, 1 - 3/3, 1
    assert character_accuracy(preds, targets) == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)
    assert word_accuracy(preds, targets) == 0.5
    with pytest.raises(ValueError, match="equal length"):
        word_accuracy(["a"], ["a", "b"])
