"""Course-wide settings, read in one place.

Fast mode shrinks data sets and epochs so that every notebook runs in about a minute on a 2-core CPU.
``CVCOURSE_FAST`` decides it: ``1``/``true``/``yes``/``on`` force fast mode, ``0``/``false``/``no``/``off`` force
the full settings, and unset (or empty) means *fast on a machine without a GPU, full with one*.
:func:`is_fast` is the one place that reads it (every call re-reads the environment); :func:`mode` says
what it chose and why.
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
_FALSE = {"0", "false", "no", "off"}


def _gpu_available() -> bool:
    """Whether :func:`device` would pick an accelerator (CUDA or Apple's MPS) rather than the CPU."""
    return device().type != "cpu"


def mode() -> tuple[bool, str]:
    """Fast mode on or off, and the reason, e.g. ``(True, "CVCOURSE_FAST unset, no GPU found")``.

    Raises:
        ValueError: ``CVCOURSE_FAST`` holds something other than 1/0/true/false/yes/no/on/off or nothing.
    """
    raw = os.environ.get("CVCOURSE_FAST", "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True, f"CVCOURSE_FAST={raw}"
    if value in _FALSE:
        return False, f"CVCOURSE_FAST={raw}"
    if value:
        raise ValueError(f"CVCOURSE_FAST must be 1/true/yes/on (fast), 0/false/no/off (full) or unset (fast "
                         f"without a GPU, full with one), got {raw!r}")
    if _gpu_available():
        return False, f"CVCOURSE_FAST unset, GPU found ({device().type})"
    return True, "CVCOURSE_FAST unset, no GPU found"


def is_fast() -> bool:
    """Whether fast mode is on (see the module docstring); re-reads ``CVCOURSE_FAST`` at every call."""
    return mode()[0]


def describe_mode() -> str:
    """One line for people: ``"fast mode (CVCOURSE_FAST unset, no GPU found)"``."""
    fast, why = mode()
    return f"{'fast' if fast else 'full'} mode ({why})"


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
