"""cvcourse.features (being written)."""
