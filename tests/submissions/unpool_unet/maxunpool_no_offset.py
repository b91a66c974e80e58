# Bug: max_unpool2d scatters into the whole flattened tensor, ignoring that the indices restart at 0
# for every image and channel. Passes the visible 1x1-channel example, fails the hidden batch test.

# -- base: correct_vectorised --

# -- cell: max_unpool2d --
def max_unpool2d(x, indices, output_size):
    B, C, h, w = x.shape
    H, W = output_size
    out = torch.zeros(B * C * H * W, dtype=x.dtype)
    out[indices.flatten()] = x.flatten()
    return out.reshape(B, C, H, W)

# -- cell: unet --
class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        raise NotImplementedError("not done")
