# Cheating: calls F.interpolate, nn.MaxUnpool2d and F.conv_transpose2d. Visible tests pass (they do not
# guard), every hidden unpooling cell gets zero with a message naming the forbidden call.

# -- cell: nearest_unpool2d --
def nearest_unpool2d(x, scale_factor=2):
    return F.interpolate(x, scale_factor=scale_factor, mode="nearest")

# -- cell: max_unpool2d --
def max_unpool2d(x, indices, output_size):
    return nn.MaxUnpool2d(2)(x, indices, output_size=output_size)

# -- cell: conv_transpose2d --
def conv_transpose2d(x, weight, bias=None, stride=1, padding=0):
    return F.conv_transpose2d(x, weight, bias, stride=stride, padding=padding)

# -- cell: unet --
class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        raise NotImplementedError("not done")
