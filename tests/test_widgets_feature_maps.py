from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import pytest
import torch
from torch import nn

from cvcourse.widgets.feature_maps import channel_map, feature_map_picker, stage_maps


class TwoStages(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.b = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.drop = nn.Dropout(0.5)

    def forward_stages(self, x):
        a = self.drop(self.a(x))
        return OrderedDict(stride2=a, stride4=self.b(a))


def test_stage_maps_match_the_model_in_eval_mode_and_restore_its_mode():
    torch.manual_seed(0)
    model, image = TwoStages().train(), torch.rand(3, 16, 16)
    maps = stage_maps(model, image)
    assert model.training  # mode restored
    expected = model.eval().forward_stages(image[None])
    assert list(maps) == ["stride2", "stride4"]
    for name in maps:
        torch.testing.assert_close(maps[name], expected[name][0])
    assert maps["stride4"].shape == (6, 4, 4)


def test_channel_map_rescales_and_checks():
    maps = OrderedDict(s=torch.stack([torch.arange(4.0).reshape(2, 2) * 3 - 1, torch.full((2, 2), 5.0)]))
    torch.testing.assert_close(channel_map(maps, "s", 0), torch.tensor([[0.0, 1 / 3], [2 / 3, 1.0]]))
    assert channel_map(maps, "s", 1).eq(0).all()
    with pytest.raises(ValueError, match="channel must be in"):
        channel_map(maps, "s", 2)
    with pytest.raises(KeyError, match="not one of"):
        channel_map(maps, "t", 0)


def test_picker_renders_headless_and_rejects_models_without_stages():
    assert feature_map_picker(TwoStages(), torch.rand(3, 16, 16)) is not None
    with pytest.raises(TypeError, match="forward_stages"):
        stage_maps(nn.Conv2d(3, 3, 1), torch.rand(3, 8, 8))
