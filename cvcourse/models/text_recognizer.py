"""Scene text recognition with a Transformer (Feng et al., 2020), paper notebook
``lectures/papers/scene_text_transformer.ipynb`` (extends lecture 5, vision transformers).

The paper crops a word, resizes it to 96 x 96, runs the first stages of a ResNet-101 (stride 16, a 6 x 6 x 1024
map), reshapes the map to a sequence of 36 vectors, reduces them to 256 channels with a fully connected layer and
feeds them to a Transformer encoder-decoder (4 + 4 layers, learned position embeddings) that writes the word one
character at a time. Here the same pipeline is built small:

- :class:`ColumnFeatures`   a three-stage CNN; the ``(C, h, w)`` map is cut into its ``w`` columns, each flattened
  and projected to ``D`` (the paper's "FC to 256 channels"): an image becomes a left-to-right sequence
- :class:`TextRecognizer`   column features + learned position embeddings -> ``torch.nn.Transformer`` -> logits;
  teacher forcing in :meth:`~TextRecognizer.forward`, greedy decoding in :meth:`~TextRecognizer.greedy_decode`,
  which also returns the last decoder layer's cross-attention (which image columns each character looked at)
- :func:`causal_mask`       the decoder's "no peeking at later characters" mask
- :func:`teacher_forcing_loss`  the training loss, usable as ``cvcourse.train.fit(step_fn=...)``
- :func:`recognize`         images -> strings, batched

Token ids follow :class:`cvcourse.data.words.CharVocab`: ``pad = 0``, ``sos = 1``, ``eos = 2``.

Letter legend: B batch, H, W image size, C CNN channels, h, w CNN map size, L = w image tokens (columns),
D model width, T token sequence length, V vocabulary size.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse._checks import check_tensor
from cvcourse.models.blocks import ConvBNAct

__all__ = ["causal_mask", "ColumnFeatures", "TextRecognizer", "teacher_forcing_loss", "recognize"]

PAD, SOS, EOS = 0, 1, 2


def causal_mask(size: int, device: torch.device | str | None = None) -> Tensor:
    """``Tensor[T, T]`` of bool, True where attention is forbidden: query ``i`` may see keys ``j <= i`` only.

    The boolean form of ``torch.nn.Transformer.generate_square_subsequent_mask`` (which gives ``-inf`` where this
    gives True, ``0`` elsewhere); PyTorch attention accepts either.

    Raises:
        ValueError: for ``size < 1``.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return torch.ones(size, size, dtype=torch.bool, device=device).triu(1)


