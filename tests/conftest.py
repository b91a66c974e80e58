"""Shared fixtures: every device test runs on the CPU and, where one is present, on CUDA."""

import pytest
import torch

# Sample student submissions are graded by the grading tests, not executed by nbval as lectures.
collect_ignore_glob = ["submissions/*"]

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def fast_mode_one_thread(monkeypatch):
    """The notebooks' fast-mode settings as CI runs them (``CVCOURSE_FAST=1``, one torch thread), for the claims
    tests of tests/test_lecture_claims.py and tests/test_paper_claims.py; the thread count is restored after."""
    monkeypatch.setenv("CVCOURSE_FAST", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


def browser_replaces_nbval(items: list) -> tuple[list, list]:
    """Split ``items`` into (kept, deselected): a lecture's nbval cells are deselected when the browser test of that
    lecture (tests/test_browser.py, issue 10) was collected and selected, since it runs all the lecture's cells in
    JupyterLab and fails on any error output, as nbval-lax does. Without playwright or Chromium that module skips
    at import, collects nothing, and nbval keeps the lecture. Deterministic in the items alone, so every xdist
    worker deselects the same (loadfile and loadgroup alike)."""
    in_browser = {item.callspec.params["name"] for item in items
                  if getattr(item, "originalname", None) == "test_lecture_widgets_in_browser"}
    def is_nbval_of(item) -> bool:
        path = getattr(item, "path", None)
        return (path is not None and path.suffix == ".ipynb" and path.parent.name == "lectures"
                and path.name in in_browser)
    kept = [item for item in items if not is_nbval_of(item)]
    return kept, [item for item in items if is_nbval_of(item)]


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: only a browser test that will run replaces nbval
def pytest_collection_modifyitems(config, items):
    kept, deselected = browser_replaces_nbval(items)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
