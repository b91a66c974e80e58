"""Lecture 5: ViT blocks against torchvision's VisionTransformer / nn.MultiheadAttention, and the visual-token
transformer (tokenizer, transformer, projector, VT-ResNet)."""

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from cvcourse.models.cost import count_parameters
from cvcourse.models.resnet import resnet18
from cvcourse.models.visual_transformer import (FilterTokenizer, Projector, RecurrentTokenizer, TokenTransformer,
                                                VisualTransformer, VTResNet)
from cvcourse.models.vit import Attention, PatchEmbed, ViT, position_similarity, vit_b_16


def _load_from_torchvision(ours: ViT, tv: VisionTransformer) -> None:
    """Explicit key mapping torchvision VisionTransformer -> cvcourse ViT."""
    sd = tv.state_dict()
    out = {
        "cls_token": sd["class_token"],
        "pos_embed": sd["encoder.pos_embedding"],
        "patch_embed.proj.weight": sd["conv_proj.weight"],
        "patch_embed.proj.bias": sd["conv_proj.bias"],
        "norm.weight": sd["encoder.ln.weight"],
        "norm.bias": sd["encoder.ln.bias"],
        "head.weight": sd["heads.head.weight"],
        "head.bias": sd["heads.head.bias"],
    }
    names = {"ln_1": "norm1", "ln_2": "norm2", "self_attention.in_proj_weight": "attn.qkv.weight",
             "self_attention.in_proj_bias": "attn.qkv.bias", "self_attention.out_proj": "attn.proj",
             "mlp.0": "mlp.fc1", "mlp.3": "mlp.fc2"}
    for key, v in sd.items():
        if key.startswith("encoder.layers."):
            i, rest = key.removeprefix("encoder.layers.encoder_layer_").split(".", 1)
            for a, b in names.items():
                if rest.startswith(a):
                    out[f"blocks.{i}.{b}{rest[len(a):]}"] = v
    ours.load_state_dict(out, strict=True)


def test_vit_matches_torchvision_vision_transformer():
    torch.manual_seed(0)
    tv = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64,
                           num_classes=7).eval()
    for p in tv.parameters():  # torchvision zero-initialises the head and class token; make them matter
        nn.init.normal_(p, std=0.1)
    ours = ViT(32, 8, 3, 7, dim=32, depth=2, heads=4, mlp_ratio=2).eval()
    _load_from_torchvision(ours, tv)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), atol=1e-5, rtol=1e-4)


def test_vit_b_16_param_count():
    assert count_parameters(vit_b_16()) == count_parameters(torchvision.models.vit_b_16()) == 86_567_656


def test_attention_matches_multihead_attention():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=True)
    attn = Attention(16, 4)
    attn.qkv.weight.data.copy_(mha.in_proj_weight)
    attn.qkv.bias.data.copy_(mha.in_proj_bias)
    attn.proj.load_state_dict(mha.out_proj.state_dict())
    x = torch.randn(2, 5, 16)
    ref, ref_w = mha(x, x, x, average_attn_weights=False)
    out, w = attn(x, return_attention=True)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w, ref_w)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 5))


def test_attention_gradcheck():
    torch.manual_seed(0)
    attn = Attention(8, 2).double()
    x = torch.randn(1, 3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(attn, (x,))


def test_patch_embed_is_a_linear_map_of_flattened_patches():
    torch.manual_seed(0)
    pe = PatchEmbed(image_size=12, patch_size=4, in_channels=3, dim=5)
    x = torch.randn(2, 3, 12, 12)
    patches = x.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, C, 3, 3, 4, 4)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, 9, 48)  # (B, N, C*P*P), rows then columns
    ref = patches @ pe.proj.weight.reshape(5, 48).T + pe.proj.bias
    torch.testing.assert_close(pe(x), ref)


def test_patch_embed_errors():
    with pytest.raises(ValueError, match="must divide"):
        PatchEmbed(image_size=30, patch_size=8)
    with pytest.raises(ValueError, match=r"\(B, C, 32, 32\)"):
        PatchEmbed(32, 8)(torch.randn(1, 3, 28, 28))
    with pytest.raises(ValueError, match="must divide"):
        Attention(10, 3)


def test_vit_shapes_attention_maps_and_gradient_flow():
    model = ViT(image_size=32, patch_size=4, num_classes=10, dim=32, depth=2, heads=4)
    assert (model.head.weight == 0).all()  # zero-initialised head, as torchvision
    nn.init.normal_(model.head.weight)  # ... which would block all gradients below it in this test
    x = torch.randn(2, 3, 32, 32)
    tokens, maps = model.forward_features(x, return_attention=True)
    assert tokens.shape == (2, 65, 32)
    assert len(maps) == 2 and maps[0].shape == (2, 4, 65, 65)
    y = model.forward_head(tokens)
    assert y.shape == (2, 10)
    y.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    assert model.pos_embed.grad.abs().sum() > 0 and model.patch_embed.proj.weight.grad.abs().sum() > 0


