"""cvcourse.ops.dct against scipy.fft and PIL, and cvcourse.models.frequency's gate and networks."""

import numpy as np
import pytest
import scipy.fft
import torch
from PIL import Image

from cvcourse.models.frequency import DCTNet, FrequencyGate, SpatialNet, gate_penalty_loss
from cvcourse.ops.dct import block_dct, block_idct, dct_channel, dct_matrix, rgb_to_ycbcr, ycbcr_to_rgb


@pytest.mark.parametrize("n", [1, 4, 8])
def test_dct_matrix_is_scipy_dct_and_orthogonal(n):
    x = np.random.default_rng(0).normal(size=(n, 5))
    d = dct_matrix(n, dtype=torch.float64)
    np.testing.assert_allclose((d @ torch.from_numpy(x)).numpy(), scipy.fft.dct(x, axis=0, norm="ortho"), atol=1e-12)
    torch.testing.assert_close(d @ d.T, torch.eye(n, dtype=torch.float64))


def test_dct_matrix_hand_values():
    # n = 2: [[1, 1], [1, -1]] / sqrt(2)
    torch.testing.assert_close(dct_matrix(2, dtype=torch.float64),
                               torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / np.sqrt(2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_block_dct_matches_scipy_dctn_per_tile(dtype):
    x = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = block_dct(x.to(dtype))
    assert out.shape == (2, 192, 2, 3) and out.dtype == dtype
    for b, c, i, j in [(0, 0, 0, 0), (1, 2, 1, 2), (0, 1, 1, 0), (1, 0, 0, 1)]:
        tile = x[b, c, 8 * i:8 * i + 8, 8 * j:8 * j + 8].numpy()
        ref = scipy.fft.dctn(tile, norm="ortho")                     # (8, 8) indexed [u, v]
        got = out[b, 64 * c:64 * (c + 1), i, j].reshape(8, 8).double().numpy()
        np.testing.assert_allclose(got, ref, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_block_dct_constant_image_has_only_dc():
    out = block_dct(torch.full((1, 1, 8, 8), 0.5))
    expect = torch.zeros(64)
    expect[0] = 0.5 * 8  # DC of an orthonormal 2-D DCT: n * mean
    torch.testing.assert_close(out[0, :, 0, 0], expect)


def test_block_dct_single_cosine_lands_in_its_channel():
    # a horizontal cosine of frequency v = 3 in every tile -> only channel (u=0, v=3) is non-zero
    xs = torch.arange(16, dtype=torch.float64)
    img = torch.cos(np.pi * (2 * (xs % 8) + 1) * 3 / 16).expand(8, 16)[None, None]
    out = block_dct(img)
    energy = out.pow(2).sum(dim=(0, 2, 3))
    assert energy.argmax().item() == 0 * 8 + 3
    assert energy[3] / energy.sum() > 1 - 1e-12
    assert dct_channel(3) == (0, 0, 3) and dct_channel(64 + 8 * 2 + 5) == (1, 2, 5)


def test_block_idct_inverts_and_matches_scipy_idctn():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    coef = block_dct(x)
    torch.testing.assert_close(block_idct(coef), x)
    tile = coef[0, 64:128, 1, 0].reshape(8, 8).numpy()
    np.testing.assert_allclose(block_idct(coef)[0, 1, 8:16, 0:8].numpy(), scipy.fft.idctn(tile, norm="ortho"), atol=1e-12)


def test_ycbcr_matches_pil_and_inverts():
    rgb = np.random.default_rng(0).integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(rgb).convert("YCbCr"), dtype=np.float64)  # (H, W, 3) uint8 values
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].double() / 255
    ours = rgb_to_ycbcr(x)[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(ours - pil).max() < 1.01  # PIL truncates to integers (fixed-point arithmetic)
    assert np.abs(ours - pil).mean() < 0.6
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x)), x)
    # grey stays grey: Cb = Cr = 0.5
    grey = rgb_to_ycbcr(torch.full((1, 3, 2, 2), 0.3))
    torch.testing.assert_close(grey[0, :, 0, 0], torch.tensor([0.3, 0.5, 0.5]))


def test_dct_bad_input_errors():
    with pytest.raises(ValueError, match="multiples of block=8"):
        block_dct(torch.zeros(1, 3, 12, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        block_dct(torch.zeros(3, 16, 16))
    with pytest.raises(TypeError, match="float"):
        block_dct(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="multiple of block"):
        block_idct(torch.zeros(1, 60, 2, 2))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        rgb_to_ycbcr(torch.zeros(1, 1, 8, 8))
    with pytest.raises(TypeError, match="divide uint8"):
        rgb_to_ycbcr(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="positive"):
        dct_matrix(0)


def test_frequency_gate_is_hard_and_passes_gradients():
    torch.manual_seed(0)
    gate = FrequencyGate(6)
    x = torch.randn(4, 6, 3, 3, requires_grad=True)
    y, g = gate(x)
    assert g.shape == (4, 6) and set(g.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(y, x * g[:, :, None, None])
    y.sum().backward()
    assert gate.fc.bias.grad is not None and gate.fc.bias.grad.abs().sum() > 0  # straight-through gradient
    gate.eval()
    _, g_eval = gate(x)
    assert torch.equal(g_eval, torch.ones(4, 6))  # initialised open: "on" logit 1 > "off" logit 0


def test_dct_net_and_spatial_net_shapes_and_selection():
    images = torch.rand(2, 3, 32, 32)
    net = DCTNet(5, width=8, gate=True)
    assert net(images).shape == (2, 5) and net.last_gate.shape == (2, 192)
    small = DCTNet(5, width=8, channels=[0, 64, 128])
    assert small.frequency_input(images).shape == (2, 3, 4, 4)
    assert SpatialNet(5, width=8)(images).shape == (2, 5)
    loss = gate_penalty_loss(net, 0.5)
    net.train(); logits = net(images)
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    torch.testing.assert_close(loss(logits, torch.tensor([0, 1])), ce + 0.5 * net.last_gate.mean())
    with pytest.raises(ValueError, match="distinct indices"):
        DCTNet(5, channels=[0, 0])
    with pytest.raises(ValueError, match="no gate"):
        gate_penalty_loss(small, 0.1)
