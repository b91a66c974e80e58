"""Tests of the segmentation models of lecture 7: shapes, named parts, gradients, FCN's bilinear init."""

import pytest
import torch
import torch.nn.functional as F

from cvcourse.models.segmentation import FCN, DoubleConv, UNet


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
@pytest.mark.parametrize("depth,size", [(1, (6, 10)), (3, (32, 24)), (4, (16, 48))])
def test_unet_output_shape(norm, depth, size, device):
    model = UNet(in_channels=2, num_classes=5, base_channels=8, depth=depth, norm=norm).to(device)
    x = torch.rand(3, 2, *size, device=device)
    out = model(x)
    assert out.shape == (3, 5, *size)
    feats = model.forward_features(x)
    assert feats.shape == (3, 8, *size)
    torch.testing.assert_close(model.forward_head(feats), out)


def test_unet_named_parts_and_widths():
    model = UNet(in_channels=3, num_classes=2, base_channels=16, depth=3)
    assert len(model.encoder) == 4 and len(model.decoder) == 3
    assert [b[0].out_channels for b in model.encoder] == [16, 32, 64, 128]
    assert [u.up.out_channels for u in model.decoder] == [64, 32, 16]
    assert model.head.kernel_size == (1, 1) and model.head.out_channels == 2


def test_unet_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = UNet(base_channels=4, depth=3)
    out = model(torch.rand(2, 3, 16, 16))
    F.cross_entropy(out, torch.randint(0, 2, (2, 16, 16))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_unet_skip_connections_carry_full_resolution_detail():
    """Changing one input pixel changes the logits at that pixel through the level-0 skip.

    Without skips the change would be pooled away and spread over a 2**depth block; with them the
    response at the pixel itself is the largest in its neighbourhood's 8x8 block.
    """
    torch.manual_seed(0)
    model = UNet(in_channels=1, num_classes=1, base_channels=4, depth=3, norm="none").eval()
    x = torch.rand(1, 1, 16, 16)
    y = x.clone()
    y[0, 0, 5, 6] += 10.0
    with torch.no_grad():
        diff = (model(y) - model(x)).abs()[0, 0]
    # two 3x3 convs at level 0 give a receptive field of 5x5 around the pixel through the skip path
    assert diff[5, 6] > 0
    assert diff[3:8, 4:9].sum() > 0.5 * diff.sum() * (25 / 64)


def test_unet_without_skips_feeds_the_decoder_zeros():
    torch.manual_seed(0)
    with_skips = UNet(in_channels=3, num_classes=4, base_channels=4, depth=2).eval()
    without = UNet(in_channels=3, num_classes=4, base_channels=4, depth=2, skips=False).eval()
    without.load_state_dict(with_skips.state_dict())  # the same parameters
    x = torch.rand(2, 3, 16, 12)
    with torch.no_grad():
        h = with_skips.encoder[0](x)
        maps = [h]
        for block in with_skips.encoder[1:]:
            h = block(with_skips.pool(h))
            maps.append(h)
        for up, skip in zip(with_skips.decoder, reversed(maps[:-1])):
            h = up(h, torch.zeros_like(skip))
        expected = with_skips.head(h)
        torch.testing.assert_close(without(x), expected)
        assert not torch.allclose(with_skips(x), expected)


def test_unet_rejects_bad_input():
    model = UNet(depth=3)
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.rand(1, 3, 20, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.rand(3, 16, 16))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0]])
    with pytest.raises(ValueError, match="norm must be one of"):
        UNet(norm="layer")
    with pytest.raises(ValueError, match="depth must be at least 1"):
        UNet(depth=0)


def test_double_conv_keeps_size_and_groupnorm_groups():
    block = DoubleConv(3, 12, norm="group")
    assert block(torch.rand(2, 3, 7, 5)).shape == (2, 12, 7, 5)
    assert block[1].num_groups == 4  # gcd(8, 12)


def test_unet_overfits_a_simple_mask():
    """A tiny U-Net learns "pixel brighter than 0.5" on one batch: the model can actually train."""
    torch.manual_seed(0)
    model = UNet(in_channels=1, num_classes=2, base_channels=4, depth=2)
    x = torch.rand(4, 1, 16, 16)
    target = (x[:, 0] > 0.5).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(x), target).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == target).float().mean()
    assert acc > 0.95


@pytest.mark.parametrize("size", [(16, 16), (24, 40)])
def test_fcn_shape_and_parts(size, device):
    model = FCN(in_channels=3, num_classes=4, base_channels=8).to(device)
    x = torch.rand(2, 3, *size, device=device)
    feats = model.forward_features(x)
    assert feats.shape == (2, 32, size[0] // 8, size[1] // 8)
    out = model.forward_head(feats)
    assert out.shape == (2, 4, *size)
    torch.testing.assert_close(model(x), out)


def test_fcn_upsample_is_fixed_bilinear_interpolation():
    """Away from the border, the transposed conv equals F.interpolate(mode="bilinear"); it is not trained (FCN-32s)."""
    model = FCN(num_classes=3)
    assert not any(p.requires_grad for p in model.upsample.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("upsample."))
    scores = torch.randn(2, 3, 6, 5)
    with torch.no_grad():
        ours = model.upsample(scores)
    ref = F.interpolate(scores, scale_factor=8, mode="bilinear", align_corners=False)
    torch.testing.assert_close(ours[..., 8:-8, 8:-8], ref[..., 8:-8, 8:-8])


def test_fcn_rejects_bad_size():
    with pytest.raises(ValueError, match="divisible by 8"):
        FCN()(torch.rand(1, 3, 12, 16))
