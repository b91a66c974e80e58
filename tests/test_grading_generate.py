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


# The rules each assignment states for its inputs (issue 14: a student who validates them, as cvcourse.ops does,
# must never lose points). Each returns what is wrong with one call's arguments, or "".
RULES = '''
import math as _math
def _boxes_rule(b, name):
    if type(b) is not torch.Tensor or b.dim() != 2 or b.shape[1] != 4:
        return f"{name} is not a Tensor[N, 4]"
    if b.dtype == torch.bool or b.is_complex() or (b.is_floating_point() and not bool(torch.isfinite(b).all())):
        return f"{name} is not real and finite"
    if bool(((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])).any()):
        return f"{name} has a box with x2 < x1 or y2 < y1"
    return ""
def _nms_rule(boxes, scores, thr, idxs=None):
    bad = _boxes_rule(boxes, "boxes")
    if bad:
        return bad
    if type(scores) is not torch.Tensor or tuple(scores.shape) != (len(boxes),) or not scores.is_floating_point():
        return "scores is not a float Tensor[N]"
    if len(set(scores.tolist())) != len(scores):
        return "scores are not distinct"
    if type(thr) not in (int, float) or not 0 <= thr <= 1:
        return "iou_threshold is not a number in [0, 1]"
    if idxs is not None and (type(idxs) is not torch.Tensor or idxs.dtype != torch.int64 or tuple(idxs.shape) != (len(boxes),)):
        return "idxs is not an int64 Tensor[N]"
    return ""
def _int_rule(v, name, low):
    return "" if type(v) is int and v >= low else f"{name} = {v!r} is not an int >= {low}"
def _4d(x, name):
    return "" if type(x) is torch.Tensor and x.dim() == 4 else f"{name} is not a 4-D tensor"
def _conv_t_rule(x, weight, bias=None, stride=1, padding=0):
    bad = _4d(x, "x") or _4d(weight, "weight") or _int_rule(stride, "stride", 1) or _int_rule(padding, "padding", 0)
    if bad:
        return bad
    if weight.shape[0] != x.shape[1] or (bias is not None and tuple(bias.shape) != (weight.shape[1],)):
        return "weight or bias does not fit x"
    if min((x.shape[2] - 1) * stride + weight.shape[2], (x.shape[3] - 1) * stride + weight.shape[3]) - 2 * padding < 1:
        return "padding leaves no output"
    return ""
def _unpool_rule(x, indices, output_size):
    bad = _4d(x, "x")
    if bad:
        return bad
    if type(indices) is not torch.Tensor or indices.dtype != torch.int64 or indices.shape != x.shape:
        return "indices is not an int64 tensor shaped like x"
    H, W = (int(v) for v in tuple(output_size)[-2:])
    if H < x.shape[2] or W < x.shape[3] or (indices.numel() and not 0 <= int(indices.min()) <= int(indices.max()) < H * W):
        return "output_size does not fit x and its indices"
    return ""
_RULES = {
    "box_area": lambda boxes: _boxes_rule(boxes, "boxes"),
    "box_iou": lambda b1, b2: _boxes_rule(b1, "boxes1") or _boxes_rule(b2, "boxes2"),
    "nms": lambda boxes, scores, iou_threshold: _nms_rule(boxes, scores, iou_threshold),
    "batched_nms": lambda boxes, scores, idxs, iou_threshold: _nms_rule(boxes, scores, iou_threshold, idxs),
    "nearest_unpool2d": lambda x, scale_factor=2: _4d(x, "x") or _int_rule(scale_factor, "scale_factor", 1),
    "max_unpool2d": _unpool_rule,
    "conv_transpose2d": _conv_t_rule,
}
_violations = []
def _validated(fn):
    rule = _RULES[fn.__name__]
    def checked(*args, **kwargs):
        bad = rule(*args, **kwargs)
        if bad:
            _violations.append(f"{fn.__name__}: {bad}")
        return fn(*args, **kwargs)
    checked.__name__ = fn.__name__
    return checked
'''
#: Cells of the source notebooks left out of this run (the U-Net's training is not about input rules).
SKIP_CELLS = {"unet", "test_unet_visible", "test_unet_shapes", "test_unet_grads", "test_unet_learns", "demo_15"}


@pytest.mark.parametrize("name", NAMES)
def test_hidden_inputs_keep_the_stated_rules(name, tmp_path):
    """Run the source notebook (solutions and hidden tests) with every graded function wrapped in a check of
    the assignment's stated input rules; no hidden input may break them, and the solution passes every test."""
    from nbclient import NotebookClient  # noqa: PLC0415

    for path in sorted((ASSIGNMENTS / "source" / name).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = []
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in SKIP_CELLS:
                continue
            cells.append(cell)
            if gid == "setup":
                cells.append(nbformat.v4.new_code_cell(RULES))
            elif cell.metadata.get("nbgrader", {}).get("solution") and gid != "unet":
                cells.append(nbformat.v4.new_code_cell(f"{gid} = _validated({gid})"))
        cells.append(nbformat.v4.new_code_cell("import json\nprint('RULES:' + json.dumps(_violations))"))
        nb.cells = cells
        import os  # noqa: PLC0415

        env_before = os.environ.get("NBGRADER_EXECUTION")
        os.environ["NBGRADER_EXECUTION"] = "autograde"
        try:
            NotebookClient(nb, timeout=300, kernel_name="python3",
                           resources={"metadata": {"path": str(tmp_path)}}).execute()
        finally:
            if env_before is None:
                os.environ.pop("NBGRADER_EXECUTION", None)
            else:
                os.environ["NBGRADER_EXECUTION"] = env_before
        text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
        violations = json.loads(text.split("RULES:", 1)[1])
        assert violations == [], f"{path.name}: hidden inputs break the stated rules: {sorted(set(violations))}"
