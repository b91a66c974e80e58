"""Adaptive Attention Span (Sukhbaatar, Grave, Bojanowski, Joulin, 2019): each head learns how far back to look.

Paper notebook ``lectures/papers/adaptive_attention_span.ipynb`` (extends lecture 5, where self-attention is taught).
Causal self-attention lets the query at position ``t`` look at every earlier key; the cost grows with that context
length ``S``. The paper multiplies each head's attention weights by a soft mask of the *distance* ``x = t - s``,

    ``m_z(x) = clamp((R + z - x) / R, 0, 1)``   (1 up to distance ``z``, a linear ramp of width ``R``, then 0),

with a learnable span ``z`` per head, renormalises the masked weights, and adds an L1 penalty on the spans to the
loss, so that a head keeps a long span only when the loss pays for it. Keys beyond ``z + R`` get weight 0 and need
not be computed at all, which is where the FLOPs are saved.

- :func:`span_mask`               ``m_z(x)`` for distances and spans (broadcasting)
- :func:`apply_span_mask`         multiply attention weights by the mask and renormalise each row
- :func:`effective_span`          number of keys a head can still see: ``ceil(z + R)``, at most ``S``
- :func:`attention_macs`          multiply-adds of ``Q K^T`` and ``A V`` for one causal head limited to a span
- :func:`attention_flops_saved`   share of those MACs saved by the learned spans against the full span
- :class:`AdaptiveSpanAttention`  multi-head causal self-attention with a learned relative-position bias and
  (optionally) the adaptive span mask
- :class:`SpanTransformer`        a tiny pre-norm transformer over token sequences built from it
- :func:`span_penalty`            the L1 penalty: mean span over all heads of a model, in tokens
- :func:`span_step_fn`            a ``step_fn`` for :func:`cvcourse.train.fit`: clamp the spans, cross-entropy +
  ``lam`` x penalty
- :func:`two_delay_task`          the notebook's synthetic task: the label at ``t`` is the pair of tokens at
  ``t - d1`` and ``t - d2``
- :func:`token_accuracy`          accuracy over the positions that have a label

Letter legend: B batch, L sequence length, D model width, h heads, Dh = D / h, S maximum span, R ramp width,
V vocabulary, C classes.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse._checks import check_tensor

__all__ = ["span_mask", "apply_span_mask", "effective_span", "attention_macs", "attention_flops_saved",
           "AdaptiveSpanAttention", "SpanBlock", "SpanTransformer", "span_penalty", "span_step_fn", "two_delay_task",
           "token_accuracy", "IGNORE_INDEX"]

#: Label of positions without a target (``F.cross_entropy``'s default ``ignore_index``).
IGNORE_INDEX = -100


def _check_ramp(ramp: float) -> None:
    if not ramp > 0:
        raise ValueError(f"ramp (R, the width of the linear ramp) must be > 0, got {ramp}")


def span_mask(distance: Tensor, span: Tensor | float, ramp: float) -> Tensor:
    """The soft span mask ``m_z(x) = clamp((R + z - x) / R, 0, 1)`` of the paper (its Eq. 2).

    1 for distances ``x <= z``, falling linearly to 0 at ``x = z + R``, 0 beyond. Differentiable in ``span``: the
    gradient ``dm/dz = 1 / R`` on the ramp (``z < x < z + R``) and 0 where the mask is flat.

    Args:
        distance (Tensor[...]): how far back each key is from its query (``t - s >= 0``).
        span (Tensor[...] or float): ``z`` in tokens, broadcast against ``distance`` (e.g. ``(h, 1, 1)`` against
            ``(L, L)``).
        ramp: ``R > 0``.

    Returns:
        Tensor of the broadcast shape with values in ``[0, 1]``.

    Raises:
        ValueError: for ``ramp <= 0``.
    """
    check_tensor(distance, "distance")
    _check_ramp(ramp)
    return ((ramp + span - distance) / ramp).clamp(0.0, 1.0)


def apply_span_mask(attn: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Multiply attention weights by a mask and renormalise every row to sum to one (as the paper's code does).

    Args:
        attn (Tensor[..., L, L]): softmax attention weights (rows sum to one).
        mask (Tensor broadcastable to attn): values in ``[0, 1]``.
        eps: added to the row sums; a row whose masked weights are all 0 stays 0.

    Returns:
        Tensor of ``attn``'s shape, ``attn * mask / (sum(attn * mask) + eps)`` over the last dimension.
    """
    check_tensor(attn, "attn")
    check_tensor(mask, "mask")
    out = attn * mask
    return out / (out.sum(-1, keepdim=True) + eps)


