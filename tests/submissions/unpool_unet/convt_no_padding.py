# Bug: conv_transpose2d ignores padding (never trims the border). Loses the visible cell (it checks a padding=1
# output shape), the padding cell and the bias cell (one of its cases has padding); keeps stride 1 and stride cells.

# -- base: correct_vectorised --

# -- cell: conv_transpose2d --
def conv_transpose2d(x, weight, bias=None, stride=1, padding=0):
    # zero-stuff the input, pad by k - 1 - p, and correlate with the flipped, transposed kernel
    B, C_in, H, W = x.shape
    _, C_out, kH, kW = weight.shape
    up = x.new_zeros(B, C_in, (H - 1) * stride + 1, (W - 1) * stride + 1)
    up[:, :, ::stride, ::stride] = x
    up = F.pad(up, (kW - 1, kW - 1, kH - 1, kH - 1))
    w = weight.flip(2, 3).transpose(0, 1)
    out = F.conv2d(up, w, bias)
    if False:
        out = out[:, :, padding:out.shape[2] - padding, padding:out.shape[3] - padding]
    return out

# -- cell: unet --
class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        raise NotImplementedError("not done")
