"""Synthetic word images for scene text recognition (paper notebook ``lectures/papers/scene_text_transformer``).

Words are rendered offline with PIL and the TrueType fonts that ship with matplotlib (DejaVu Sans, Serif and
Mono in regular, bold and slanted cuts), each with a random font, size, text and background colour, slight
rotation, position and pixel noise. The label is the word itself; :class:`CharVocab` turns it into token ids for
a sequence model (``<pad>``, ``<sos>``, ``<eos>`` plus one id per character) and back.

Letters: H, W image height and width, T token sequence length (``max_len + 2``: start and end tokens).

Convention: images are float ``(3, H, W)`` in ``[0, 1]``. Item ``i`` of a data set is drawn from
``numpy.random.default_rng([seed, i])``, so any item can be generated in any order and two data sets with the same
arguments hold identical images; a different ``seed`` gives different renderings (and different words).

- :class:`CharVocab`        characters <-> token ids, with ``encode`` / ``decode`` / ``encode_batch``
- :func:`font_paths`        the matplotlib TTF files used for rendering
- :func:`render_word`       one word image from a NumPy generator
- :class:`SyntheticWords`   a map-style data set of ``(image, tokens)`` with ``.texts``
- :func:`edit_distance`, :func:`character_accuracy`, :func:`word_accuracy`  recognition metrics
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["LOWERCASE", "WORDS", "FONT_NAMES", "CharVocab", "font_paths", "render_word", "random_text",
           "SyntheticWords", "edit_distance", "character_accuracy", "word_accuracy"]

LOWERCASE = "abcdefghijklmnopqrstuvwxyz"

#: A small vocabulary of short English words (2-5 letters) for the ``"words"`` text source.
WORDS: tuple[str, ...] = tuple("""
at be by do go he if in is it me my no of on or so to up us we an as
all and any are bag bed big box boy bus but can car cat cup day dog eat egg end eye far few fly for fox fun
get got hat her him his hot how ice ink jam job key kid leg lip map mix net new not now old one our out own pen
pig put red run sad saw sea see set sky sun ten the top toy two use van war way web who why win yes you zoo
able back bird blue book cold dark door duck each fast fish food game gold good hand home jump king lamp
life line long milk moon name nose open park play quiz rain road rock room ship shoe snow star talk time
tree wall warm wind word work yard zero apple black bread chair clock cloud dream earth field fruit glass
green horse house light music night ocean paper plant queen quick river smile sound stone table tiger train
water white world young zebra
""".split())

#: matplotlib font files used by default (all present in ``matplotlib/mpl-data/fonts/ttf``).
FONT_NAMES: tuple[str, ...] = (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique",
    "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic",
    "DejaVuSansMono", "DejaVuSansMono-Bold",
)


class CharVocab:
    """Characters <-> token ids for a sequence decoder.

    Ids ``0, 1, 2`` are ``<pad>``, ``<sos>`` (start) and ``<eos>`` (end); character ``chars[k]`` is id ``k + 3``.
    :meth:`encode` gives ``[sos, c1, ..., cn, eos]`` (padded with ``pad`` to ``length``), :meth:`decode` reads ids up
    to the first ``<eos>`` and skips ``<sos>``/``<pad>``, so ``decode(encode(s)) == s``.

    Args:
        chars: the alphabet, each character once (default: the 26 lower-case letters).
    """

    PAD, SOS, EOS = 0, 1, 2
    SPECIALS = ("<pad>", "<sos>", "<eos>")

    def __init__(self, chars: str = LOWERCASE) -> None:
        if not isinstance(chars, str) or not chars:
            raise ValueError(f"chars must be a non-empty str, got {chars!r}")
        if len(set(chars)) != len(chars):
            raise ValueError(f"chars must not repeat a character, got {chars!r}")
        self.chars = chars
        self.itos = list(self.SPECIALS) + list(chars)
        self.stoi = {c: i + len(self.SPECIALS) for i, c in enumerate(chars)}

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"CharVocab({self.chars!r})"

    def encode(self, text: str, length: int | None = None) -> Tensor:
        """Token ids ``[sos, c1, ..., cn, eos]`` (int64), padded with ``pad`` up to ``length`` when given.

        Raises:
            ValueError: for a character outside the alphabet, or ``length < len(text) + 2``.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        unknown = sorted({c for c in text if c not in self.stoi})
        if unknown:
            raise ValueError(f"text {text!r} has characters outside the vocabulary: {unknown}; "
                             f"the vocabulary is {self.chars!r}")
        ids = [self.SOS] + [self.stoi[c] for c in text] + [self.EOS]
        if length is not None:
            if length < len(ids):
                raise ValueError(f"length={length} is too short for {text!r}: it needs len(text) + 2 = {len(ids)}")
            ids += [self.PAD] * (length - len(ids))
        return torch.tensor(ids, dtype=torch.long)

    def encode_batch(self, texts: Sequence[str], length: int | None = None) -> Tensor:
        """``Tensor[B, T]`` of :meth:`encode` for each text, padded to ``length`` (default: the longest + 2)."""
        if length is None:
            length = max(len(t) for t in texts) + 2
        return torch.stack([self.encode(t, length) for t in texts])

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """The string of ``ids`` read up to the first ``<eos>``, skipping ``<sos>`` and ``<pad>``.

        Raises:
            ValueError: for an id outside ``0 .. len(self) - 1``.
        """
        if isinstance(ids, Tensor):
            if ids.dim() != 1:
                raise ValueError(f"ids must be one sequence (T,), got shape {tuple(ids.shape)}; use decode_batch")
            ids = ids.tolist()
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"token id {i} is outside the vocabulary (0 .. {len(self.itos) - 1})")
            if i == self.EOS:
                break
            if i >= len(self.SPECIALS):
                out.append(self.itos[i])
        return "".join(out)

    def decode_batch(self, ids: Tensor) -> list[str]:
        """:meth:`decode` of each row of ``ids (Tensor[B, T])``."""
        return [self.decode(row) for row in ids]


