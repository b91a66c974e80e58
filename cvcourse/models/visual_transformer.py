"""Visual Transformers with visual tokens (Wu et al., 2020), lecture 5.

Instead of convolving every pixel, summarise a feature map in a handful of *visual tokens*, let a
transformer relate those few tokens, and (for dense tasks) project them back onto the pixels:

- :class:`FilterTokenizer`     ``A = softmax_HW(X W_A)`` (one spatial attention map per token),
                               ``T = A^T (X W_V)``: L tokens, each a weighted average of pixel features
- :class:`RecurrentTokenizer`  the same, but the token queries come from the previous layer's tokens
                               (``W_R = T_in W_TR``): dynamic tokenisation
- position encoding            each token's spatial attention, pooled to a fixed grid and projected, is
                               concatenated to it (``position_channels``), so tokens know *where* they looked
- :class:`TokenTransformer`    self-attention among the L tokens and a 2-layer MLP, both residual
- :class:`Projector`           ``X_out = X + softmax_L((X W_Q)(T W_K)^T) (T W_V)``: tokens back to pixels
- :class:`VisualTransformer`   tokenizer -> transformer -> projector, one layer of the paper
- :class:`VisualTokenHead`     visual-transformer layers and a classifier on frozen features (lecture 5)
- :class:`VTResNet`            ResNet-18 stem and stages 1-4 (``conv1`` .. ``layer3``), the last stage
                               (``layer4``) replaced by visual-transformer layers and a head on the tokens

Letter legend: B batch, C feature-map channels, H, W feature-map size, L number of visual tokens,
Ct token channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FilterTokenizer", "RecurrentTokenizer", "TokenTransformer", "Projector", "VisualTransformer",
           "VisualTokenHead", "VTResNet"]


def _flatten(x: Tensor) -> Tensor:
    if x.dim() != 4:
        raise ValueError(f"feature map must have shape (B, C, H, W), got {tuple(x.shape)}")
    return x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, HW, C)


class FilterTokenizer(nn.Module):
    """Filter-based tokenizer: L learned filters each pick a soft spatial group of pixels.

    Args:
        channels: C of the feature map.
        num_tokens: L.
        token_channels: Ct.
        position_channels: Cp; with Cp > 0 the paper's position encoding: each token's attention map,
            average-pooled to ``position_grid`` x ``position_grid``, flattened and linearly projected to Cp
            channels, is concatenated to the ``Ct - Cp`` value channels (0: no position encoding).
        position_grid: the fixed grid of the position encoding (7 in the paper for 14 x 14 maps).

    Shape: ``(B, C, H, W) -> (B, L, Ct)``; ``forward(..., return_attention=True)`` also gives the spatial
    attention ``(B, L, H, W)`` (each token's map sums to 1).
    """

    def __init__(self, channels: int, num_tokens: int = 8, token_channels: int = 1024, position_channels: int = 0,
                 position_grid: int = 7) -> None:
        super().__init__()
        if not 0 <= position_channels < token_channels:
            raise ValueError(f"position_channels must be in [0, token_channels={token_channels}), got {position_channels}")
        self.attn = nn.Linear(channels, num_tokens, bias=False)  # W_A
        self.value = nn.Linear(channels, token_channels - position_channels, bias=False)  # W_V
        self.position_grid = position_grid
        self.position = (nn.Linear(position_grid * position_grid, position_channels, bias=False)
                         if position_channels else None)  # W_{A -> P}

    def _tokens(self, x: Tensor, logits: Tensor, return_attention: bool):
        B, _, H, W = x.shape
        a = logits.softmax(dim=1)  # (B, HW, L), softmax over pixels
        tokens = a.transpose(1, 2) @ self.value(_flatten(x))  # (B, L, HW) @ (B, HW, Ct - Cp) -> (B, L, Ct - Cp)
        maps = a.transpose(1, 2).reshape(B, -1, H, W)  # (B, HW, L) -> (B, L, H, W)
        if self.position is not None:
            g = self.position_grid
            pooled = F.adaptive_avg_pool2d(maps, (g, g)).flatten(2)  # (B, L, H, W) -> (B, L, g * g)
            tokens = torch.cat([tokens, self.position(pooled)], dim=-1)  # -> (B, L, Ct)
        if return_attention:
            return tokens, maps
        return tokens

    def forward(self, x: Tensor, return_attention: bool = False):
        return self._tokens(x, self.attn(_flatten(x)), return_attention)


class RecurrentTokenizer(FilterTokenizer):
    """Recurrent tokenizer: the L filters are computed from the previous tokens, ``W_R = T_in W_TR``, so
    the grouping adapts to the image (the paper's dynamic tokenisation).

    Shape: ``x (B, C, H, W)``, ``tokens_in (B, L, Ct) -> (B, L, Ct)``.
    """

    def __init__(self, channels: int, token_channels: int = 1024, position_channels: int = 0,
                 position_grid: int = 7) -> None:
        super().__init__(channels, 1, token_channels, position_channels, position_grid)
        del self.attn
        self.token_to_filter = nn.Linear(token_channels, channels, bias=False)  # W_TR

    def forward(self, x: Tensor, tokens_in: Tensor, return_attention: bool = False):
        filters = self.token_to_filter(tokens_in)  # (B, L, Ct) -> (B, L, C)
        logits = _flatten(x) @ filters.transpose(1, 2)  # (B, HW, C) @ (B, C, L) -> (B, HW, L)
        return self._tokens(x, logits, return_attention)


class TokenTransformer(nn.Module):
    """The transformer over visual tokens, as in the paper: ``T' = T + softmax((T K)(T Q)^T / sqrt(d)) T``,
    ``T_out = T' + ReLU(T' F1) F2``.

    Attention values are the tokens themselves (no value projection); keys and queries use ``Ct / 2``
    channels as in the paper's pseudo-code. We add the usual ``1 / sqrt(d)`` scaling and LayerNorms before
    each part for stable training (a deviation from the paper).

    Shape: ``(B, L, Ct) -> (B, L, Ct)``.
    """

    def __init__(self, token_channels: int = 1024, mlp_ratio: float = 1.0) -> None:
        super().__init__()
        d = max(1, token_channels // 2)
        self.norm1 = nn.LayerNorm(token_channels)
        self.key = nn.Linear(token_channels, d, bias=False)
        self.query = nn.Linear(token_channels, d, bias=False)
        self.norm2 = nn.LayerNorm(token_channels)
        hidden = int(token_channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(token_channels, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, token_channels))
        self.scale = d ** -0.5

    def forward(self, tokens: Tensor) -> Tensor:
        t = self.norm1(tokens)
        attn = ((self.key(t) @ self.query(t).transpose(1, 2)) * self.scale).softmax(dim=-1)  # (B, L, L)
        tokens = tokens + attn @ t
        return tokens + self.mlp(self.norm2(tokens))


class Projector(nn.Module):
    """Fuse tokens back into the feature map: every pixel attends over the L tokens.

    ``X_out = X + softmax_L((X W_Q)(T W_K)^T) (T W_V)``.

    Shape: ``x (B, C, H, W)``, ``tokens (B, L, Ct) -> (B, C, H, W)``.
    """

    def __init__(self, channels: int, token_channels: int = 1024) -> None:
        super().__init__()
        self.query = nn.Linear(channels, token_channels, bias=False)
        self.key = nn.Linear(token_channels, token_channels, bias=False)
        self.value = nn.Linear(token_channels, channels, bias=False)
        self.scale = token_channels ** -0.5

    def forward(self, x: Tensor, tokens: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q = self.query(_flatten(x))  # (B, HW, Ct)
        attn = ((q @ self.key(tokens).transpose(1, 2)) * self.scale).softmax(dim=-1)  # (B, HW, L)
        out = attn @ self.value(tokens)  # (B, HW, C)
        return x + out.transpose(1, 2).reshape(B, C, H, W)  # (B, HW, C) -> (B, C, H, W)


class VisualTransformer(nn.Module):
    """One visual-transformer layer: tokenizer -> :class:`TokenTransformer` -> optional :class:`Projector`.

    Args:
        channels: C.
        num_tokens: L.
        token_channels: Ct.
        recurrent: use a :class:`RecurrentTokenizer` (needs the previous layer's tokens) instead of a
            :class:`FilterTokenizer`.
        project: fuse the tokens back into the feature map (needed by every layer but the last one in
            classification).
        position_channels: Cp of the tokenizer's position encoding (0: none); see :class:`FilterTokenizer`.

    Shape: ``x (B, C, H, W)`` [, ``tokens_in (B, L, Ct)``] -> ``(x_out (B, C, H, W) or x, tokens (B, L, Ct))``.
    """

    def __init__(self, channels: int, num_tokens: int = 8, token_channels: int = 1024, recurrent: bool = False,
                 project: bool = True, position_channels: int = 0) -> None:
        super().__init__()
        self.tokenizer = (RecurrentTokenizer(channels, token_channels, position_channels) if recurrent
                          else FilterTokenizer(channels, num_tokens, token_channels, position_channels))
        self.transformer = TokenTransformer(token_channels)
        self.projector = Projector(channels, token_channels) if project else None
        self.recurrent = recurrent

    def forward(self, x: Tensor, tokens_in: Tensor | None = None, return_attention: bool = False):
        """``(x_out, tokens)``, and the tokenizer's attention ``(B, L, H, W)`` with ``return_attention``."""
        if self.recurrent:
            if tokens_in is None:
                raise ValueError("a recurrent tokenizer needs tokens_in from the previous layer")
            tokens, attention = self.tokenizer(x, tokens_in, return_attention=True)
        else:
            tokens, attention = self.tokenizer(x, return_attention=True)
        tokens = self.transformer(tokens)
        if self.projector is not None:
            x = self.projector(x, tokens)
        return (x, tokens, attention) if return_attention else (x, tokens)


class VisualTokenHead(nn.Module):
    """Visual-transformer layers and a linear classifier on a (frozen) feature map, lecture 5.

    The part of :class:`VTResNet` after the convolutional stem, for any backbone: ``num_layers``
    :class:`VisualTransformer` layers (the first with a filter tokenizer; later ones recurrent, or static
    filter tokenizers with ``recurrent=False``), every layer but the last projecting back onto the map,
    then a classifier on the mean of the last tokens.

    Args:
        channels: C of the feature map.
        num_classes: K.
        num_tokens, token_channels, position_channels: L, Ct, Cp of every layer.
        num_layers: number of visual-transformer layers (>= 1).
        recurrent: recurrent tokenizers after the first layer (the paper) or static ones.

    Shape: ``(B, C, H, W) -> (B, K)``; ``attention(x)`` gives each layer's ``(B, L, H, W)`` maps.
    """

    def __init__(self, channels: int, num_classes: int, num_tokens: int = 8, token_channels: int = 64,
                 num_layers: int = 2, recurrent: bool = True, position_channels: int = 0) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.layers = nn.ModuleList(
            VisualTransformer(channels, num_tokens, token_channels, recurrent=recurrent and i > 0,
                              project=i < num_layers - 1, position_channels=position_channels)
            for i in range(num_layers))
        self.head = nn.Linear(token_channels, num_classes)

    def _run(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        tokens, maps = None, []
        for layer in self.layers:
            x, tokens, a = layer(x, tokens, return_attention=True)
            maps.append(a)
        return tokens, maps

    def attention(self, x: Tensor) -> list[Tensor]:
        """Each layer's tokenizer attention, ``(B, L, H, W)`` per layer."""
        return self._run(x)[1]

    def forward(self, x: Tensor) -> Tensor:
        tokens, _ = self._run(x)
        return self.head(tokens.mean(dim=1))  # (B, L, Ct) -> (B, Ct) -> (B, K)


class VTResNet(nn.Module):
    """VT-ResNet (lecture 5): ResNet stages 1-4 (``conv1`` .. ``layer3``), then visual-transformer layers on
    the 14 x 14 (for 224 x 224 input) feature map in place of ``layer4``, then a classifier on the
    mean of the tokens.

    Args:
        backbone: a ResNet with torchvision's module names (``conv1, bn1, relu, maxpool, layer1..layer3``),
            e.g. :func:`cvcourse.models.resnet.resnet18`; its ``layer4`` and ``fc`` are not used.
        num_classes: classifier outputs.
        num_tokens: L (8 in the paper).
        token_channels: Ct (1024 in the paper).
        num_layers: visual-transformer layers; the first tokenizes with filters, later ones recurrently;
            only the last skips the projector.

    Attributes: ``stem`` (conv1..layer3), ``vt`` (``nn.ModuleList``), ``head`` (Linear).
    Shape: ``(B, 3, H, W) -> (B, num_classes)``; ``forward_tokens``: ``(B, L, Ct)``.
    """

    def __init__(self, backbone: nn.Module, num_classes: int = 1000, num_tokens: int = 8,
                 token_channels: int = 1024, num_layers: int = 2) -> None:
        super().__init__()
        names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3"]
        missing = [n for n in names if not hasattr(backbone, n)]
        if missing:
            raise ValueError(f"backbone must be a ResNet with torchvision's module names; missing {missing}")
        self.stem = nn.Sequential(*(getattr(backbone, n) for n in names))
        channels = _out_channels(backbone.layer3)
        self.vt = nn.ModuleList(
            VisualTransformer(channels, num_tokens, token_channels, recurrent=i > 0, project=i < num_layers - 1)
            for i in range(num_layers)
        )
        self.head = nn.Linear(token_channels, num_classes)

    def forward_tokens(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W) -> (B, L, Ct)``: the visual tokens after the last transformer."""
        fmap = self.stem(x)  # (B, 3, H, W) -> (B, C, H/16, W/16)
        tokens = None
        for layer in self.vt:
            fmap, tokens = layer(fmap, tokens)
        return tokens

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_tokens(x).mean(dim=1))  # (B, L, Ct) -> (B, Ct) -> (B, classes)


def _out_channels(stage: nn.Module) -> int:
    convs = [m for m in stage.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    last = convs[-1]
    return last.num_features if isinstance(last, nn.BatchNorm2d) else last.out_channels

