"""Transfer-learning helpers (cvcourse.transfer, lecture 6) on a randomly initialised Lite0."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from cvcourse.models import efficientnet_lite0
from cvcourse.transfer import Normalized, PartlyFrozen, extract_features, stage_activations

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)


@pytest.fixture(scope="module")
def lite():
    torch.manual_seed(0)
    return efficientnet_lite0().eval()


def test_normalized_matches_manual_normalisation(lite):
    x = torch.rand(2, 3, 32, 32)
    manual = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    net = Normalized(lite, MEAN, STD).eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), lite(manual))
        torch.testing.assert_close(net.forward_features(x), lite.forward_features(manual))
        torch.testing.assert_close(net.forward_stages(x)["stride8"], lite.forward_stages(manual)["stride8"])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="one value per channel"):
        Normalized(lite, (0.5,), (0.2, 0.3))


def test_partly_frozen_freezes_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = efficientnet_lite0(num_classes=3)
    net = PartlyFrozen(model, trainable=(7, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net.train()
    loss = nn.functional.cross_entropy(net(torch.rand(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    after = model.state_dict()
    frozen = [k for k in before if k.startswith("features.") and int(k.split(".")[1]) not in (7, 8)]
    trained = [k for k in before if k.startswith("features.7.") and k.endswith("running_mean")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # weights and running stats
    assert trained and any(not torch.equal(before[k], after[k]) for k in trained)
    assert not torch.equal(before["classifier.1.weight"], after["classifier.1.weight"])
    assert not model.features[0].training and model.features[7].training


def test_partly_frozen_errors():
    with pytest.raises(ValueError, match="trainable stages"):
        PartlyFrozen(efficientnet_lite0(), trainable=(9,))
    with pytest.raises(TypeError, match="features"):
        PartlyFrozen(nn.Linear(2, 2), trainable=())


def test_extract_features_and_stage_activations_pool_the_body(lite):
    x, y = torch.rand(5, 3, 32, 32), torch.arange(5)
    net = Normalized(lite, MEAN, STD).train()
    feats, labels = extract_features(net, TensorDataset(x, y), batch_size=2)
    net.eval()
    with torch.no_grad():
        expected = net.forward_features(x).mean(dim=(2, 3))
        stage = net.forward_stages(x)["stride16"].mean(dim=(2, 3))
    torch.testing.assert_close(feats, expected)
    assert torch.equal(labels, y)
    torch.testing.assert_close(stage_activations(net, x, "stride16", batch_size=3), stage)
    with pytest.raises(ValueError, match="unknown stage"):
        stage_activations(net, x, "stride3")
    with pytest.raises(TypeError, match="forward_features"):
        extract_features(nn.Linear(2, 2), TensorDataset(x, y))
