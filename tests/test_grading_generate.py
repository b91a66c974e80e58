"""release/ and solutions/ are exactly what regeneration from source/ gives, and nothing secret leaks.

Covers every assignment under assignments/source (iou_nms and unpool_unet).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from cvcourse.grading.feedback import BEGIN, END
from cvcourse.grading.course import list_assignments, nbgrader_cmd, nbgrader_env
from cvcourse.grading.generate import SOLUTION_MARKERS, generate

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "assignments"
NAMES = list_assignments(ASSIGNMENTS)

pytestmark = pytest.mark.slow


def _files(folder: Path) -> dict[str, object]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and ".ipynb_checkpoints" not in path.parts:
            rel = str(path.relative_to(folder))
            out[rel] = json.loads(path.read_text()) if path.suffix == ".ipynb" else path.read_bytes()
    return out


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("regen")
    (tmp / "assignments").mkdir()
    shutil.copy2(ASSIGNMENTS / "nbgrader_config.py", tmp / "assignments" / "nbgrader_config.py")
    shutil.copytree(ASSIGNMENTS / "source", tmp / "assignments" / "source")
    generate(tmp / "assignments", tmp / "solutions", NAMES)
    return tmp


@pytest.mark.parametrize("name", NAMES)
def test_release_matches_regeneration(regenerated, name):
    committed = _files(ASSIGNMENTS / "release" / name)
    assert committed, f"assignments/release/{name} is missing: run python -m cvcourse.grading generate"
    assert committed == _files(regenerated / "assignments" / "release" / name), (
        f"assignments/release/{name} is stale: run python -m cvcourse.grading generate {name} and commit")


@pytest.mark.parametrize("name", NAMES)
def test_solutions_match_regeneration(regenerated, name):
    committed = _files(ROOT / "solutions" / name)
    assert committed, f"solutions/{name} is missing: run python -m cvcourse.grading generate"
    assert committed == _files(regenerated / "solutions" / name), (
        f"solutions/{name} is stale: run python -m cvcourse.grading generate {name} and commit")


def _source_secrets(name: str) -> tuple[list[str], list[str]]:
    """(solution lines, hidden-test lines) of the source notebooks: long enough to be distinctive."""
    sol, hidden, public = [], [], set()
    for path in sorted((ASSIGNMENTS / "source" / name).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            region = None
            for line in cell.source.split("\n"):
                s = line.strip()
                if s in SOLUTION_MARKERS or BEGIN in s or END in s:
                    region = {"### BEGIN SOLUTION": "sol", BEGIN: "hid"}.get(s)
                    continue
                if region is None:
                    public.add(s)  # also shown to students (e.g. a demo cell repeating a test's set-up)
                elif len(s) >= 25 and not s.startswith("#"):
                    (sol if region == "sol" else hidden).append(s)
    return [s for s in sol if s not in public], [s for s in hidden if s not in public]


@pytest.mark.parametrize("name", NAMES)
def test_no_solution_or_hidden_test_leaks_into_release(name):
    text = "\n".join(p.read_text() for p in sorted((ASSIGNMENTS / "release" / name).rglob("*.ipynb")))
    sol, hidden = _source_secrets(name)
    assert sol and hidden, "the source notebook should have solution code and hidden tests"
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    leaked = [line for line in sol + hidden if json.dumps(line)[1:-1] in text]
    assert not leaked, f"release/{name} contains source-only lines: {leaked[:5]}"


@pytest.mark.parametrize("name", NAMES)
def test_solutions_keep_solution_code_and_drop_hidden_tests(name):
    text = "\n".join(p.read_text() for p in sorted((ROOT / "solutions" / name).rglob("*.ipynb")))
    sol, hidden = _source_secrets(name)
    assert all(json.dumps(line)[1:-1] in text for line in sol)
    assert not [line for line in hidden if json.dumps(line)[1:-1] in text]
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text


@pytest.mark.parametrize("name", NAMES)
def test_release_notebooks_fail_only_with_not_implemented_error(name, tmp_path):
    """`nbgrader validate --invert`: no test cell of the release passes; executed, every error is a NotImplementedError."""
    from nbclient import NotebookClient  # noqa: PLC0415

    for path in sorted((ASSIGNMENTS / "release" / name).glob("*.ipynb")):
        work = tmp_path / path.name
        shutil.copy2(path, work)
        proc = subprocess.run(nbgrader_cmd() + ["validate", "--invert", str(work)], cwd=tmp_path,
                              capture_output=True, text=True, env={**nbgrader_env(), "CVCOURSE_FAST": "1"})
        assert "Success! The notebook does not pass any tests." in proc.stdout, proc.stdout[-3000:]
        nb = nbformat.read(work, as_version=4)
        NotebookClient(nb, timeout=300, allow_errors=True, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        errors = [(c.metadata.get("nbgrader", {}).get("grade_id"), o.ename) for c in nb.cells
                  for o in c.get("outputs", []) if o.output_type == "error"]
        assert errors and all(ename == "NotImplementedError" for _, ename in errors), errors
        graded = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
        assert graded <= {gid for gid, _ in errors}, f"test cells that do not fail: {graded - {g for g, _ in errors}}"


@pytest.mark.parametrize("name", NAMES)
def test_deleted_test_cells_can_be_restored(name):
    """nbgrader re-inserts a deleted test cell after the cell before it in the source, and crashes
    (KeyError) unless that cell is itself a test or answer cell: keep demo cells elsewhere."""
    for path in sorted((ASSIGNMENTS / "source" / name).glob("*.ipynb")):
        prev = None
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and prev is not None:
                assert prev.get("grade") or prev.get("solution"), (
                    f"{path.name}: test cell {meta['grade_id']} follows {prev.get('grade_id')}, which is neither a "
                    "test nor an answer cell; nbgrader could not restore it if a student deleted it")
            if meta:
                prev = meta
