# Correct: vectorised (repeat_interleave, advanced indexing, conv2d on a zero-stuffed input with the
# flipped kernel) and a GroupNorm U-Net with nearest up-sampling + 3x3 conv. Expected: full marks.

# -- cell: nearest_unpool2d --
def nearest_unpool2d(x, scale_factor=2):
    return x.repeat_interleave(scale_factor, dim=2).repeat_interleave(scale_factor, dim=3)

# -- cell: max_unpool2d --
def max_unpool2d(x, indices, output_size):
    B, C, h, w = x.shape
    H, W = output_size
    out = torch.zeros(B, C, H, W, dtype=x.dtype)
    b = torch.arange(B).view(B, 1, 1, 1).expand_as(indices)
    c = torch.arange(C).view(1, C, 1, 1).expand_as(indices)
    out[b, c, indices // W, indices % W] = x
    return out

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
    """GroupNorm, nearest up-sampling followed by a 3x3 convolution, recursive construction."""

    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        def block(a, b):
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.GroupNorm(min(4, b), b), nn.ReLU(),
                                 nn.Conv2d(b, b, 3, padding=1), nn.GroupNorm(min(4, b), b), nn.ReLU())
        self.depth = depth
        self.enc = nn.ModuleList()
        self.dec = nn.ModuleList()
        self.ups = nn.ModuleList()
        c = in_channels
        for i in range(depth + 1):
            self.enc.append(block(c, base_channels * 2 ** i))
            c = base_channels * 2 ** i
        for i in reversed(range(depth)):
            w = base_channels * 2 ** i
            self.ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * w, w, 3, padding=1)))
            self.dec.append(block(2 * w, w))
        self.out = nn.Conv2d(base_channels, num_classes, 1)

    def forward(self, x):
        feats = []
        for i, e in enumerate(self.enc):
            if i:
                x = nn.functional.max_pool2d(x, 2)
            x = e(x)
            feats.append(x)
        for up, d, skip in zip(self.ups, self.dec, reversed(feats[:-1])):
            x = d(torch.cat([up(x), skip], 1))
        return self.out(x)
