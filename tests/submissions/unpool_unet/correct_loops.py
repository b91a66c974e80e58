# Correct: plain Python loops everywhere (scalar loops in conv_transpose2d) and a BatchNorm U-Net with
# transposed convolutions. Expected: full marks.

# -- cell: nearest_unpool2d --
def nearest_unpool2d(x, scale_factor=2):
    B, C, H, W = x.shape
    s = scale_factor
    out = torch.zeros(B, C, H * s, W * s, dtype=x.dtype)
    for i in range(H * s):
        for j in range(W * s):
            out[:, :, i, j] = x[:, :, i // s, j // s]
    return out

# -- cell: max_unpool2d --
def max_unpool2d(x, indices, output_size):
    B, C, h, w = x.shape
    H, W = output_size[0], output_size[1]
    out = torch.zeros(B, C, H, W, dtype=x.dtype)
    for b in range(B):
        for c in range(C):
            for i in range(h):
                for j in range(w):
                    k = int(indices[b, c, i, j])
                    out[b, c, k // W, k % W] = x[b, c, i, j]
    return out

# -- cell: conv_transpose2d --
def conv_transpose2d(x, weight, bias=None, stride=1, padding=0):
    B, C_in, H, W = x.shape
    C_out, kH, kW = weight.shape[1], weight.shape[2], weight.shape[3]
    Hf = (H - 1) * stride + kH
    Wf = (W - 1) * stride + kW
    full = torch.zeros(B, C_out, Hf, Wf, dtype=torch.result_type(x, weight))
    for b in range(B):
        for ci in range(C_in):
            for i in range(H):
                for j in range(W):
                    for co in range(C_out):
                        for u in range(kH):
                            for v in range(kW):
                                full[b, co, i * stride + u, j * stride + v] += x[b, ci, i, j] * weight[ci, co, u, v]
    out = full[:, :, padding:Hf - padding, padding:Wf - padding].clone()
    if bias is not None:
        for co in range(C_out):
            out[:, co] += bias[co]
    return out

# -- cell: unet --
class UNet(nn.Module):
    """BatchNorm, transposed convolutions, written out level by level with lists."""

    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        ch = [base_channels * 2 ** i for i in range(depth + 1)]
        def conv(a, b):
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(),
                                 nn.Conv2d(b, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.downs = nn.ModuleList([conv(in_channels if i == 0 else ch[i - 1], ch[i]) for i in range(depth + 1)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 2, 2) for i in range(depth)])
        self.convs = nn.ModuleList([conv(2 * ch[i], ch[i]) for i in range(depth)])
        self.final = nn.Conv2d(ch[0], num_classes, 1)

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x if i == 0 else self.pool(x))
            skips.append(x)
        for i in reversed(range(len(self.ups))):
            x = self.convs[i](torch.cat([skips[i], self.ups[i](x)], dim=1))
        return self.final(x)
