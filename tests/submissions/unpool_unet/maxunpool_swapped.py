# Bug: max_unpool2d decodes the flat index with the height instead of the width (row = k % H,
# col = k // H), i.e. rows and columns swapped. Fails the visible and the hidden max-unpooling cells.

# -- base: correct_vectorised --

# -- cell: max_unpool2d --
def max_unpool2d(x, indices, output_size):
    B, C, h, w = x.shape
    H, W = output_size
    out = torch.zeros(B, C, H, W, dtype=x.dtype)
    b = torch.arange(B).view(B, 1, 1, 1).expand_as(indices)
    c = torch.arange(C).view(1, C, 1, 1).expand_as(indices)
    out[b, c, indices % H, indices // H] = x
    return out

# -- cell: unet --
class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        raise NotImplementedError("not done")
