# Crash: nms kills its own kernel on the first call; box_area and box_iou are right.

# -- base: correct_vectorised --

# -- cell: nms --
import os


def nms(boxes, scores, iou_threshold):
    os._exit(1)
