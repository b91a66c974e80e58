# Cheating: keeps private references to the library (imported under another name, default argument)
# so that patching F.* alone would not catch them; the hidden tests still do.

# -- cell: nearest_unpool2d --
from torch.nn.functional import interpolate as _resize


def nearest_unpool2d(x, scale_factor=2):
    return _resize(x, scale_factor=scale_factor)

# -- cell: max_unpool2d --
def max_unpool2d(x, indices, output_size, _unpool=F.max_unpool2d):
    return _unpool(x, indices, 2, output_size=output_size)

# -- cell: conv_transpose2d --
import torch.nn.functional as _fn


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0):
    return _fn.conv_transpose2d(x, weight, bias, stride=stride, padding=padding)

# -- cell: unet --
class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        raise NotImplementedError("not done")
