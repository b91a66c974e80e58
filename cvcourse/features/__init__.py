"""Classical features (lecture 1): SIFT keypoints and descriptors, matching with RANSAC, bag of visual words.

- :mod:`cvcourse.features.sift_pipeline` scale space, DoG extrema, orientation, 128-d descriptor (vectorised PyTorch)
- :mod:`cvcourse.features.matching`      ratio-test matching, DLT and RANSAC homography
- :mod:`cvcourse.features.bovw`          dense SIFT, visual vocabulary (k-means) and word histograms
- :mod:`cvcourse.features.colour`        joint RGB histograms (lecture 6's trivial baseline)
"""

from cvcourse.features.bovw import BagOfVisualWords, dense_keypoints, dense_sift
from cvcourse.features.colour import colour_histogram
from cvcourse.features.matching import (
    apply_homography,
    homography_dlt,
    match_descriptors,
    ransac_homography,
    repeatability,
    stereo_match_correct,
)
from cvcourse.features.sift_pipeline import (
    KEYPOINT_FIELDS,
    SiftResult,
    detect_and_compute,
    difference_of_gaussians,
    gaussian_blur,
    gaussian_scale_space,
    keypoints_from_cv2,
    keypoints_to_cv2,
    scale_space_extrema,
    sift,
    sift_descriptors,
    to_gray_tensor,
)

__all__ = [
    "BagOfVisualWords",
    "dense_keypoints",
    "dense_sift",
    "colour_histogram",
    "apply_homography",
    "homography_dlt",
    "match_descriptors",
    "ransac_homography",
    "repeatability",
    "stereo_match_correct",
    "KEYPOINT_FIELDS",
    "SiftResult",
    "detect_and_compute",
    "difference_of_gaussians",
    "gaussian_blur",
    "gaussian_scale_space",
    "keypoints_from_cv2",
    "keypoints_to_cv2",
    "scale_space_extrema",
    "sift",
    "sift_descriptors",
    "to_gray_tensor",
]
