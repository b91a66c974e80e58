"""cvcourse.ops (being written)."""
