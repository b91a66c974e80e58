"""The precondition of the unpool_unet learning budget (cheap: nothing is trained here)."""

import pytest
import torch
from torch import nn

from cvcourse.grading.budgets import UNPOOL_UNET, check_logits_shape, train_and_score
from cvcourse.models.segmentation import UNet


class _NoHead(UNet):
    def forward(self, x):
        return self.forward_features(x)  # (B, base_channels, H, W): no 1x1 classifier


def test_a_unet_with_its_head_passes_the_precondition():
    check_logits_shape(UNet(3, 4, 8, 3), num_classes=4, image_size=32)


def test_a_headless_unet_is_rejected_before_training():
    model = _NoHead(3, 4, 8, 3)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"class logits \(2, 4, 32, 32\), got \(2, 8, 32, 32\)"):
        train_and_score(model, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "the model was trained"


def test_wrong_spatial_size_and_non_tensor_outputs_are_rejected():
    class Crop(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 4, 30, 30)

    class Dict(nn.Module):
        def forward(self, x):
            return {"out": x}

    with pytest.raises(ValueError, match=r"got \(2, 4, 30, 30\)"):
        check_logits_shape(Crop(), 4, 32)
    with pytest.raises(ValueError, match="got dict"):
        check_logits_shape(Dict(), 4, 32)


def test_the_budget_is_read_only():
    with pytest.raises(TypeError):
        UNPOOL_UNET["threshold"] = 0.0  # type: ignore[index]
