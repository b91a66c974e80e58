# Bug: bed-of-nails instead of nearest (value in the top-left corner, zeros elsewhere). U-Net not done.
# Expected: loses both nearest cells; the other unpooling cells full.

# -- base: correct_vectorised --

# -- cell: nearest_unpool2d --
def nearest_unpool2d(x, scale_factor=2):
    B, C, H, W = x.shape
    out = torch.zeros(B, C, H * scale_factor, W * scale_factor, dtype=x.dtype)
    out[:, :, ::scale_factor, ::scale_factor] = x
    return out

# -- cell: unet --
class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        raise NotImplementedError("not done")