def effective_span(span: Tensor, ramp: float, max_span: int) -> Tensor:
    """How many keys back a head still sees (mask > 0): distances ``0 .. ceil(z + R) - 1``, so ``ceil(z + R)``,
    clipped to ``[1, max_span]``.

    Args:
        span (Tensor[h]): learned ``z`` per head, in tokens.
        ramp: ``R > 0``.
        max_span: ``S``, the most keys the layer ever looks at.

    Returns:
        Tensor[h] int64.
    """
    check_tensor(span, "span")
    _check_ramp(ramp)
    return torch.ceil(span.detach() + ramp).clamp(1, max_span).long()


def attention_macs(seq_len: int, span: int, head_dim: int) -> int:
    """Multiply-adds of one causal attention head whose queries see at most ``span`` keys (themselves included).

    Query ``t`` (0-based) sees ``min(t + 1, span)`` keys; each key costs ``Dh`` MACs in ``Q K^T`` and ``Dh`` in
    ``A V``, so ``MACs = 2 Dh sum_t min(t + 1, span) = 2 Dh (s (s + 1) / 2 + (L - s) s)`` with
    ``s = min(span, L)``. The projections (``qkv``, output) do not depend on the span and are not counted.

    Raises:
        ValueError: unless ``seq_len``, ``span`` and ``head_dim`` are positive integers.
    """
    for name, v in (("seq_len", seq_len), ("span", span), ("head_dim", head_dim)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    s = min(int(span), int(seq_len))
    return 2 * int(head_dim) * (s * (s + 1) // 2 + (int(seq_len) - s) * s)


def attention_flops_saved(spans: Sequence[int] | Tensor, max_span: int, seq_len: int) -> float:
    """Share of the attention MACs (:func:`attention_macs`) saved by heads with spans ``spans`` against heads that
    all use ``max_span``: ``1 - sum_h macs(span_h) / (h * macs(max_span))``. The head width cancels.

    Raises:
        ValueError: for no spans, or a span outside ``[1, max_span]``.
    """
    spans = [int(s) for s in (spans.tolist() if isinstance(spans, Tensor) else spans)]
    if not spans:
        raise ValueError("spans must hold one span per head, got none")
    if any(s < 1 or s > max_span for s in spans):
        raise ValueError(f"every span must lie in [1, max_span={max_span}], got {spans}")
    full = attention_macs(seq_len, max_span, 1) * len(spans)
    return 1.0 - sum(attention_macs(seq_len, s, 1) for s in spans) / full


class AdaptiveSpanAttention(nn.Module):
    """Multi-head causal self-attention whose heads learn their span (the paper's attention layer, simplified).

    Scores are ``q . k / sqrt(Dh) + b_h[t - s]`` with a learned relative-position bias ``b_h`` per head and distance
    (the paper uses Transformer-XL's relative position embeddings; a bias is the smallest stand-in), restricted to
    keys with ``0 <= t - s < S``. After the softmax, with ``adaptive=True``, the weights are multiplied by
    :func:`span_mask` with the head's span ``z_h = S * p_h`` and renormalised (:func:`apply_span_mask`). As in the
    paper's code the parameter ``p_h`` is a fraction of ``S``; call :meth:`clamp_` after each optimiser step to keep
    it in ``[0, 1]``.

    Args:
        dim: D.
        heads: h; must divide ``dim``.
        max_span: S, the longest context any head may use.
        ramp: R, the width of the mask's ramp (the paper uses 32 with S = 8192).
        adaptive: apply the span mask; False gives plain attention over the full span S (the baseline).
        init_span: initial ``p_h = z_h / S`` of every head (the paper's code starts from 0; see the notebook).

    Shape: ``(B, L, D) -> (B, L, D)``; with ``return_attention=True`` also the weights ``(B, h, L, L)``.
    """

    def __init__(self, dim: int, heads: int = 4, max_span: int = 32, ramp: float = 8.0, adaptive: bool = True,
                 init_span: float = 1.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        if int(max_span) != max_span or max_span < 1:
            raise ValueError(f"max_span must be a positive integer, got {max_span!r}")
        _check_ramp(ramp)
        if not 0.0 <= init_span <= 1.0:
            raise ValueError(f"init_span is a fraction of max_span and must lie in [0, 1], got {init_span}")
        self.heads, self.head_dim, self.max_span, self.ramp, self.adaptive = heads, dim // heads, int(max_span), \
            float(ramp), adaptive
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros(heads, self.max_span))  # b_h[distance]
        self.span_param = nn.Parameter(torch.full((heads,), float(init_span)), requires_grad=adaptive)

    @property
    def spans(self) -> Tensor:
        """``z_h = S * p_h`` in tokens, Tensor[h] (differentiable)."""
        return self.span_param * self.max_span

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep ``p_h`` in ``[0, 1]`` (call after each optimiser step, as the paper's code does)."""
        self.span_param.clamp_(0.0, 1.0)

    def forward(self, x: Tensor, return_attention: bool = False):
        check_tensor(x, "x")
        if x.dim() != 3 or x.shape[-1] != self.heads * self.head_dim:
            raise ValueError(f"x must have shape (B, L, {self.heads * self.head_dim}), got {tuple(x.shape)}")
        B, L, D = x.shape
        q, k, v = self.qkv(x).reshape(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x (B, h, L, Dh)
        pos = torch.arange(L, device=x.device)
        dist = pos[:, None] - pos[None, :]  # (L, L): t - s for query t (rows) and key s (columns)
        visible = (dist >= 0) & (dist < self.max_span)
        bias = self.rel_bias[:, dist.clamp(0, self.max_span - 1)]  # (h, L, L)
        scores = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5 + bias  # (B, h, L, L)
        attn = scores.masked_fill(~visible, float("-inf")).softmax(dim=-1)
        if self.adaptive:
            mask = span_mask(dist.to(x.dtype), self.spans[:, None, None], self.ramp)  # (h, L, L)
            attn = apply_span_mask(attn, mask)
        out = (attn @ v).transpose(1, 2).reshape(B, L, D)  # (B, h, L, Dh) -> (B, L, D)
        out = self.proj(out)
        return (out, attn) if return_attention else out


class SpanBlock(nn.Module):
    """Pre-norm transformer layer with :class:`AdaptiveSpanAttention`: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``.

    Shape: ``(B, L, D) -> (B, L, D)``.
    """

    def __init__(self, dim: int, heads: int, max_span: int, ramp: float, adaptive: bool, init_span: float,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = AdaptiveSpanAttention(dim, heads, max_span, ramp, adaptive, init_span)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SpanTransformer(nn.Module):
    """A tiny causal transformer over token sequences whose attention heads may learn their spans.

    Token embedding -> ``depth`` x :class:`SpanBlock` -> LayerNorm -> linear head at every position. Positions enter
    only through the attention's relative-position bias.

    Args:
        vocab: V, number of input tokens.
        num_classes: C, outputs per position.
        dim, heads, depth: D, h and the number of layers.
        max_span, ramp, adaptive, init_span: see :class:`AdaptiveSpanAttention`.

    Attributes: ``features`` (embedding + blocks) and ``head`` (norm + linear), for hooks.

    Shape: ``(B, L)`` int64 tokens in ``[0, V)`` -> ``(B, C, L)`` logits (class dimension second, as
    ``F.cross_entropy`` expects for sequences).
    """

    def __init__(self, vocab: int, num_classes: int, dim: int = 32, heads: int = 4, depth: int = 1,
                 max_span: int = 32, ramp: float = 8.0, adaptive: bool = True, init_span: float = 1.0) -> None:
        super().__init__()
        if vocab < 1 or num_classes < 1 or depth < 1:
            raise ValueError(f"vocab, num_classes and depth must be positive, got {vocab}, {num_classes}, {depth}")
        self.vocab = vocab
        self.features = nn.Sequential(nn.Embedding(vocab, dim),
                                      *[SpanBlock(dim, heads, max_span, ramp, adaptive, init_span)
                                        for _ in range(depth)])
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes))

    def attention_layers(self) -> list[AdaptiveSpanAttention]:
        """The model's attention layers, first to last."""
        return [m for m in self.modules() if isinstance(m, AdaptiveSpanAttention)]

    def clamp_(self) -> None:
        """Clamp every layer's span parameters to ``[0, 1]`` (call after each optimiser step)."""
        for layer in self.attention_layers():
            layer.clamp_()

    def forward(self, tokens: Tensor) -> Tensor:
        check_tensor(tokens, "tokens")
        if tokens.dim() != 2 or tokens.dtype != torch.int64:
            raise ValueError(f"tokens must be an int64 tensor of shape (B, L), got {tokens.dtype} "
                             f"{tuple(tokens.shape)}")
        return self.head(self.features(tokens)).transpose(1, 2)  # (B, L, D) -> (B, L, C) -> (B, C, L)


def span_penalty(model: nn.Module) -> Tensor:
    """The L1 span penalty: the mean span ``z`` (in tokens) over every head of every adaptive layer of ``model``.

    The paper adds ``lambda / M * sum_i z_i`` over its ``M`` heads to the loss; spans are non-negative (after
    :meth:`AdaptiveSpanAttention.clamp_`), so the sum is the L1 norm.

    Raises:
        ValueError: when ``model`` has no adaptive-span attention layer.
    """
    spans = [m.spans for m in model.modules() if isinstance(m, AdaptiveSpanAttention) and m.adaptive]
    if not spans:
        raise ValueError("model has no AdaptiveSpanAttention layer with adaptive=True, so it has no spans to penalise")
    return torch.cat(spans).mean()


def span_step_fn(lam: float) -> Callable[[nn.Module, Sequence[Tensor]], Mapping[str, Tensor]]:
    """A ``step_fn`` for :func:`cvcourse.train.fit` that trains a :class:`SpanTransformer` with the span penalty.

    Each step first clamps the span parameters to ``[0, 1]`` (so the forward pass, and the penalty, only ever see
    spans in ``[0, S]``: this is the paper's clamp after each optimiser step, moved to the start of the next step),
    then returns ``{"ce": cross-entropy, "span": lam * span_penalty(model)}``, which ``fit`` sums and records through
    ``on_step``. With ``lam = 0`` (or a model without adaptive layers) the penalty term is omitted.

    Raises:
        ValueError: for ``lam < 0``.
    """
    if lam < 0:
        raise ValueError(f"lam (the span penalty's weight) must be >= 0, got {lam}")

    def step(model: nn.Module, batch: Sequence[Tensor]) -> dict[str, Tensor]:
        tokens, targets = batch
        if hasattr(model, "clamp_"):
            model.clamp_()
        terms = {"ce": F.cross_entropy(model(tokens), targets, ignore_index=IGNORE_INDEX)}
        if lam > 0 and any(isinstance(m, AdaptiveSpanAttention) and m.adaptive for m in model.modules()):
            terms["span"] = lam * span_penalty(model)
        return terms

    return step


def two_delay_task(n: int, length: int = 64, vocab: int = 4, delays: Sequence[int] = (2, 24), seed: int = 0
                   ) -> torch.utils.data.TensorDataset:
    """Random token sequences whose label at ``t`` is the pair ``(x[t - d1], x[t - d2])``, coded ``V * x[t - d1] +
    x[t - d2]`` (``V ** 2`` classes); positions ``t < max(delays)`` get :data:`IGNORE_INDEX`.

    A head that copies the token ``d1`` back needs a span of about ``d1``, one that copies ``d2`` back about ``d2``.

    Returns:
        ``TensorDataset(tokens (n, L) int64, labels (n, L) int64)``; a pure function of the arguments.

    Raises:
        ValueError: for two delays that are not distinct integers in ``[1, length)``, or ``vocab < 2``.
    """
    delays = tuple(int(d) for d in delays)
    if len(delays) != 2 or delays[0] == delays[1] or not all(1 <= d < length for d in delays):
        raise ValueError(f"delays must be two distinct integers in [1, length={length}), got {delays}")
    if vocab < 2:
        raise ValueError(f"vocab must be at least 2, got {vocab}")
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (n, length), generator=g)
    y = torch.full_like(x, IGNORE_INDEX)
    d1, d2 = delays
    start = max(delays)
    y[:, start:] = vocab * x[:, start - d1:length - d1] + x[:, start - d2:length - d2]
    return torch.utils.data.TensorDataset(x, y)


def token_accuracy(logits: Tensor, targets: Tensor) -> float:
    """Accuracy of ``argmax`` over the positions whose target is not :data:`IGNORE_INDEX`.

    Args:
        logits (Tensor[B, C, L]), targets (Tensor[B, L]).
    """
    if logits.dim() != 3 or targets.shape != (logits.shape[0], logits.shape[2]):
        raise ValueError(f"logits must be (B, C, L) and targets (B, L); got {tuple(logits.shape)} and "
                         f"{tuple(targets.shape)}")
    keep = targets != IGNORE_INDEX
    if not bool(keep.any()):
        return float("nan")
    return (logits.argmax(1)[keep] == targets[keep]).float().mean().item()
