"""Sample submissions without nbgrader: the ``# -- base: NAME --`` directive, the build command, and the
static report (every correct sample is clean, every cheating or tampering sample is flagged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cvcourse.grading import static_report, submissions

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "submissions"
RELEASE = ROOT / "assignments" / "release"


def _release_nb(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    for gid, src in [("a", "x = 1"), ("b", "y = 2"), ("c", "z = 3")]:
        cell = nbformat.v4.new_code_cell(src)
        cell.metadata["nbgrader"] = {"grade_id": gid}
        nb.cells.append(cell)
    (tmp_path / "release").mkdir()
    nbformat.write(nb, tmp_path / "release" / "hw.ipynb")
    return tmp_path / "release"


def test_base_directive_applies_the_base_first_and_chains(tmp_path):
    release = _release_nb(tmp_path)
    (tmp_path / "good.py").write_text("# good\n\n# -- cell: a --\nx = 10\n\n# -- cell: b --\ny = 20\n")
    (tmp_path / "mid.py").write_text("# one bug\n# -- base: good --\n\n# -- cell: b --\ny = -1\n")
    (tmp_path / "top.py").write_text("# -- base: mid --\n# -- insert-after: c --\nw = 4\n")
    cells = [c.source for c in submissions.build_submission(release, tmp_path / "top.py")["hw.ipynb"].cells]
    assert cells == ["x = 10", "y = -1", "z = 3", "w = 4"]


def test_base_directive_errors(tmp_path):
    release = _release_nb(tmp_path)
    (tmp_path / "loop1.py").write_text("# -- base: loop2 --\n")
    (tmp_path / "loop2.py").write_text("# -- base: loop1 --\n")
    with pytest.raises(ValueError, match="cycle"):
        submissions.build_submission(release, tmp_path / "loop1.py")
    (tmp_path / "orphan.py").write_text("# -- base: nowhere --\n")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        submissions.build_submission(release, tmp_path / "orphan.py")
    (tmp_path / "late.py").write_text("# -- cell: a --\nx = 1\n# -- base: good --\n")
    with pytest.raises(ValueError, match="before the first section"):
        submissions.build_submission(release, tmp_path / "late.py")


def test_buggy_samples_hold_only_their_bug():
    """Converted samples name a correct base and replace few cells (issue 14: no copies of a correct sample)."""
    for folder in SAMPLES.iterdir():
        for path in folder.glob("bug_*.py"):
            text = path.read_text()
            assert submissions.base_of(text), f"{path.name} should start from a correct sample (# -- base: ... --)"
            assert len(submissions.parse_submission(text)) <= 3, f"{path.name} repeats cells of its base"


def test_build_command_writes_the_notebook(tmp_path):
    out = tmp_path / "nb.ipynb"
    proc = subprocess.run([sys.executable, "-m", "cvcourse.grading.submissions", "build", "iou_nms",
                           str(SAMPLES / "iou_nms" / "bug_nms_ge.py"), str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    nb = nbformat.read(out, as_version=4)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells}
    assert "iou[i] < iou_threshold" in cells["nms"] and "torch.maximum" in cells["box_iou"]  # bug + base


def _reports(assignment: str) -> dict[str, list]:
    release_dir = RELEASE / assignment
    release = nbformat.read(next(release_dir.glob("*.ipynb")), as_version=4)
    out = {}
    for path in sorted((SAMPLES / assignment).glob("*.py")):
        (nb,) = submissions.build_submission(release_dir, path).values()
        out[path.stem] = static_report.report(nb, release)
    return out


@pytest.mark.parametrize("assignment", ["iou_nms", "unpool_unet"])
def test_static_report_is_clean_for_correct_and_buggy_samples(assignment):
    for name, findings in _reports(assignment).items():
        if name.startswith(("correct", "bug_", "maxunpool_", "convt_", "bed_", "unet_")):
            assert not findings, f"{name}: {[str(f) for f in findings]}"


@pytest.mark.parametrize("assignment", ["iou_nms", "unpool_unet"])
def test_static_report_flags_every_cheat_and_tamper(assignment):
    for name, findings in _reports(assignment).items():
        if name.startswith(("cheat", "tamper", "attack", "kill")):
            assert findings, f"{name}: no finding"


def test_static_report_names_the_constructs_with_cell_and_line():
    reports = _reports("iou_nms")
    text = {name: " | ".join(str(f) for f in fs) for name, fs in reports.items()}
    assert "cell box_area line 9: IPython input transformers" in text["tamper_input_transformer"]
    assert "assigns the name `checks`" in text["tamper_rebind_checks"]
    assert "derives from torch.Tensor" in text["tamper_tensor_subclass"]
    assert "exec" in text["cheat_private_helpers"] and "cvcourse.ops" in text["cheat_private_helpers"]
    assert "assigns an attribute of a library module (torch.equal)" in text["tamper_comparisons"]
    assert "static report:" in static_report.summary(reports["cheat_containers"])


def test_static_report_sees_magics_and_each_listed_construct():
    code = ("!ln -s /etc/passwd x\nimport sys, os, ctypes, gc\nfrom torch.nn.grad import conv2d_input\n"
            "sys.modules['x'] = 1\nos.symlink('a', 'b')\nos.mkfifo('f')\nf = sys._getframe()\n"
            "eval('1')\nimport torch.utils._python_dispatch as pd\nsys.displayhook = print\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    found = " | ".join(f.construct for f in static_report.report(nb))
    for needle in ("the IPython shell", "ctypes", "gc", "torch.nn.grad", "sys.modules", "os.symlink", "os.mkfifo",
                   "frames", "eval", "dispatch modes", "display hook"):
        assert needle in found, (needle, found)
    lines = {f.line for f in static_report.report(nb)}
    assert {1, 4, 5, 6, 7} <= lines
    assert json.dumps([str(f) for f in static_report.report(nb)])  # printable
