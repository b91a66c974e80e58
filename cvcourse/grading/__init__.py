"""cvcourse.grading (being written)."""
