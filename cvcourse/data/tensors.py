"""Materialise a data set: every item computed once and stacked into tensors (lectures 4, 5, 8).

Small offline data sets (digits, shapes, photo patches) fit in memory. Stacking them once makes every
training run of a comparison see identical tensors, and makes epochs cheap: no item is re-rendered.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

__all__ = ["materialise"]


def _as_tensor(value: Any, index: int, field: int) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float, bool)) or hasattr(value, "__array__"):
        return torch.as_tensor(value)
    raise TypeError(f"item {index}, field {field}: expected a tensor, an array or a number, got "
                    f"{type(value).__name__}; pass fields= to pick tensors out of it")


def materialise(dataset: Dataset | Sequence, fields: Callable[[Any], Sequence[Any]] | None = None) -> TensorDataset:
    """Compute every item of ``dataset`` once and stack each field into one tensor.

    Args:
        dataset: a map-style data set (``len`` and integer indexing) whose items are tuples such as
            ``(image (Tensor[C, H, W]), label (int))``.
        fields: optional function from one item to the tuple of fields to keep, for items that are not a
            flat tuple (e.g. ``lambda item: (item[0], item[1]["boxes"][0])`` for a detection data set).

    Returns:
        A ``TensorDataset``; ``.tensors`` holds one tensor per field, ``(N, ...)`` each (labels become a
        ``(N,)`` integer tensor).

    Raises:
        ValueError: for an empty data set, or items with differing numbers of fields or shapes.
        TypeError: for a field that is not a tensor, an array or a number.
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("cannot materialise an empty data set")
    columns: list[list[Tensor]] | None = None
    for i in range(n):
        item = dataset[i]
        item = fields(item) if fields is not None else item
        if isinstance(item, Tensor) or not isinstance(item, (tuple, list)):
            item = (item,)
        values = [_as_tensor(v, i, j) for j, v in enumerate(item)]
        if columns is None:
            columns = [[] for _ in values]
        if len(values) != len(columns):
            raise ValueError(f"item {i} has {len(values)} fields, item 0 had {len(columns)}")
        for column, v in zip(columns, values):
            column.append(v)
    stacked = []
    for j, column in enumerate(columns):
        shapes = {tuple(t.shape) for t in column}
        if len(shapes) > 1:
            raise ValueError(f"field {j} has items of different shapes {sorted(shapes)[:3]}; resize them first")
        stacked.append(torch.stack(column))
    return TensorDataset(*stacked)
