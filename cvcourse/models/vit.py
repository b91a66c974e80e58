"""Vision Transformer (Dosovitskiy et al., 2020), lecture 5: an image as a sequence of 16 x 16 words.

Blocks, in the order of the lecture's figure:

- :class:`PatchEmbed`        cut the image into P x P patches and project each to a D-dim token (a strided conv)
- :class:`Attention`         multi-head self-attention, written out so the attention map can be returned
- :class:`MLP`               two linear layers with GELU
- :class:`TransformerBlock`  pre-norm encoder layer: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``
- :class:`ViT`               class token + learnable 1-D position embeddings + blocks + head on the class token

Same parameters, initial layout and numerics as ``torchvision.models.VisionTransformer`` (ViT-B/16 has
86,567,656 parameters in both); :func:`vit_b_16` builds that size.

Letter legend: B batch, C image channels, H, W image size, P patch size, N = (H/P)(W/P) patches,
L = N + 1 tokens (with the class token), D embedding width, h heads, Dh = D / h width per head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse._checks import check_tensor

__all__ = ["PatchEmbed", "Attention", "MLP", "TransformerBlock", "ViT", "vit_b_16", "position_similarity"]


class PatchEmbed(nn.Module):
    """Split an image into non-overlapping ``P x P`` patches and map each one linearly to ``D`` numbers.

    A linear map of a flattened patch is exactly a convolution with kernel and stride ``P``, which is how
    it is computed (as ``torchvision``'s ``conv_proj`` and timm's ``PatchEmbed`` do).

    Args:
        image_size: H = W the model expects.
        patch_size: P; must divide ``image_size``.
        in_channels: C.
        dim: D.

    Shape: ``(B, C, H, W) -> (B, N, D)`` with ``N = (H / P) * (W / P)``.
    """

    def __init__(self, image_size: int = 224, patch_size: int = 16, in_channels: int = 3, dim: int = 768) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"patch_size {patch_size} must divide image_size {image_size}")
        self.image_size, self.patch_size = image_size, patch_size
        self.num_patches = (image_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        check_tensor(x, "x")
        if x.dim() != 4 or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"x must have shape (B, C, {self.image_size}, {self.image_size}), got {tuple(x.shape)}; "
                "resize the images or build the model with image_size matching them"
            )
        x = self.proj(x)  # (B, C, H, W) -> (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, D, H/P, W/P) -> (B, N, D)


class Attention(nn.Module):
    """Multi-head scaled dot-product self-attention, ``softmax(Q K^T / sqrt(Dh)) V`` per head.

    Written out step by step (no fused kernel) so that lecture 5 can show the ``(L, L)`` attention maps
    and count their size. Numerically equal to ``nn.MultiheadAttention(dim, heads, batch_first=True)``
    with ``qkv.weight == in_proj_weight`` and ``proj == out_proj``.

    Args:
        dim: D.
        heads: h; must divide ``dim``.
        dropout: dropout on the attention probabilities.

    Shape: ``(B, L, D) -> (B, L, D)``; with ``return_attention=True`` also ``(B, h, L, L)``.
    """

    def __init__(self, dim: int, heads: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, return_attention: bool = False):
        B, L, D = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.heads, self.head_dim)  # (B, L, 3D) -> (B, L, 3, h, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # -> 3 x (B, h, L, Dh)
        attn = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5  # (B, h, L, L)
        attn = attn.softmax(dim=-1)
        out = self.dropout(attn) @ v  # (B, h, L, Dh)
        out = self.proj(out.transpose(1, 2).reshape(B, L, D))  # (B, h, L, Dh) -> (B, L, D)
        return (out, attn) if return_attention else out


class MLP(nn.Sequential):
    """Transformer feed-forward network: ``Linear(D, Dm) -> GELU -> Dropout -> Linear(Dm, D) -> Dropout``."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.add_module("fc1", nn.Linear(dim, hidden_dim))
        self.add_module("act", nn.GELU())
        self.add_module("drop1", nn.Dropout(dropout))
        self.add_module("fc2", nn.Linear(hidden_dim, dim))
        self.add_module("drop2", nn.Dropout(dropout))


