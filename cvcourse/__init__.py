"""cvcourse: the helper library of an open computer-vision course.

Modules follow the course's table of contents:

- ``cvcourse.config``     fast mode, device choice, seeding
- ``cvcourse.ops``        boxes, IoU, NMS, RoI pooling/align, unpooling, transposed convolution
- ``cvcourse.features``   classical features: SIFT, bag of visual words
- ``cvcourse.models``     CNN and transformer blocks and backbones, pretrained EfficientNet-Lite0
- ``cvcourse.detection``  anchors, box coding, RPN, RoI heads, selective search, mAP
- ``cvcourse.data``       offline photos, synthetic shapes, optional real data sets
- ``cvcourse.explain``    Grad-CAM, guided backpropagation (paper notebook lectures/papers/grad_cam)
- ``cvcourse.train``      a small fit/evaluate loop
- ``cvcourse.transfer``   normalised inputs, partly frozen bodies, frozen features (transfer learning)
- ``cvcourse.viz``        plotting helpers
"""

from cvcourse.config import device, is_fast, pick, seed_everything

__version__ = "0.1.0"

__all__ = ["is_fast", "device", "pick", "seed_everything", "__version__"]
