# Correct unpooling that checks every argument against the rules the assignment states and raises
# ValueError/TypeError on bad input; every hidden input keeps those rules. U-Net not done (keeps the
# batch short): only the unpooling cells are checked.

# -- base: correct_vectorised --

# -- insert-after: nearest_unpool2d --
def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_4d(x, name):
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"{name} must be a 4-D tensor (B, C, H, W), got {getattr(x, 'shape', type(x))}")


_nearest = nearest_unpool2d


def nearest_unpool2d(x, scale_factor=2):
    _check_4d(x, "x")
    _check_int(scale_factor, "scale_factor", 1)
    return _nearest(x, scale_factor)

# -- insert-after: max_unpool2d --
_max_unpool = max_unpool2d


def max_unpool2d(x, indices, output_size):
    _check_4d(x, "x")
    if not isinstance(indices, torch.Tensor) or indices.dtype != torch.int64 or indices.shape != x.shape:
        raise ValueError("indices must be an int64 tensor shaped like x")
    H, W = (int(v) for v in tuple(output_size)[-2:])
    if H < x.shape[2] or W < x.shape[3] or (indices.numel() and not 0 <= int(indices.min()) <= int(indices.max()) < H * W):
        raise ValueError(f"output_size {(H, W)} does not fit x of shape {tuple(x.shape)} and its indices")
    return _max_unpool(x, indices, output_size)

# -- insert-after: conv_transpose2d --
_conv_t = conv_transpose2d


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0):
    _check_4d(x, "x")
    _check_4d(weight, "weight")
    if weight.shape[0] != x.shape[1]:
        raise ValueError(f"weight must be (C_in={x.shape[1]}, C_out, kH, kW), got {tuple(weight.shape)}")
    if bias is not None and (not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (weight.shape[1],)):
        raise ValueError(f"bias must have shape ({weight.shape[1]},)")
    _check_int(stride, "stride", 1)
    _check_int(padding, "padding", 0)
    for n, k in ((x.shape[2], weight.shape[2]), (x.shape[3], weight.shape[3])):
        if (n - 1) * stride + k - 2 * padding < 1:
            raise ValueError(f"padding {padding} leaves no output for size {n}, kernel {k}, stride {stride}")
    return _conv_t(x, weight, bias, stride, padding)

# -- cell: unet --
class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__()
        raise NotImplementedError("not done")
