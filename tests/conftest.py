"""Shared fixtures: every device test runs on the CPU and, where one is present, on CUDA."""

import pytest
import torch

# Sample student submissions are graded by the grading tests, not executed by nbval as lectures.
collect_ignore_glob = ["submissions/*"]

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)
