"""cvcourse.models.text_recognizer: shapes, the causal mask, teacher forcing, greedy decoding and attention maps."""

import pytest
import torch
from torch import nn

from cvcourse.data.words import CharVocab
from cvcourse.models.text_recognizer import (
    ColumnFeatures,
    TextRecognizer,
    causal_mask,
    recognize,
    teacher_forcing_loss,
)

V = len(CharVocab())


def _model(**kw):
    torch.manual_seed(0)  # pre-norm layers by default; the attention test also runs post-norm
    return TextRecognizer(V, dropout=0.0, **kw).eval()


@pytest.mark.parametrize("size", [1, 2, 5])
def test_causal_mask_matches_torch_reference(size):
    ref = nn.Transformer.generate_square_subsequent_mask(size)   # -inf above the diagonal, 0 elsewhere
    assert torch.equal(causal_mask(size), torch.isinf(ref))
    # hand case: query 1 may see keys 0 and 1, not 2
    if size == 5:
        assert causal_mask(size)[1].tolist() == [False, False, True, True, True]


def test_causal_mask_error():
    with pytest.raises(ValueError, match="size"):
        causal_mask(0)


def test_column_features_shape_and_errors():
    f = ColumnFeatures(dim=40, image_size=(32, 96))
    assert f(torch.rand(2, 3, 32, 96)).shape == (2, 24, 40)   # one token per 4 pixels of width
    with pytest.raises(ValueError, match="image_size"):
        f(torch.rand(2, 3, 32, 100))
    with pytest.raises(ValueError, match="divisible"):
        ColumnFeatures(image_size=(30, 96))
    assert ColumnFeatures(dim=8, image_size=(32, 64), column_width=8)(torch.rand(1, 3, 32, 64)).shape == (1, 8, 8)
    with pytest.raises(ValueError, match="column_width"):
        ColumnFeatures(column_width=5)


def test_column_tokens_see_their_own_strip_of_the_image():
    # changing the right half of the image leaves the leftmost column tokens unchanged (receptive field ~ 15 px)
    f = ColumnFeatures(image_size=(32, 64)).eval()
    x = torch.rand(1, 3, 32, 64)
    y = x.clone()
    y[..., 40:] = torch.rand(1, 3, 32, 24)
    a, b = f(x), f(y)
    torch.testing.assert_close(a[:, :6], b[:, :6])   # columns 0..5 cover pixels 0..23 (+ receptive field < 40)
    assert (a[:, 12:] - b[:, 12:]).abs().max() > 1e-3


def test_teacher_forcing_output_shape_and_loss():
    model = _model()
    images = torch.rand(3, 3, 32, 96)
    tokens = CharVocab().encode_batch(["cat", "a", "zebra"], length=8)
    logits = model(images, tokens[:, :-1])
    assert logits.shape == (3, 7, V)
    loss = teacher_forcing_loss(model, (images, tokens))
    # the same loss by hand: mean cross-entropy over the non-pad targets only
    targets = tokens[:, 1:]
    keep = targets != 0
    by_hand = -torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0][keep].mean()
    torch.testing.assert_close(loss, by_hand)


def test_decoder_is_causal():
    # changing later input tokens must not change the logits of earlier positions; it does change its own
    model = _model()
    images = torch.rand(2, 3, 32, 96)
    a = torch.tensor([[1, 5, 6, 7, 8], [1, 9, 10, 2, 0]])
    b = a.clone()
    b[:, 3:] = torch.tensor([[20, 21], [22, 23]])
    la, lb = model(images, a), model(images, b)
    torch.testing.assert_close(la[:, :3], lb[:, :3])
    assert (la[:, 3:] - lb[:, 3:]).abs().max() > 1e-3