class TransformerBlock(nn.Module):
    """Pre-norm transformer encoder layer (lecture 5): ``x = x + Attn(LN(x)); x = x + MLP(LN(x))``.

    Mirrors torchvision's ``EncoderBlock`` (LayerNorm eps 1e-6, GELU).

    Args:
        dim: D.
        heads: h.
        mlp_ratio: hidden width of the MLP as a multiple of D (4 in ViT-B).
        dropout: dropout in the MLP and on the attention probabilities.

    Shape: ``(B, L, D) -> (B, L, D)``.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: Tensor, return_attention: bool = False):
        a, attn = self.attn(self.norm1(x), return_attention=True)
        x = x + a
        x = x + self.mlp(self.norm2(x))
        return (x, attn) if return_attention else x


class ViT(nn.Module):
    """Vision Transformer for classification (lecture 5).

    ``PatchEmbed`` -> prepend a learnable class token -> add learnable 1-D position embeddings -> ``depth``
    :class:`TransformerBlock` -> LayerNorm -> linear head on the class token. Mirrors
    ``torchvision.models.VisionTransformer`` (its ``hidden_dim``/``num_layers``/``num_heads``/``mlp_dim``
    are ``dim``/``depth``/``heads``/``dim * mlp_ratio`` here).

    Args:
        image_size: H = W.
        patch_size: P.
        in_channels: C.
        num_classes: head outputs.
        dim: D.
        depth: number of transformer blocks.
        heads: h.
        mlp_ratio: MLP width over D.
        dropout: dropout after the embeddings, in the MLPs and on attention probabilities.

    Attributes:
        patch_embed, cls_token (Tensor[1, 1, D]), pos_embed (Tensor[1, L, D]), blocks, norm, head.

    Shape: ``(B, C, H, W) -> (B, num_classes)``; ``forward_features``: ``(B, L, D)``.
    """

    def __init__(self, image_size: int = 224, patch_size: int = 16, in_channels: int = 3, num_classes: int = 1000,
                 dim: int = 768, depth: int = 12, heads: int = 12, mlp_ratio: float = 4.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(image_size, patch_size, in_channels, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.empty(1, self.patch_embed.num_patches + 1, dim).normal_(std=0.02))
        self.pos_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        self.dim, self.num_classes = dim, num_classes
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        fan_in = self.patch_embed.proj.in_channels * self.patch_embed.patch_size ** 2
        nn.init.trunc_normal_(self.patch_embed.proj.weight, std=(1 / fan_in) ** 0.5)
        nn.init.zeros_(self.patch_embed.proj.bias)
        nn.init.zeros_(self.head.weight)

    def tokens(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, L, D)``: patch tokens with the class token prepended and positions added."""
        x = self.patch_embed(x)  # (B, C, H, W) -> (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (1, 1, D) -> (B, 1, D)
        return self.pos_drop(torch.cat([cls, x], dim=1) + self.pos_embed)  # (B, N + 1, D)

    def forward_features(self, x: Tensor, return_attention: bool = False):
        """``(B, C, H, W) -> (B, L, D)`` normalised tokens; optionally also the list of ``depth``
        attention maps ``(B, h, L, L)``."""
        x = self.tokens(x)
        maps = []
        for block in self.blocks:
            x, attn = block(x, return_attention=True)
            maps.append(attn)
        x = self.norm(x)
        return (x, maps) if return_attention else x

    def forward_head(self, tokens: Tensor) -> Tensor:
        """``(B, L, D) -> (B, num_classes)`` from the class token."""
        return self.head(tokens[:, 0])

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def vit_b_16(num_classes: int = 1000, image_size: int = 224) -> ViT:
    """ViT-Base/16: D = 768, 12 blocks, 12 heads, MLP 3072 (86,567,656 parameters for 1000 classes at 224,
    as ``torchvision.models.vit_b_16``)."""
    return ViT(image_size, 16, 3, num_classes, dim=768, depth=12, heads=12, mlp_ratio=4.0)


def position_similarity(pos_embed: Tensor, grid: int | None = None) -> Tensor:
    """Cosine similarity of each patch's position embedding with every other patch's (lecture 5 figure).

    Args:
        pos_embed (Tensor[1, L, D] or Tensor[L, D]): position embeddings *including* the class-token slot
            (dropped here), ``L = grid^2 + 1``.
        grid: patches per side (inferred from ``L`` when ``None``).

    Returns:
        Tensor[g, g, g, g]: ``out[i, j]`` is the ``g x g`` similarity map of patch ``(i, j)``.
    """
    check_tensor(pos_embed, "pos_embed")
    pe = pos_embed.reshape(-1, pos_embed.shape[-1])[1:]  # (1, L, D) -> (N, D), class slot dropped
    g = grid if grid is not None else int(round(pe.shape[0] ** 0.5))
    if g * g != pe.shape[0]:
        raise ValueError(f"pos_embed has {pe.shape[0]} patch positions, which is not grid^2 for grid={g}")
    pe = F.normalize(pe, dim=-1)
    return (pe @ pe.T).reshape(g, g, g, g)  # (N, N) -> (g, g, g, g)
