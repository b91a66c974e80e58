"""cvcourse.data (being written)."""
