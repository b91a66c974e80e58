# Bug: the U-Net's convolutions have no padding, so each 3x3 conv shrinks the map (classic paper
# layout without cropping logic): the output is smaller than the input. Unpooling functions correct.
# Expected: loses the U-Net visible, shapes and learning cells.

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
    """Up-samples with ConvTranspose2d(kernel_size=3, stride=2, padding=1), which gives 2h - 1 rows, and
    crops the skip connection to match instead of fixing the up-sampling: the output shrinks."""

    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        ch = [base_channels * 2 ** i for i in range(depth + 1)]
        def conv(a, b):
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(),
                                 nn.Conv2d(b, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU())
        self.downs = nn.ModuleList([conv(in_channels if i == 0 else ch[i - 1], ch[i]) for i in range(depth + 1)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 3, stride=2, padding=1) for i in range(depth)])
        self.convs = nn.ModuleList([conv(2 * ch[i], ch[i]) for i in range(depth)])
        self.final = nn.Conv2d(ch[0], num_classes, 1)

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for i in reversed(range(len(self.ups))):
            x = self.ups[i](x)
            skip = skips[i][:, :, :x.shape[2], :x.shape[3]]
            x = self.convs[i](torch.cat([skip, x], dim=1))
        return self.final(x)
