"""The pretrained EfficientNet-Lite0 of lecture 4: key mapping, parameter count, predictions on real photos,
preprocessing, torchvision-style weights API and the backbone interface used by lectures 6 and 9."""

import pytest
import torch
from PIL import Image
from skimage import data as skdata
from torchvision.models._meta import _IMAGENET_CATEGORIES

from cvcourse.models import EfficientNetLite0Weights, efficientnet_lite0
from cvcourse.models.efficientnet import EfficientNetLite, lite0_state_dict_mapping

W = EfficientNetLite0Weights.IMAGENET1K_V1
CAT_IDS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def raw_state_dict():
    return torch.load(W.meta["file"](), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model():
    return efficientnet_lite0(weights=W).eval()


def test_mapping_is_complete_and_one_to_one(raw_state_dict):
    mapping = lite0_state_dict_mapping(raw_state_dict.keys())
    ours = EfficientNetLite().state_dict()
    assert set(mapping) == set(raw_state_dict)
    assert len(set(mapping.values())) == len(mapping)
    assert set(mapping.values()) == set(ours)
    for src, dst in mapping.items():
        assert raw_state_dict[src].shape == ours[dst].shape, (src, dst)
    # a few mappings spelled out: block 3 is the first block of stage 3 (5x5 kernels)
    assert mapping["_blocks.3._depthwise_conv.weight"] == "features.3.0.depthwise.conv.weight"
    assert mapping["_blocks.0._bn2.running_var"] == "features.1.0.project.bn.running_var"
    assert mapping["_fc.bias"] == "classifier.1.bias"


def test_mapping_rejects_unknown_keys():
    with pytest.raises(KeyError):
        lite0_state_dict_mapping(["_mystery.weight"])


def test_param_count_matches_state_dict(raw_state_dict, model):
    learnable = sum(v.numel() for k, v in raw_state_dict.items()
                    if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    ours = sum(p.numel() for p in model.parameters())
    assert ours == learnable == W.meta["num_params"]


def test_weights_are_loaded_not_random(raw_state_dict, model):
    torch.testing.assert_close(model.features[0].conv.weight, raw_state_dict["_conv_stem.weight"])
    torch.testing.assert_close(model.classifier[1].weight, raw_state_dict["_fc.weight"])


@pytest.mark.parametrize("name, ok_ids", [("chelsea", CAT_IDS), ("coffee", [ESPRESSO])])
def test_real_photo_predictions(model, name, ok_ids):
    img = Image.fromarray(getattr(skdata, name)())
    with torch.no_grad():
        probs = model(W.transforms()(img).unsqueeze(0)).softmax(-1)[0]
    top1 = int(probs.argmax())
    assert top1 in ok_ids, f"{name}: top-1 is {W.meta['categories'][top1]}"
    assert float(probs[list(ok_ids)].sum()) > 0.5


def test_categories_and_weights_api():
    assert W.meta["categories"] == _IMAGENET_CATEGORIES and len(W.meta["categories"]) == 1000
    assert W.meta["categories"][ESPRESSO] == "espresso"
    assert EfficientNetLite0Weights.verify("DEFAULT") is W
    assert EfficientNetLite0Weights.verify("IMAGENET1K_V1") is W
    assert W.url is None
    with pytest.raises(TypeError, match="Invalid Weight class"):
        efficientnet_lite0(weights=42)
    with pytest.raises(ValueError, match="num_classes=10"):
        efficientnet_lite0(weights=W, num_classes=10)


def test_string_weights_load_the_same_model(model):
    m2 = efficientnet_lite0(weights="DEFAULT").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m2(x), model(x))


def test_preprocessing_pil_and_tensor_agree():
    arr = skdata.chelsea()  # (300, 451, 3) uint8
    t = W.transforms()
    a = t(Image.fromarray(arr))
    b = t(torch.from_numpy(arr).permute(2, 0, 1).contiguous())  # (H, W, 3) -> (3, H, W)
    assert a.shape == b.shape == (3, 224, 224)
    # PIL and torch resize differ by rounding only; normalised values span about [-1, 1]
    assert float((a - b).abs().mean()) < 0.01
    # the normalisation is (x - 127) / 128 on the 0..255 scale: constant images check it exactly
    for value in (0, 127, 255):
        flat = torch.full((3, 300, 400), value, dtype=torch.uint8)
        torch.testing.assert_close(t(flat), torch.full((3, 224, 224), (value - 127) / 128), atol=1e-5, rtol=0)


def test_backbone_interface(model):
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, model.out_channels, 3, 4)
        torch.testing.assert_close(model.forward_head(feats), model(x))
        stages = model.forward_stages(x)
    assert list(stages) == ["stride2", "stride4", "stride8", "stride16", "stride32"]
    for (name, f), ch in zip(stages.items(), [16, 24, 40, 112, 1280]):
        s = int(name.removeprefix("stride"))
        assert f.shape == (2, ch, 96 // s, 128 // s)
    torch.testing.assert_close(stages["stride32"], feats)


def test_bad_input_message(model):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(3, 224, 224))