def test_decode_errors():
    model = _model(max_len=4)
    memory = model.encode(torch.rand(2, 3, 32, 96))
    with pytest.raises(ValueError, match="max_len"):
        model.decode(memory, torch.ones(2, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids"):
        model.decode(memory, torch.full((2, 3), V, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        model.decode(memory, torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len"):
        model.greedy_decode(torch.rand(1, 3, 32, 96), max_len=9)
    with pytest.raises(ValueError, match="num_classes"):
        TextRecognizer(2)


class _Scripted(TextRecognizer):
    """A recognizer whose decoder writes a fixed script: word b emits ``script[b][t]`` at step t."""

    def __init__(self, script):
        super().__init__(V, dropout=0.0, max_len=6)
        self.script, self.calls = script, 0

    def decode(self, memory, tokens):
        self.calls += 1
        t = tokens.shape[1]
        logits = torch.zeros(tokens.shape[0], t, V)
        for b in range(tokens.shape[0]):
            row = self.script[b % len(self.script)]
            logits[b, -1, row[min(t - 1, len(row) - 1)]] = 1.0
        return logits


def test_greedy_decoding_stops_at_end_token_and_pads_after_it():
    v = CharVocab()
    c, a, t = v.stoi["c"], v.stoi["a"], v.stoi["t"]
    model = _Scripted([[c, a, t, 2, c, c, c], [a, 2, a, a, a, a, a]]).eval()
    ids = model.greedy_decode(torch.rand(2, 3, 32, 96))
    # word 0 ends at step 4 (c, a, t, eos): the loop stops there instead of running max_len + 1 = 7 steps
    assert model.calls == 4
    assert ids.tolist() == [[1, c, a, t, 2], [1, a, 2, 0, 0]]
    assert v.decode_batch(ids) == ["cat", "a"]


def test_greedy_decoding_runs_at_most_max_len_plus_one_steps():
    model = _Scripted([[5] * 10]).eval()  # never emits eos
    ids = model.greedy_decode(torch.rand(1, 3, 32, 96), max_len=3)
    assert ids.shape == (1, 5) and model.calls == 4


@pytest.mark.parametrize("norm_first", [True, False])
def test_greedy_decode_matches_teacher_forcing_on_its_own_output_and_returns_attention(norm_first):
    model = _model(num_decoder_layers=2, norm_first=norm_first)
    images = torch.rand(3, 3, 32, 96)
    ids, attention = model.greedy_decode(images, return_attention=True)
    assert ids[:, 0].eq(1).all() and ids.shape[1] <= model.max_len + 2
    # feeding the decoded prefix back with teacher forcing gives the same argmax at every step
    logits = model(images, ids[:, :-1])
    written = ids[:, 1:]
    alive = torch.ones_like(written, dtype=torch.bool)
    alive[:, 1:] = (written[:, :-1] != 2).cumprod(1).bool()
    assert torch.equal(logits.argmax(-1)[alive], written[alive])
    # attention: one row per written token over the 24 columns, each a distribution
    assert attention.shape == (3, ids.shape[1] - 1, 24)
    torch.testing.assert_close(attention.sum(-1), torch.ones(attention.shape[:2]))
    # and it is the last decoder layer's cross-attention: recompute it with the layer's own module
    layer = model.transformer.decoder.layers[-1]
    memory = model.encode(images)
    y = model.embed(ids[:, :-1]) + model.pos_text[:, :ids.shape[1] - 1]
    for earlier in model.transformer.decoder.layers[:-1]:
        y = earlier(y, memory, tgt_mask=causal_mask(y.shape[1]))
    mask = causal_mask(y.shape[1])
    if layer.norm_first:   # x + SA(LN1(x)), then cross-attention reads LN2(x)
        x = layer.norm2(y + layer._sa_block(layer.norm1(y), mask, None))
    else:                  # LN1(x + SA(x))
        x = layer.norm1(y + layer._sa_block(y, mask, None))
    _, ref = layer.multihead_attn(x, memory, memory, need_weights=True)
    torch.testing.assert_close(attention, ref)
    # without return_attention nothing is kept and plain calls are unchanged
    assert torch.equal(model.greedy_decode(images), ids)


def test_recognize_returns_strings_in_batches():
    model = _Scripted([[CharVocab().stoi["o"], 2]]).eval()
    out = recognize(model, torch.rand(5, 3, 32, 96), CharVocab(), batch_size=2)
    assert out == ["o"] * 5
