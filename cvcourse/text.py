"""Sentences, ROUGE and PEGASUS gap-sentence selection (paper notebook ``lectures/papers/pegasus_gap_sentences``).

ROUGE-N F1 counts clipped n-gram overlaps between a candidate and a reference; ROUGE-L F1 uses the longest
common subsequence of tokens. Tokens are lower-cased runs of letters and digits, as in the ``rouge-score``
package without stemming. Gap-sentence selection picks the sentences PEGASUS masks for pre-training:
``"random"``, ``"lead"`` (the first ones) or ``"principal"`` (the highest ROUGE-1 F1 of each sentence
against the rest of the document, scored independently: the paper's "Ind-Orig" variant).
"""

from __future__ import annotations

import random
import re
from collections import Counter

_TOKEN = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
STRATEGIES = ("random", "lead", "principal")


def _check_str(name: str, value) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens: ``tokenize("The cat's hat.") == ["the", "cat", "s", "hat"]``."""
    _check_str("text", text)
    return _TOKEN.findall(text.lower())


def split_sentences(text: str) -> list[str]:
    """Split prose at ``.``, ``!`` or ``?`` followed by whitespace and a capital letter or quote."""
    _check_str("text", text)
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _f1(overlap: int, n_candidate: int, n_reference: int) -> float:
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_candidate, overlap / n_reference
    return 2 * precision * recall / (precision + recall)


def rouge_n(candidate: str, reference: str, n: int = 1) -> float:
    """ROUGE-N F1 between two texts: clipped n-gram overlap, 0.0 when either side has no n-grams.

    Args:
        candidate (str): the generated (or selected) text.
        reference (str): the text it is compared with.
        n (int): n-gram length, 1 or more.
    """
    _check_str("candidate", candidate)
    _check_str("reference", reference)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    cand, ref = _ngrams(tokenize(candidate), n), _ngrams(tokenize(reference), n)
    overlap = sum((cand & ref).values())
    return _f1(overlap, sum(cand.values()), sum(ref.values()))


def _lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1: longest common token subsequence over the candidate's and the reference's lengths."""
    _check_str("candidate", candidate)
    _check_str("reference", reference)
    a, b = tokenize(candidate), tokenize(reference)
    return _f1(_lcs_length(a, b), len(a), len(b))


def principal_scores(sentences: list[str]) -> list[float]:
    """ROUGE-1 F1 of each sentence against the rest of the document (all other sentences joined)."""
    if not isinstance(sentences, (list, tuple)) or not all(isinstance(s, str) for s in sentences):
        raise TypeError("sentences must be a list of str")
    return [rouge_n(s, " ".join(sentences[:i] + sentences[i + 1:]), 1) for i, s in enumerate(sentences)]


def select_gap_sentences(sentences: list[str], strategy: str, ratio: float = 0.3, seed: int = 0) -> list[int]:
    """Indices (sorted) of the sentences PEGASUS would mask: ``max(1, round(ratio * len(sentences)))`` of them.

    Args:
        sentences (list[str]): the document, one sentence per item (at least one).
        strategy (str): ``"random"``, ``"lead"`` or ``"principal"``.
        ratio (float): gap-sentence ratio in (0, 1]; the paper settled on 0.3.
        seed (int): seed of the ``"random"`` strategy.
    """
    if not isinstance(sentences, (list, tuple)) or not sentences:
        raise ValueError("sentences must be a non-empty list of str")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio!r}")
    k = max(1, round(ratio * len(sentences)))
    if strategy == "lead":
        return list(range(k))
    if strategy == "random":
        return sorted(random.Random(seed).sample(range(len(sentences)), k))
    scores = principal_scores(list(sentences))
    return sorted(sorted(range(len(sentences)), key=lambda i: (-scores[i], i))[:k])


def mask_document(sentences: list[str], indices: list[int], mask: str = "[MASK1]") -> tuple[str, str]:
    """The pre-training pair: (input with the chosen sentences replaced by ``mask``, target = those sentences)."""
    chosen = set(indices)
    source = " ".join(mask if i in chosen else s for i, s in enumerate(sentences))
    target = " ".join(sentences[i] for i in sorted(chosen))
    return source, target
