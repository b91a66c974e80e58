"""Cost counting (cvcourse.models.cost): formulas against torch modules, counts against hand counts."""

import pytest
import torch
from torch import nn

from cvcourse.models import count_macs as exported_count_macs
from cvcourse.models.classic import alexnet
from cvcourse.models.cost import conv_macs, conv_params, count_macs, count_parameters
from cvcourse.models.vit import Attention


def test_count_macs_is_exported_from_models():
    assert exported_count_macs is count_macs


def test_count_macs_tensor_size_and_batch_agree():
    conv = nn.Conv2d(4, 6, 3, padding=1)
    by_size = count_macs(conv, (4, 10, 10))
    assert by_size == conv_macs(4, 6, 3, 10) == 3 * 3 * 4 * 6 * 100
    assert count_macs(conv, torch.randn(1, 4, 10, 10)) == by_size
    assert count_macs(conv, (5, 4, 10, 10)) == 5 * by_size


def test_count_macs_counts_attention_products():
    # L tokens of D channels, one head: qkv (L*D*3D) + Q K^T (L*L*D) + A V (L*L*D) + out proj (L*D*D)
    L, D = 7, 8
    attn = Attention(dim=D, heads=1)
    expected = L * D * 3 * D + 2 * L * L * D + L * D * D
    assert count_macs(attn, torch.randn(1, L, D)) == expected


def test_count_macs_accepts_functions_and_restores_mode():
    lin = nn.Linear(5, 3).train()
    assert count_macs(lambda x: lin(x) @ torch.ones(3, 2), torch.randn(4, 5)) == 4 * 5 * 3 + 4 * 3 * 2
    count_macs(lin, torch.randn(1, 5))
    assert lin.training


def test_count_parameters_trainable_only():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    net[0].requires_grad_(False)
    assert count_parameters(net) == 16 + 10
    assert count_parameters(net, trainable_only=True) == 10
    with pytest.raises(TypeError, match="nn.Module"):
        count_parameters([torch.zeros(3)])


def test_count_macs_errors():
    with pytest.raises(ValueError, match="needs the inputs"):
        count_macs(alexnet())
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        count_macs(alexnet(), (224, 224))
    with pytest.raises(ValueError, match="divisible by groups"):
        conv_params(3, 8, 3, groups=2)
