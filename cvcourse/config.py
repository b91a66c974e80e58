"""Course-wide settings, read in one place.

``CVCOURSE_FAST=1`` shrinks data sets and epochs so that every notebook runs in about a minute on a
2-core CPU (used by CI). Unset, notebooks use their full settings and the best available device.
``CVCOURSE_DATA`` is the cache folder for optional downloaded data sets (default ``~/.cvcourse``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


#: True when ``CVCOURSE_FAST`` is set to 1/true/yes/on.
FAST: bool = _env_flag("CVCOURSE_FAST")


def is_fast() -> bool:
    """Whether fast mode is on, re-reading the environment (for code that runs after a change)."""
    return _env_flag("CVCOURSE_FAST")


def pick(full: T, fast: T) -> T:
    """Return ``fast`` in fast mode and ``full`` otherwise: ``epochs = pick(full=30, fast=2)``."""
    return fast if is_fast() else full


def data_root() -> Path:
    """Folder where optional downloaded data sets are cached (``CVCOURSE_DATA``, default ``~/.cvcourse``)."""
    return Path(os.environ.get("CVCOURSE_DATA", Path.home() / ".cvcourse")).expanduser()


def device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