class ColumnFeatures(nn.Module):
    """Image -> a left-to-right sequence of column vectors (the paper's ResNet features + FC, made small).

    Three ``ConvBNAct`` stages (strides 2, 2, and 1 or 2) and a height-only max-pool: the width shrinks
    ``column_width`` (4 or 8) times, the height ``2 * column_width`` times. Each of the ``w = W / column_width``
    columns of the ``(C, h, w)`` map is flattened (``C * h`` numbers) and projected to ``D`` by a linear layer, so one
    token covers a ``column_width``-pixel-wide vertical strip of the image (and sees a wider one through the
    receptive field).

    Args:
        in_channels: image channels.
        widths: channels of the three stages.
        dim: D.
        image_size: ``(H, W)``; ``H`` divisible by ``2 * column_width``, ``W`` by ``column_width``.
        column_width: 4 or 8 pixels per token.

    Shape: ``(B, 3, H, W) -> (B, L, D)`` with ``L = W / column_width``.
    """

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = (16, 32, 64), dim: int = 64,
                 image_size: tuple[int, int] = (32, 96), column_width: int = 4) -> None:
        super().__init__()
        if column_width not in (4, 8):
            raise ValueError(f"column_width must be 4 or 8, got {column_width}")
        height, width = image_size
        if height % (2 * column_width) or width % column_width:
            raise ValueError(f"image_size must be (H, W) with H divisible by {2 * column_width} and W by "
                             f"{column_width} (column_width={column_width}), got {tuple(image_size)}")
        if len(widths) != 3:
            raise ValueError(f"widths must give the channels of 3 stages, got {widths}")
        c1, c2, c3 = widths
        self.image_size, self.column_width = (height, width), column_width
        self.body = nn.Sequential(
            ConvBNAct(in_channels, c1, 3, stride=2),
            ConvBNAct(c1, c2, 3, stride=2),
            ConvBNAct(c2, c3, 3, stride=column_width // 4),
            nn.MaxPool2d((2, 1)),  # halve the height only: keep the horizontal resolution for the characters
        )
        self.num_columns = width // column_width
        self.proj = nn.Linear(c3 * (height // (2 * column_width)), dim)

    def forward(self, x: Tensor) -> Tensor:
        check_tensor(x, "images")
        if x.dim() != 4 or tuple(x.shape[-2:]) != self.image_size:
            raise ValueError(f"images must have shape (B, C, {self.image_size[0]}, {self.image_size[1]}), got "
                             f"{tuple(x.shape)}; render or resize them to the model's image_size")
        f = self.body(x)                                   # (B, 3, H, W) -> (B, C, h, w)
        f = f.permute(0, 3, 1, 2).flatten(2)              # (B, C, h, w) -> (B, w, C * h)
        return self.proj(f)                                # (B, L, C * h) -> (B, L, D)


class TextRecognizer(nn.Module):
    """CNN columns + learned position embeddings + a small ``torch.nn.Transformer`` that writes the word.

    The encoder runs self-attention over the ``L`` image columns; the decoder reads the characters so far (each a
    learned embedding plus a learned position embedding), attends causally to them and to the encoded image
    (cross-attention), and predicts the next character. Layers are pre-norm by default (``norm_first``).

    Deviation from ViT's initialisation (lecture 5): both position embeddings start as ``N(0, 1)``, the scale of the
    token embeddings, not ``N(0, 0.02)``. Before the decoder can read the k-th character it must learn *where* to
    look, and only the position embeddings tell it; at 0.02 they are drowned by the content after the layer norms.
    In our short CPU runs (``scene_text_transformer.ipynb``'s fast settings) this, with a learning rate of 3e-3
    instead of 2e-3, roughly doubled the held-out character accuracy reached in the same number of steps.

    Args:
        num_classes: V, the size of the token vocabulary (``len(CharVocab())``), special tokens included.
        dim: D (the paper: 256).
        nhead: attention heads (the paper: not stated in the digest; 8 in the original Transformer).
        num_encoder_layers, num_decoder_layers: the paper uses 4 and 4.
        dim_feedforward: width of each layer's MLP.
        dropout: dropout inside the Transformer layers.
        max_len: the longest word the decoder can write; token sequences have at most ``max_len + 2`` entries.
        image_size: ``(H, W)`` of the input images.
        widths: CNN stage widths (:class:`ColumnFeatures`).
        column_width: pixels of image width per image token, 4 or 8 (:class:`ColumnFeatures`).
        norm_first: pre-norm layers (``x + f(LN(x))``, as in ViT, lecture 5; default) or the original post-norm
            ``LN(x + f(x))`` (False); passed to ``nn.Transformer``. Pre-norm trained faster in our short runs.
        pad_id, sos_id, eos_id: the special token ids (:class:`cvcourse.data.words.CharVocab`'s by default).

    Named parts: ``features`` (:class:`ColumnFeatures`), ``transformer`` (``nn.Transformer``), ``head`` (the
    ``D -> V`` classifier), ``pos_image`` / ``pos_text`` (the learned position embeddings).
    """

    def __init__(self, num_classes: int, dim: int = 64, nhead: int = 4, num_encoder_layers: int = 1,
                 num_decoder_layers: int = 1, dim_feedforward: int = 128, dropout: float = 0.1, max_len: int = 6,
                 image_size: tuple[int, int] = (32, 96), widths: Sequence[int] = (16, 32, 64),
                 column_width: int = 4, norm_first: bool = True, pad_id: int = PAD, sos_id: int = SOS, eos_id: int = EOS) -> None:
        super().__init__()
        if num_classes <= max(pad_id, sos_id, eos_id):
            raise ValueError(f"num_classes={num_classes} must exceed the special token ids "
                             f"({pad_id}, {sos_id}, {eos_id})")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.num_classes, self.max_len = num_classes, max_len
        self.pad_id, self.sos_id, self.eos_id = pad_id, sos_id, eos_id
        self.features = ColumnFeatures(3, widths, dim, image_size, column_width)
        self.pos_image = nn.Parameter(torch.zeros(1, self.features.num_columns, dim))
        self.embed = nn.Embedding(num_classes, dim)
        self.pos_text = nn.Parameter(torch.zeros(1, max_len + 2, dim))
        nn.init.normal_(self.pos_image, std=1.0)
        nn.init.normal_(self.pos_text, std=1.0)
        with warnings.catch_warnings():  # torch notes that pre-norm layers skip its nested-tensor fast path
            warnings.filterwarnings("ignore", message="enable_nested_tensor is True")
            self.transformer = nn.Transformer(dim, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward,
                                              dropout, batch_first=True, norm_first=norm_first)
        self.head = nn.Linear(dim, num_classes)
        self._attention: Tensor | None = None
        cross = self.transformer.decoder.layers[-1].multihead_attn
        cross.register_forward_pre_hook(self._ask_for_weights, with_kwargs=True)
        cross.register_forward_hook(self._keep_weights)

    # torch's decoder layer calls its cross-attention with need_weights=False; when attention is wanted we flip the
    # flag for the last layer and keep the head-averaged weights it then returns, (B, T, L).
    def _ask_for_weights(self, module, args, kwargs):
        if self._attention is not None:
            kwargs = {**kwargs, "need_weights": True, "average_attn_weights": True}
        return args, kwargs

    def _keep_weights(self, module, args, output):
        if self._attention is not None:
            self._attention = output[1]

    def encode(self, images: Tensor) -> Tensor:
        """The encoded image ("memory"): ``(B, 3, H, W) -> (B, L, D)``."""
        x = self.features(images) + self.pos_image          # (B, L, D)
        return self.transformer.encoder(x)

    def decode(self, memory: Tensor, tokens: Tensor) -> Tensor:
        """Next-token logits for every prefix: ``memory (B, L, D)``, ``tokens (B, T)`` -> ``(B, T, V)``.

        Position ``t`` sees ``tokens[:, :t + 1]`` only (:func:`causal_mask`), so ``logits[:, t]`` predicts token
        ``t + 1``.
        """
        check_tensor(tokens, "tokens")
        if tokens.dim() != 2 or tokens.shape[0] != memory.shape[0]:
            raise ValueError(f"tokens must have shape (B, T) with B = {memory.shape[0]}, got {tuple(tokens.shape)}")
        t = tokens.shape[1]
        if t > self.pos_text.shape[1]:
            raise ValueError(f"tokens has T = {t} positions, the model allows max_len + 2 = {self.pos_text.shape[1]}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.num_classes):
            raise ValueError(f"token ids must be in 0 .. {self.num_classes - 1}, got {int(tokens.min())} .. "
                             f"{int(tokens.max())}")
        y = self.embed(tokens) + self.pos_text[:, :t]       # (B, T, D)
        y = self.transformer.decoder(y, memory, tgt_mask=causal_mask(t, tokens.device))
        return self.head(y)                                  # (B, T, D) -> (B, T, V)

    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        """Teacher forcing: logits ``(B, T, V)`` for the given (true) input tokens ``(B, T)``, starting with ``<sos>``.

        Train with ``tokens = target[:, :-1]`` as input and ``target[:, 1:]`` as labels (:func:`teacher_forcing_loss`).
        """
        return self.decode(self.encode(images), tokens)

    @torch.no_grad()
    def greedy_decode(self, images: Tensor, max_len: int | None = None,
                      return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Write each word one token at a time, always taking the most likely next token.

        Starts from ``<sos>`` and stops when every word has produced ``<eos>`` (or after ``max_len + 1`` steps);
        after its ``<eos>`` a word is padded with ``<pad>``.

        Args:
            images (Tensor[B, 3, H, W]): word images.
            max_len: the longest word to write (default: the model's ``max_len``).
            return_attention: also return the last decoder layer's cross-attention, averaged over heads.

        Returns:
            ids (Tensor[B, T']): ``[sos, c1, ..., eos, pad, ...]`` with ``T' <= max_len + 2``
            (``CharVocab.decode_batch`` reads them); with ``return_attention`` also
            attention (Tensor[B, T' - 1, L]): row ``t`` is where the image was looked at to write ``ids[:, t + 1]``
            (each row sums to 1).
        """
        max_len = self.max_len if max_len is None else max_len
        if not 1 <= max_len <= self.max_len:
            raise ValueError(f"max_len must be in 1 .. {self.max_len}, got {max_len}")
        memory = self.encode(images)
        b = memory.shape[0]
        ids = torch.full((b, 1), self.sos_id, dtype=torch.long, device=memory.device)
        done = torch.zeros(b, dtype=torch.bool, device=memory.device)
        attention = None
        for _ in range(max_len + 1):
            if return_attention:
                self._attention = torch.empty(0)  # a flag for the hooks
            logits = self.decode(memory, ids)
            attention, self._attention = self._attention, None
            nxt = logits[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            done |= nxt == self.eos_id
            if bool(done.all()):
                break
        if return_attention:
            return ids, attention
        return ids


def teacher_forcing_loss(model: TextRecognizer, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Cross-entropy of next-token prediction with the true previous tokens as input, ``<pad>`` ignored.

    ``batch = (images (B, 3, H, W), tokens (B, T))`` as :class:`cvcourse.data.words.SyntheticWords` gives; works as
    ``cvcourse.train.fit(model, data, step_fn=teacher_forcing_loss)``.
    """
    images, tokens = batch
    logits = model(images, tokens[:, :-1])                  # (B, T - 1, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                           ignore_index=model.pad_id)


def recognize(model: TextRecognizer, images: Tensor, vocab, batch_size: int = 256) -> list[str]:
    """Greedy-decoded strings for ``images (Tensor[N, 3, H, W])``, in batches; ``vocab`` decodes the ids.

    The model is put in eval mode and run on the device of its parameters.
    """
    check_tensor(images, "images")
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    for i in range(0, len(images), batch_size):
        out += vocab.decode_batch(model.greedy_decode(images[i:i + batch_size].to(device)).cpu())
    return out
