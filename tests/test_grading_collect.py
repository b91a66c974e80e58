"""``nbgrader zip_collect`` with cvcourse.grading.collect: Canvas, Moodle and plain downloads land in
``submitted/<student>/<assignment>/``, and a collection that finds nothing is an error."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from cvcourse.grading.collect import parse_name

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "assignments" / "release" / "iou_nms" / "iou_nms.ipynb"
# The lines the course's nbgrader_config.py needs (README, "The grading cycle with nbgrader").
CONFIG = """\
import os
from cvcourse.grading.collect import LMSCollector, LMSExtractor
c = get_config()
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.ZipCollectApp.collector_plugin = LMSCollector
c.ZipCollectApp.extractor_plugin = LMSExtractor
"""


def course(tmp_path: Path) -> Path:
    """A course folder with the iou_nms release notebook, the config above and an empty archive folder."""
    (tmp_path / "release" / "iou_nms").mkdir(parents=True)
    shutil.copy(RELEASE, tmp_path / "release" / "iou_nms" / "iou_nms.ipynb")
    (tmp_path / "nbgrader_config.py").write_text(CONFIG)
    (tmp_path / "downloaded" / "iou_nms" / "archive").mkdir(parents=True)
    return tmp_path


def zip_collect(root: Path, monkeypatch) -> int:
    """``nbgrader zip_collect iou_nms`` run from ``root``: nbgrader's own app, in this process (a
    subprocess would spend ~10 CPU-s importing torch through the cvcourse package); it reads
    ``root/nbgrader_config.py`` as the command does. Returns the exit status."""
    from nbgrader.apps import ZipCollectApp

    monkeypatch.chdir(root)
    app = ZipCollectApp()
    with pytest.raises(SystemExit) as exit_:
        app.initialize(["iou_nms"])
        app.start()
        raise SystemExit(0)
    return exit_.value.code


def test_lms_downloads_are_collected_by_nbgrader_zip_collect(tmp_path, monkeypatch, capfd):
    root = course(tmp_path)
    archive = root / "downloaded" / "iou_nms" / "archive"
    with zipfile.ZipFile(archive / "cv-iou_nms submissions.zip", "w") as z:  # Canvas "Download Submissions"
        z.write(RELEASE, "smithjohn_12345_67890_iou_nms.ipynb")
        z.write(RELEASE, "leeann_LATE_222_333_iou_nms-1.ipynb")  # late, re-uploaded
        z.write(RELEASE, "anon_Xy7Qz_444_iou_nms.ipynb")  # anonymous grading
    with zipfile.ZipFile(archive / "CV-Assignment 1-77.zip", "w") as z:  # Moodle, "in folders" (default)
        z.write(RELEASE, "Ann Lee_1001_assignsubmission_file/iou_nms.ipynb")
        z.write(RELEASE, "Ann Lee_1001_assignsubmission_file/notes.pdf")
    shutil.copy(RELEASE, archive / "Bo Chen_1002_assignsubmission_file_iou_nms.ipynb")  # Moodle, flat
    shutil.copy(RELEASE, archive / "dana.ipynb")  # plain
    assert zip_collect(root, monkeypatch) == 0
    got = sorted(str(p.relative_to(root / "submitted")) for p in (root / "submitted").rglob("*.ipynb"))
    assert got == [f"{s}/iou_nms/iou_nms.ipynb" for s in ("1001", "1002", "12345", "222", "anon_xy7qz", "dana")]
    assert "6 files collected" in capfd.readouterr().err  # and the pdf skipped


def test_empty_download_is_an_error(tmp_path, monkeypatch, capfd):
    root = course(tmp_path)
    assert zip_collect(root, monkeypatch) == 1
    assert "no files in" in capfd.readouterr().err
    assert not (root / "submitted").exists()


def test_no_archive_folder_is_an_error(tmp_path, monkeypatch, capfd):
    root = course(tmp_path)
    shutil.rmtree(root / "downloaded")
    assert zip_collect(root, monkeypatch) == 1
    assert "collected no submission" in capfd.readouterr().err


def test_download_of_no_notebooks_is_an_error(tmp_path, monkeypatch, capfd):
    root = course(tmp_path)
    (root / "downloaded" / "iou_nms" / "archive" / "smithjohn_12345_67890_report.pdf").write_text("x")
    assert zip_collect(root, monkeypatch) == 1
    assert "collected no submission (found: smithjohn_12345_67890_report.pdf)" in capfd.readouterr().err


def test_a_notebook_nobody_can_be_told_owns_is_an_error(tmp_path, monkeypatch, capfd):
    root = course(tmp_path)
    shutil.copy(RELEASE, root / "downloaded" / "iou_nms" / "archive" / "final version (2).ipynb")
    assert zip_collect(root, monkeypatch) == 1
    assert "cannot tell whose submission" in capfd.readouterr().err
    assert not (root / "submitted").exists()


@pytest.mark.parametrize("path, student, notebook", [
    ("smithjohn_12345_67890_iou_nms.ipynb", "12345", "iou_nms.ipynb"),
    ("o_connor_LATE_9_8_Copy of iou_nms.ipynb", "9", "iou_nms.ipynb"),
    ("zip/Ann_Lee_5_assignsubmission_file/sub/my nb.ipynb", "5", "iou_nms.ipynb"),
    ("zip/eve/iou_nms (1).ipynb", "eve", "iou_nms.ipynb"),
    ("zip/eve.ipynb", "eve", "iou_nms.ipynb"),
])
def test_names(path, student, notebook):
    info = parse_name(path, ["iou_nms.ipynb"])
    assert (info["student_id"], info["file_id"]) == (student, notebook)


def test_names_that_say_nothing_are_refused():
    assert parse_name("iou_nms.ipynb", ["iou_nms.ipynb"]) is None  # whose?
    assert parse_name("final version.ipynb", ["iou_nms.ipynb"]) is None
    # several notebooks: a plain <student>.ipynb cannot say which one it is
    assert parse_name("eve.ipynb", ["a.ipynb", "b.ipynb"]) is None
    assert parse_name("eve/b.ipynb", ["a.ipynb", "b.ipynb"])["file_id"] == "b.ipynb"
