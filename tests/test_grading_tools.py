"""The instructor-side tools around ``grade`` that need no kernel: table, progress, samples, merge guards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cvcourse.grading.autograde import Graded, StudentResult, check_student_ids
from cvcourse.grading.gradebook import import_files
from cvcourse.grading.submissions import write_samples
from cvcourse.grading.table import WIDTH, format_flags, format_progress, format_table, tasks_of

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "assignments" / "release" / "iou_nms"
SAMPLES = ROOT / "tests" / "submissions" / "iou_nms"

#: iou_nms test cells and their points, read off the release notebook by hand (README table of tasks)
POINTS = {"test_box_area": 2, "test_box_iou": 2, "test_box_iou_edges": 3, "test_box_iou_degenerate": 1,
          "test_nms": 2, "test_nms_threshold": 2, "test_nms_chain": 2, "test_nms_edges": 1, "test_batched_nms": 3}


def test_tasks_are_the_answer_cells_above_the_tests():
    tasks = tasks_of(RELEASE)
    assert set(tasks) == set(POINTS)
    assert {t for g, t in tasks.items() if g.startswith("test_box_iou")} == {"box_iou"}
    assert [tasks[g] for g in ("test_box_area", "test_nms_edges", "test_batched_nms")] == ["box_area", "nms",
                                                                                             "batched_nms"]


def test_table_has_one_column_per_task_and_fits_100_columns():
    full = StudentResult("a_student_with_a_long_name_x", {g: (float(p), float(p)) for g, p in POINTS.items()})
    part = StudentResult("bob", {**{g: (float(p), float(p)) for g, p in POINTS.items()},
                                 "test_box_iou_edges": (0.0, 3.0)}, flags=["test_nms: KernelDied: " + "x" * 300])
    table = format_table({"a_student_with_a_long_name_x": full, "bob": part}, tasks_of(RELEASE))
    lines = table.splitlines()
    assert max(len(ln) for ln in lines) <= WIDTH, table
    assert lines[0].split() == ["student", "box_area", "box_iou", "nms", "batched_nms", "total"]
    bob = lines[3].split()
    assert bob[:6] == ["bob", "2/2", "3/6", "7/7", "3/3", "15/18"] and "needs a look" in lines[3]
    flags = format_flags({"bob": part}, width=WIDTH)
    assert all(len(ln) <= WIDTH for ln in flags.splitlines()) and flags.endswith("...")
    assert len(format_flags({"bob": part})) > 300  # uncut without a width


def test_progress_line():
    g = Graded(StudentResult("alice", {"t": (2.0, 3.0)}, seconds=12.34), where="tcp://127.0.0.1:4000",
               attempts=["KilledWorker: ..."])
    assert format_progress(3, 40, g) == "[ 3/40] alice  2/3  12.3 s  on tcp://127.0.0.1:4000; after 1 failed attempt(s)"
    lost = Graded(StudentResult("bob", flags=["not graded: 2 attempts failed"]))
    assert "NOT GRADED" in format_progress(1, 1, lost)


def test_samples_become_notebooks(tmp_path):
    expected = sorted(p.stem for p in SAMPLES.iterdir() if p.suffix in (".py", ".ipynb") and not p.name.startswith("_"))
    written = write_samples(RELEASE, SAMPLES, tmp_path / "flat")
    assert sorted(p.stem for p in written) == expected and all(p.parent == tmp_path / "flat" for p in written)
    nb = nbformat.read(tmp_path / "flat" / "bug_nms_ge.ipynb", as_version=4)
    nms = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "nms")
    assert "NotImplementedError" not in nms.source  # its base's nms, as the sample says
    proc = subprocess.run([sys.executable, "-m", "cvcourse.grading", "samples", "iou_nms", str(SAMPLES / "bug_nms_ge.py"),
                           str(tmp_path / "sub"), "--submitted", "--course", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "sub" / "bug_nms_ge" / "iou_nms" / "iou_nms.ipynb").is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no sample submissions"):
        write_samples(RELEASE, tmp_path / "empty", tmp_path / "x")


@pytest.mark.parametrize("bad", ["*", "a?", "[ab]", "x/y", ".hidden", ""])
def test_student_ids_nbgrader_would_misread_are_refused(bad):
    with pytest.raises(ValueError, match="student ids"):
        check_student_ids(["alice", bad])


@pytest.mark.parametrize("rel", ["submitted/alice/iou_nms/../../bob/iou_nms/x.ipynb", "/etc/passwd",
                                 "gradebook.db", "autograded/bob/iou_nms/x.ipynb", "source/iou_nms/iou_nms.ipynb"])
def test_merging_writes_only_into_the_students_own_folders(tmp_path, rel):
    with pytest.raises(ValueError, match="refusing"):
        import_files(tmp_path, "iou_nms", "alice", {rel: b"x"})
    assert not any(tmp_path.rglob("*.ipynb"))
