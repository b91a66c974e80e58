"""cvcourse.models.attention_span: the soft span mask, its gradient, renormalisation, the FLOPs formula, errors."""

import pytest
import torch
import torch.nn.functional as F

from cvcourse.models.attention_span import (IGNORE_INDEX, AdaptiveSpanAttention, SpanTransformer, apply_span_mask,
                                            attention_flops_saved, attention_macs, effective_span, span_mask,
                                            span_penalty, span_step_fn, token_accuracy, two_delay_task)


def test_span_mask_at_hand_checked_distances():
    # z = 4, R = 2: 1 for x <= 4, (2 + 4 - x) / 2 on the ramp: x = 5 -> 0.5, x = 4.5 -> 0.75, 0 from x = 6 on
    x = torch.tensor([0.0, 3.0, 4.0, 4.5, 5.0, 5.5, 6.0, 9.0])
    expected = torch.tensor([1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0])
    torch.testing.assert_close(span_mask(x, 4.0, 2.0), expected)
    # broadcasting: one span per head against a (L,) row of distances
    out = span_mask(torch.arange(4.0), torch.tensor([[0.0], [2.0]]), 1.0)
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]]))


def test_gradient_wrt_span_is_one_over_r_on_the_ramp_and_zero_elsewhere():
    z = torch.tensor(4.0, requires_grad=True)
    x = torch.tensor([1.0, 3.9, 4.3, 5.0, 5.7, 6.4, 10.0])  # flat, flat, ramp, ramp, ramp, zero, zero (R = 2)
    grads = [torch.autograd.grad(span_mask(xi, z, 2.0), z)[0].item() for xi in x]
    assert grads == pytest.approx([0.0, 0.0, 0.5, 0.5, 0.5, 0.0, 0.0])


def test_apply_span_mask_renormalises_each_row():
    attn = torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]])
    mask = torch.tensor([1.0, 0.5, 0.0])
    # row 0: [0.5, 0.125, 0] / 0.625 = [0.8, 0.2, 0]; row 1: [0.2, 0.15, 0] / 0.35
    expected = torch.tensor([[0.8, 0.2, 0.0], [0.2 / 0.35, 0.15 / 0.35, 0.0]])
    torch.testing.assert_close(apply_span_mask(attn, mask), expected)


def test_attention_layer_rows_sum_to_one_are_causal_and_respect_the_span():
    torch.manual_seed(0)
    layer = AdaptiveSpanAttention(16, heads=2, max_span=6, ramp=2.0, init_span=0.5)  # z = 3, keys at distance < 5
    x = torch.randn(3, 10, 16)
    out, attn = layer(x, return_attention=True)
    assert out.shape == (3, 10, 16) and attn.shape == (3, 2, 10, 10)
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 2, 10))
    t, s = torch.meshgrid(torch.arange(10), torch.arange(10), indexing="ij")
    assert attn[..., s > t].abs().max() == 0          # causal
    assert attn[..., t - s >= 5].abs().max() == 0     # beyond z + R = 5 the mask is 0
    assert attn[..., t - s == 4].min() > 0            # on the ramp (mask 0.5) still visible
    full = AdaptiveSpanAttention(16, heads=2, max_span=6, adaptive=False)
    _, a_full = full(x, return_attention=True)
    assert a_full[..., t - s >= 6].abs().max() == 0 and a_full[..., t - s == 5].min() > 0  # only S limits it


def test_span_gradient_through_the_layer_and_penalty():
    torch.manual_seed(0)
    layer = AdaptiveSpanAttention(8, heads=2, max_span=8, ramp=2.0, init_span=0.25)
    layer(torch.randn(2, 12, 8)).pow(2).sum().backward()
    assert layer.span_param.grad.abs().min() > 0
    model = SpanTransformer(4, 16, dim=8, heads=2, depth=2, max_span=8, init_span=0.5)
    torch.testing.assert_close(span_penalty(model), torch.tensor(4.0))  # every head at 0.5 * 8 tokens
    with pytest.raises(ValueError, match="no AdaptiveSpanAttention"):
        span_penalty(SpanTransformer(4, 16, dim=8, heads=2, adaptive=False))


def test_effective_span_and_flops_formula():
    # ceil(z + R) keys, clipped to [1, S]
    assert effective_span(torch.tensor([0.0, 3.2, 30.0]), 8.0, 32).tolist() == [8, 12, 32]
    # L = 5, span 2: the queries see 1, 2, 2, 2, 2 keys -> 9 keys, 2 * Dh MACs each
    assert attention_macs(5, 2, 3) == 2 * 3 * 9
    assert attention_macs(5, 10, 1) == 2 * 15  # span beyond L: the full causal triangle, 1 + ... + 5
    # by brute force over a (L, L) mask
    L, s = 11, 4
    t, k = torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")
    assert attention_macs(L, s, 1) == 2 * int(((t - k >= 0) & (t - k < s)).sum())
    # two heads, one at the full span, one at half of it, L = S: 1 - (S(S+1)/2 + ...) / (2 * S(S+1)/2)
    full, half = attention_macs(8, 8, 1), attention_macs(8, 4, 1)
    assert attention_flops_saved([8, 4], 8, 8) == pytest.approx(1 - (full + half) / (2 * full))
    assert attention_flops_saved([8, 8], 8, 8) == 0.0


def test_two_delay_task_labels_and_token_accuracy():
    data = two_delay_task(5, length=30, vocab=4, delays=(2, 24), seed=3)
    x, y = data.tensors
    assert (y[:, :24] == IGNORE_INDEX).all()
    torch.testing.assert_close(y[:, 27], 4 * x[:, 25] + x[:, 3])
    logits = F.one_hot(y.clamp(min=0), 16).float().transpose(1, 2)  # (B, C, L), right on every labelled position
    assert token_accuracy(logits, y) == 1.0
    model = SpanTransformer(4, 16, dim=8, heads=2, max_span=8)
    assert model(x).shape == (5, 16, 30)
    terms = span_step_fn(0.1)(model, (x, y))
    assert set(terms) == {"ce", "span"}


def test_errors():
    with pytest.raises(ValueError, match="ramp"):
        span_mask(torch.arange(3.0), 1.0, 0.0)
    with pytest.raises(ValueError, match="positive integer"):
        attention_macs(0, 4, 8)
    with pytest.raises(ValueError, match=r"\[1, max_span"):
        attention_flops_saved([40], 32, 64)
    with pytest.raises(ValueError, match="delays"):
        two_delay_task(3, length=10, delays=(2, 24))
    with pytest.raises(ValueError, match="heads"):
        AdaptiveSpanAttention(10, heads=3)
    with pytest.raises(ValueError, match="init_span"):
        AdaptiveSpanAttention(8, heads=2, init_span=2.0)
    with pytest.raises(ValueError, match="int64"):
        SpanTransformer(4, 16, dim=8, heads=2)(torch.rand(2, 5))
    with pytest.raises(ValueError, match="lam"):
        span_step_fn(-1.0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        span_mask([1.0, 2.0], 1.0, 1.0)
