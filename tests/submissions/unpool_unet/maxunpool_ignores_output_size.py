# Bug: max_unpool2d assumes the output is exactly twice the pooled size and ignores output_size.
# Right only when the map was pooled by exactly 2 from an even size: loses both hidden max-unpooling cells
# (odd sizes; kernel 3 pooling), keeps the visible one.

# -- base: correct_vectorised --

# -- cell: max_unpool2d --
def max_unpool2d(x, indices, output_size):
    B, C, h, w = x.shape
    H, W = 2 * h, 2 * w
    out = torch.zeros(B, C, H * W, dtype=x.dtype)
    out.scatter_(2, indices.reshape(B, C, -1), x.reshape(B, C, -1))
    return out.reshape(B, C, H, W)

# -- cell: unet --
class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        raise NotImplementedError("not done")
