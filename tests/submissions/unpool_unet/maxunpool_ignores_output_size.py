# Bug: max_unpool2d assumes the output is exactly twice the pooled size and ignores output_size.
# Right only when the map was pooled by exactly 2 from an even size: loses both hidden max-unpooling cells
# (odd sizes; kernel 3 pooling), keeps the visible one.

# -- cell: nearest_unpool2d --
def nearest_unpool2d(x, scale_factor=2):
    return x.repeat_interleave(scale_factor, dim=2).repeat_interleave(scale_factor, dim=3)

# -- cell: max_unpool2d --
def max_unpool2d(x, indices, output_size):
    B, C, h, w = x.shape
    H, W = 2 * h, 2 * w
    out = torch.zeros(B, C, H * W, dtype=x.dtype)
    out.scatter_(2, indices.reshape(B, C, -1), x.reshape(B, C, -1))
    return out.reshape(B, C, H, W)

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
    if padding:
        out = out[:, :, padding:out.shape[2] - padding, padding:out.shape[3] - padding]
    return out

# -- cell: unet --
class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        raise NotImplementedError("not done")
