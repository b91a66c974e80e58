"""Data for the course, offline first.

- :mod:`cvcourse.data.photos`  real photos bundled with scikit-image / scikit-learn, by name
- :mod:`cvcourse.data.shapes`  synthetic shapes for classification, segmentation (also fine structures) and detection
- :mod:`cvcourse.data.patches` "which photo is this patch from?", a small natural-image task
- :mod:`cvcourse.data.digits`  scikit-learn's 8x8 digits as a small image-classification set
- :mod:`cvcourse.data.tensors` ``materialise``: stack every item of a data set into tensors, once
- :mod:`cvcourse.data.real`    CIFAR-10, Oxford-IIIT Pet and Penn-Fudan when online (else a clear error)
"""

from cvcourse.data.digits import DigitsDataset
from cvcourse.data.patches import PATCH_PHOTOS, PhotoPatches
from cvcourse.data.photos import PHOTO_NAMES, TEXTURE_NAMES, describe_photo, load_photo, photo_tensor, stereo_motorcycle
from cvcourse.data.real import (
    PENN_FUDAN_URL,
    DatasetUnavailableError,
    PennFudanPed,
    cifar10,
    oxford_pets,
    penn_fudan,
)
from cvcourse.data.tensors import materialise
from cvcourse.data.shapes import (
    FINE_CLASSES,
    SHAPE_CLASSES,
    FineShapesSegmentation,
    Scene,
    ShapesClassification,
    ShapesDetection,
    ShapesSegmentation,
    collate_detection,
    masks_to_boxes,
    render_fine_scene,
    render_scene,
    shape_mask,
)

__all__ = [
    "PATCH_PHOTOS",
    "PhotoPatches",
    "DigitsDataset",
    "PENN_FUDAN_URL",
    "DatasetUnavailableError",
    "PennFudanPed",
    "cifar10",
    "oxford_pets",
    "penn_fudan",
    "PHOTO_NAMES",
    "TEXTURE_NAMES",
    "describe_photo",
    "load_photo",
    "photo_tensor",
    "stereo_motorcycle",
    "FINE_CLASSES",
    "FineShapesSegmentation",
    "SHAPE_CLASSES",
    "Scene",
    "ShapesClassification",
    "ShapesDetection",
    "ShapesSegmentation",
    "collate_detection",
    "masks_to_boxes",
    "render_fine_scene",
    "render_scene",
    "shape_mask",
    "materialise",
]