def test_position_similarity():
    pe = torch.randn(1, 17, 8)
    sim = position_similarity(pe)
    assert sim.shape == (4, 4, 4, 4)
    flat = sim.reshape(16, 16)
    torch.testing.assert_close(flat.diagonal(), torch.ones(16))
    torch.testing.assert_close(flat, flat.T)
    # hand-computed entry: patch (0, 1) vs patch (2, 3) = rows 1 and 11 after the class slot
    a, b = pe[0, 2], pe[0, 12]
    torch.testing.assert_close(sim[0, 1, 2, 3], torch.dot(a, b) / (a.norm() * b.norm()))
    with pytest.raises(ValueError, match="grid"):
        position_similarity(torch.randn(1, 16, 8))


def test_filter_tokenizer_is_weighted_average_and_permutation_invariant():
    torch.manual_seed(0)
    tok = FilterTokenizer(channels=6, num_tokens=3, token_channels=5)
    x = torch.randn(2, 6, 4, 5)
    tokens, a = tok(x, return_attention=True)
    assert tokens.shape == (2, 3, 5) and a.shape == (2, 3, 4, 5)
    torch.testing.assert_close(a.sum(dim=(2, 3)), torch.ones(2, 3))
    flat = x.flatten(2)  # (B, C, HW)
    ref = torch.einsum("blp,bcp->blc", a.flatten(2), flat) @ tok.value.weight.T
    torch.testing.assert_close(tokens, ref)
    # no position information: shuffling pixels leaves the tokens unchanged
    perm = torch.randperm(20)
    shuffled = flat[:, :, perm].reshape(2, 6, 4, 5)
    torch.testing.assert_close(tok(shuffled), tokens)
    # a constant feature map gives every token the value of that constant
    const = torch.ones(1, 6, 3, 3) * torch.arange(6.0).view(1, 6, 1, 1)
    torch.testing.assert_close(tok(const), tok.value(torch.arange(6.0)).expand(1, 3, 5))


def test_recurrent_tokenizer_transformer_projector_shapes():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 4, 4)
    t0 = FilterTokenizer(6, 3, 8)(x)
    t1 = RecurrentTokenizer(6, 8)(x, t0)
    assert t1.shape == (2, 3, 8)
    assert TokenTransformer(8)(t1).shape == (2, 3, 8)
    proj = Projector(6, 8)
    assert proj(x, t1).shape == x.shape
    nn.init.zeros_(proj.value.weight)
    torch.testing.assert_close(proj(x, t1), x)  # residual: zero values leave the feature map unchanged
    with pytest.raises(ValueError, match="tokens_in"):
        VisualTransformer(6, 3, 8, recurrent=True)(x)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        FilterTokenizer(6, 3, 8)(torch.randn(6, 4, 4))


@pytest.mark.parametrize("make_backbone", [lambda: resnet18(), lambda: torchvision.models.resnet18()])
def test_vt_resnet(make_backbone):
    backbone = make_backbone()
    model = VTResNet(backbone, num_classes=10, num_tokens=4, token_channels=64, num_layers=2)
    x = torch.randn(2, 3, 32, 32)  # layer3 gives a 2x2 map
    assert model.forward_tokens(x).shape == (2, 4, 64)
    y = model(x)
    assert y.shape == (2, 10)
    y.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    assert model.stem[0].weight.grad.abs().sum() > 0
    # stages 1-4 are shared with the backbone; layer4 is not used
    assert model.stem[0] is backbone.conv1
    assert not any(m is backbone.layer4 for m in model.modules())


def test_vt_resnet_needs_a_resnet():
    with pytest.raises(ValueError, match="missing"):
        VTResNet(nn.Sequential(nn.Conv2d(3, 8, 3)))


def test_tokenizer_position_encoding_is_the_pooled_attention_projected():
    torch.manual_seed(0)
    tok = FilterTokenizer(channels=6, num_tokens=3, token_channels=10, position_channels=4, position_grid=2)
    x = torch.randn(2, 6, 4, 4)
    tokens, a = tok(x, return_attention=True)
    assert tokens.shape == (2, 3, 10)
    pooled = a.reshape(2, 3, 2, 2, 2, 2).mean(dim=(3, 5)).flatten(2)  # 4x4 -> 2x2 by hand
    torch.testing.assert_close(tokens[..., 6:], pooled @ tok.position.weight.T)
    plain = (a.flatten(2) @ tok.value(x.flatten(2).transpose(1, 2)))
    torch.testing.assert_close(tokens[..., :6], plain)
    with pytest.raises(ValueError, match="position_channels"):
        FilterTokenizer(6, 3, 8, position_channels=8)


def test_visual_token_head_static_and_recurrent():
    from cvcourse.models.visual_transformer import VisualTokenHead

    x = torch.randn(2, 6, 5, 5)
    for recurrent in (True, False):
        head = VisualTokenHead(6, num_classes=4, num_tokens=3, token_channels=8, num_layers=2, recurrent=recurrent,
                               position_channels=2)
        assert head(x).shape == (2, 4)
        assert isinstance(head.layers[1].tokenizer, RecurrentTokenizer) == recurrent
        maps = head.attention(x)
        assert len(maps) == 2 and maps[0].shape == (2, 3, 5, 5)
        torch.testing.assert_close(maps[1].sum(dim=(2, 3)), torch.ones(2, 3))
    with pytest.raises(ValueError, match="num_layers"):
        VisualTokenHead(6, 4, num_layers=0)
