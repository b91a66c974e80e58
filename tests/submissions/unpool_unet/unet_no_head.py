# Bug: the U-Net has no final 1x1 convolution: the last decoder block's base_channels feature maps are
# returned as the logits (forgetting the classifier). Unpooling functions correct.
# Expected: loses the U-Net visible, shapes and learning cells (the learning test's precondition checks for
# num_classes output channels before training).

# -- base: correct_vectorised --

# -- cell: unet --
class UNet(nn.Module):
    """Encoder, decoder and skips as in the paper, but no classifier at the end."""

    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        ch = [base_channels * 2 ** i for i in range(depth + 1)]
        def conv(a, b):
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(),
                                 nn.Conv2d(b, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU())
        self.downs = nn.ModuleList([conv(in_channels if i == 0 else ch[i - 1], ch[i]) for i in range(depth + 1)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in range(depth)])
        self.convs = nn.ModuleList([conv(2 * ch[i], ch[i]) for i in range(depth)])

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for i in reversed(range(len(self.ups))):
            x = self.convs[i](torch.cat([skips[i], self.ups[i](x)], dim=1))
        return x  # (B, base_channels, H, W): the 1x1 convolution to num_classes is missing
