# Bug: the U-Net's convolutions have no padding, so each 3x3 conv shrinks the map (classic paper
# layout without cropping logic): the output is smaller than the input. Unpooling functions correct.
# Expected: loses the U-Net visible, shapes and learning cells.

# -- base: correct_vectorised --

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
