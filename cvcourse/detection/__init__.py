"""cvcourse.detection (being written)."""