def font_paths(names: Sequence[str] = FONT_NAMES) -> list[str]:
    """Paths of matplotlib's bundled TTF files ``<name>.ttf`` (e.g. ``"DejaVuSerif-Bold"``).

    Raises:
        ValueError: for a name without a file in ``matplotlib/mpl-data/fonts/ttf``.
    """
    import matplotlib

    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    paths = []
    for name in names:
        path = os.path.join(folder, f"{name}.ttf")
        if not os.path.isfile(path):
            have = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".ttf"))
            raise ValueError(f"no font {name!r} in {folder}; available: {have}")
        paths.append(path)
    return paths


@functools.lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _luminance(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _colours(rng: np.random.Generator, min_contrast: float) -> tuple[np.ndarray, np.ndarray]:
    """A background and a text colour (RGB in [0, 1]) whose luminances differ by at least ``min_contrast``."""
    while True:
        bg, fg = rng.random(3), rng.random(3)
        if abs(_luminance(bg) - _luminance(fg)) >= min_contrast:
            return bg, fg


def render_word(text: str, rng: np.random.Generator, size: tuple[int, int] = (32, 96),
                fonts: Sequence[str] | None = None, max_rotation: float = 4.0, noise_std: float = 0.04,
                min_contrast: float = 0.35, fill: bool = True) -> np.ndarray:
    """Render ``text`` as a ``float32 (3, H, W)`` image in ``[0, 1]`` with random style drawn from ``rng``.

    The font (one of ``fonts``, default :func:`font_paths`), font size (55-85 % of ``H``), text and background
    colours (luminance contrast at least ``min_contrast``), rotation (uniform in ``+-max_rotation`` degrees),
    placement and Gaussian pixel noise (standard deviation uniform in ``[0, noise_std]``) all come from ``rng``.

    Placement: with ``fill=True`` (default) the rendered word, with random margins of up to 8 % of each side, is
    resized to the whole ``(H, W)`` image, as a detected word box is cropped and resized before recognition (the
    paper resizes every crop to 96 x 96); short words are stretched. With ``fill=False`` the word keeps its aspect
    ratio at a random position (shrunk only if it does not fit).

    Raises:
        ValueError: for an empty ``text``, a size below ``(8, 8)`` or negative rotation/noise.
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"text must be a non-empty str, got {text!r}")
    height, width = size
    if height < 8 or width < 8:
        raise ValueError(f"size must be (H, W) with both at least 8, got {tuple(size)}")
    if max_rotation < 0 or noise_std < 0:
        raise ValueError(f"max_rotation and noise_std must be >= 0, got {max_rotation}, {noise_std}")
    fonts = list(fonts) if fonts is not None else font_paths()
    path = fonts[int(rng.integers(len(fonts)))]
    font_px = max(6, int(round(height * rng.uniform(0.55, 0.85))))
    bg, fg = _colours(rng, min_contrast)
    angle = rng.uniform(-max_rotation, max_rotation)
    std = rng.uniform(0.0, noise_std)

    # draw black-on-white on a tight canvas (a mask), rotate it, shrink it if needed, then paste it with colours
    font = _font(path, font_px)
    x0, y0, x1, y1 = font.getbbox(text)
    pad = 2
    canvas = Image.new("L", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - x0, pad - y0), text, fill=255, font=font)
    canvas = canvas.rotate(angle, resample=Image.BILINEAR, expand=True, fillcolor=0)
    if fill:
        mx0, mx1 = (int(m) for m in rng.integers(0, max(1, int(0.08 * width)) + 1, size=2))
        my0, my1 = (int(m) for m in rng.integers(0, max(1, int(0.08 * height)) + 1, size=2))
        canvas = canvas.resize((width - mx0 - mx1, height - my0 - my1), Image.BILINEAR)
        left, top = mx0, my0
    else:
        scale = min(1.0, (width - 2) / canvas.width, (height - 2) / canvas.height)
        if scale < 1.0:
            canvas = canvas.resize((max(1, int(canvas.width * scale)), max(1, int(canvas.height * scale))),
                                   Image.BILINEAR)
        left = int(rng.integers(0, width - canvas.width + 1))
        top = int(rng.integers(0, height - canvas.height + 1))
    mask = np.zeros((height, width), np.float32)
    mask[top:top + canvas.height, left:left + canvas.width] = np.asarray(canvas, np.float32) / 255.0

    image = bg[:, None, None] * (1.0 - mask) + fg[:, None, None] * mask      # (3, H, W)
    image = image + std * rng.standard_normal(image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def random_text(rng: np.random.Generator, source: str = "words", chars: str = LOWERCASE,
                length: tuple[int, int] = (2, 5), words: Sequence[str] = WORDS) -> str:
    """A word from ``words`` (``source="words"``) or a random string of ``chars`` (``source="random"``, length
    uniform in ``length``, inclusive).

    Raises:
        ValueError: for an unknown ``source`` or a bad ``length``.
    """
    if source == "words":
        return words[int(rng.integers(len(words)))]
    if source == "random":
        lo, hi = length
        if not 1 <= lo <= hi:
            raise ValueError(f"length must be (min, max) with 1 <= min <= max, got {length}")
        n = int(rng.integers(lo, hi + 1))
        return "".join(chars[int(k)] for k in rng.integers(len(chars), size=n))
    raise ValueError(f"source must be 'words' or 'random', got {source!r}")


class SyntheticWords(Dataset):
    """``n`` rendered word images with their token ids: item ``i`` is ``(image (Tensor[3, H, W]), tokens (Tensor[T]))``.

    Item ``i`` draws its text and then its rendering (:func:`render_word`) from ``default_rng([seed, i])``. The texts
    are drawn on construction (``.texts``, cheap); images are rendered on access (wrap the set in
    :func:`cvcourse.data.materialise` to render once).

    Args:
        n: number of items.
        seed: the data set's seed; a held-out set uses another one.
        source: ``"words"`` (from :data:`WORDS`), ``"random"`` (random letter strings) or ``"mixed"`` (each item
            picks one of the two with probability 1/2).
        size: ``(H, W)`` of the images.
        vocab: the :class:`CharVocab` (default: lower-case letters).
        max_len: the longest text allowed; ``tokens`` have length ``T = max_len + 2``.
        length: ``(min, max)`` length of random strings.
        words: the vocabulary for ``"words"`` (every word must fit ``max_len`` and ``vocab``).
        **render_kwargs: passed to :func:`render_word` (``fonts``, ``max_rotation``, ``noise_std``, ``min_contrast``,
            ``fill``).

    Raises:
        ValueError: for ``n < 1``, an unknown ``source``, or words that do not fit ``vocab`` / ``max_len``.
    """

    SOURCES = ("words", "random", "mixed")

    def __init__(self, n: int, seed: int = 0, source: str = "words", size: tuple[int, int] = (32, 96),
                 vocab: CharVocab | None = None, max_len: int = 6, length: tuple[int, int] = (2, 5),
                 words: Sequence[str] = WORDS, **render_kwargs) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if source not in self.SOURCES:
            raise ValueError(f"source must be one of {self.SOURCES}, got {source!r}")
        self.vocab = vocab if vocab is not None else CharVocab()
        too_long = [w for w in words if len(w) > max_len]
        if source != "random" and too_long:
            raise ValueError(f"words longer than max_len={max_len}: {too_long[:5]}")
        if source != "words" and length[1] > max_len:
            raise ValueError(f"length={length} allows strings longer than max_len={max_len}")
        for w in words if source != "random" else ():
            self.vocab.encode(w)  # raises for characters outside the vocabulary
        self.n, self.seed, self.source, self.size, self.max_len = n, seed, source, tuple(size), max_len
        self.render_kwargs = dict(render_kwargs)
        if "fonts" not in self.render_kwargs:
            self.render_kwargs["fonts"] = font_paths()
        self.texts: list[str] = []
        self._states = []
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            src = source if source != "mixed" else ("words", "random")[int(rng.integers(2))]
            self.texts.append(random_text(rng, src, self.vocab.chars, length, words))
            self._states.append(rng.bit_generator.state)  # the rendering continues from here

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} items")
        index %= self.n
        rng = np.random.default_rng()
        rng.bit_generator.state = self._states[index]
        image = render_word(self.texts[index], rng, self.size, **self.render_kwargs)
        return torch.from_numpy(image), self.vocab.encode(self.texts[index], self.max_len + 2)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: the fewest single-character insertions, deletions and substitutions from ``a`` to ``b``.

    Dynamic programming over one row at a time (``O(len(a) * len(b))``): ``edit_distance("kitten", "sitting") == 3``.
    """
    if not isinstance(a, str) or not isinstance(b, str):
        raise TypeError(f"edit_distance takes two str, got {type(a).__name__} and {type(b).__name__}")
    prev = list(range(len(b) + 1))        # distance from a[:0] to b[:j]
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _check_pairs(preds: Sequence[str], targets: Sequence[str]) -> None:
    if len(preds) != len(targets) or not len(targets):
        raise ValueError(f"preds and targets must be non-empty and of equal length, got {len(preds)} and "
                         f"{len(targets)}")


def character_accuracy(preds: Sequence[str], targets: Sequence[str]) -> float:
    """Mean over words of ``1 - edit_distance(p, t) / max(len(p), len(t))`` (1 minus the normalised edit
    distance, as in the ICDAR 2019 robust-reading metric); a pair of empty strings counts as 1.

    Raises:
        ValueError: for empty or unequal-length lists.
    """
    _check_pairs(preds, targets)
    scores = [1.0 - edit_distance(p, t) / max(len(p), len(t), 1) for p, t in zip(preds, targets)]
    return float(np.mean(scores))


def word_accuracy(preds: Sequence[str], targets: Sequence[str]) -> float:
    """Fraction of words recognised exactly.

    Raises:
        ValueError: for empty or unequal-length lists.
    """
    _check_pairs(preds, targets)
    return float(np.mean([p == t for p, t in zip(preds, targets)]))
