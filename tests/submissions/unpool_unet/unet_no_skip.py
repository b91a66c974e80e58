# Bug: the U-Net forgets its skip connections (the decoder only up-samples the bottleneck; the merge blocks
# see the up-sampled map alone). Shapes and gradients are fine. Unpooling functions correct.
# Expected: loses only the learning test, if the budget separates it (docs/unet_calibration.md).


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
    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        def block(a, b):
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
                                 nn.Conv2d(b, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True))
        ch = [base_channels * 2 ** i for i in range(depth + 1)]
        self.downs = nn.ModuleList([block(in_channels if i == 0 else ch[i - 1], ch[i]) for i in range(depth + 1)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in range(depth)])
        self.merges = nn.ModuleList([block(ch[i], ch[i]) for i in range(depth)])
        self.head = nn.Conv2d(ch[0], num_classes, 1)

    def forward(self, x):
        for i, down in enumerate(self.downs):
            x = down(x if i == 0 else F.max_pool2d(x, 2))
        for i in reversed(range(len(self.ups))):
            x = self.merges[i](self.ups[i](x))  # no torch.cat with the encoder's map
        return self.head(x)
