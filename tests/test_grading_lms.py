"""LMS export (cvcourse.grading.lms) against sample files written from Canvas's and Moodle's documented
formats (tests/lms_samples/): a Canvas gradebook export, a Moodle grading worksheet, and the grade CSV
of ``cvcourse.grading grade --csv``. Each output is read back the way the LMS's importer reads it."""

from __future__ import annotations

import csv
import datetime
import re
from pathlib import Path

import pytest

from cvcourse.grading import lms
from cvcourse.grading.__main__ import main

SAMPLES = Path(__file__).resolve().parent / "lms_samples"
CANVAS_EXPORT = SAMPLES / "canvas_gradebook_export.csv"
WORKSHEET = SAMPLES / "moodle_grading_worksheet.csv"
GRADES = SAMPLES / "grades.csv"


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def canvas_reads(path: Path, roster: Path) -> dict[str, dict[str, str]]:
    """What Canvas's import takes from a file: per Canvas user (by ID), the assignment columns' values.
    Fails like the importer would: no identity columns, or a row whose ID is not a student."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames[:5] == lms.CANVAS_IDENTITY
        known = {r["ID"] for r in rows(roster) if r["ID"]}
        out = {}
        for r in reader:
            assert r["ID"] in known, f"Canvas would not find user {r['ID']!r}"
            out[r["ID"]] = {k: v for k, v in r.items() if k not in lms.CANVAS_IDENTITY}
    return out


def moodle_reads(path: Path) -> dict[str, tuple[float, int]]:
    """What Moodle's worksheet importer (assignfeedback_offline) takes: per participant id, the grade
    and the last-modified time, for rows it does not skip (blank grade)."""
    out = {}
    for r in rows(path):
        participant = re.fullmatch(r"Participant (\d+)", r["Identifier"])
        assert participant, r["Identifier"]
        grade = r["Grade"].strip()
        if grade:
            top = float(r.get("Maximum Grade") or "inf")
            value = float(grade)
            assert 0 <= value <= top, f"Moodle skips grade {value} outside [0, {top}]"
            out[participant.group(1)] = (value, r["Last modified (grade)"])
    return out


def test_canvas_export_with_the_roster_fills_the_assignment_column(tmp_path):
    grades = [g for g in lms.read_grade_csv(GRADES) if not g.flags]
    out = tmp_path / "canvas.csv"
    missing = lms.canvas(grades, out, "IoU and NMS", roster=CANVAS_EXPORT, points=20)
    assert sorted(missing) == ["1001", "1002"]  # Moodle students, not in this Canvas course
    got = canvas_reads(out, CANVAS_EXPORT)
    assert got == {"12345": {"IoU and NMS (98765)": "20"}, "222": {"IoU and NMS (98765)": "7.5"}}
    lee = next(r for r in rows(out) if r["ID"] == "222")
    assert (lee["Student"], lee["SIS User ID"], lee["SIS Login ID"], lee["Section"]) == \
        ("Lee, Ann", "S002", "alee", "CV 2026 - A")
    # only the identity columns and this assignment: the other assignments' grades are left alone
    assert list(rows(out)[0]) == lms.CANVAS_IDENTITY + ["IoU and NMS (98765)"]


def test_canvas_export_without_a_roster_uses_the_student_id_as_canvas_id(tmp_path):
    out = tmp_path / "canvas.csv"
    lms.canvas([lms.Grade("12345", 6, 8)], out, "iou_nms")
    assert rows(out) == [{"Student": "", "ID": "12345", "SIS User ID": "", "SIS Login ID": "", "Section": "",
                          "iou_nms": "6"}]


def test_moodle_worksheet_gets_the_grades_and_keeps_everything_else(tmp_path):
    out = tmp_path / "worksheet.csv"
    missing = lms.moodle_worksheet(lms.read_grade_csv(GRADES)[:2] + [lms.Grade("77", 1, 2)], out, worksheet=WORKSHEET)
    assert missing == ["77"]
    assert moodle_reads(out) == {"1001": (75.0, "-"), "1002": (37.5, "-")}  # scaled to Maximum Grade 100
    before, after = rows(WORKSHEET), rows(out)
    assert len(after) == len(before)
    for b, a in zip(before, after):
        assert {k: v for k, v in a.items() if k != "Grade"} == {k: v for k, v in b.items() if k != "Grade"}


def test_moodle_worksheet_from_scratch(tmp_path):
    out = tmp_path / "worksheet.csv"
    now = datetime.datetime(2026, 12, 1, 22, 0, tzinfo=datetime.timezone.utc)
    assert lms.moodle_worksheet([lms.Grade("1001", 6, 8), lms.Grade("dana", 1, 8)], out, points=10, now=now) == ["dana"]
    assert moodle_reads(out) == {"1001": (7.5, "2026-12-01T22:00:00+00:00")}
    assert list(rows(out)[0]) == ["Identifier", "Full name", "Grade", "Maximum Grade", "Last modified (grade)"]


def test_moodle_gradebook_csv(tmp_path):
    out = tmp_path / "gradebook.csv"
    lms.moodle_gradebook([lms.Grade("ann.lee@example.edu", 3, 4)], out, "iou_nms", match="email", points=100)
    assert rows(out) == [{"Email address": "ann.lee@example.edu", "iou_nms": "75"}]


def test_command_leaves_out_flagged_and_unknown_students(tmp_path, capsys):
    out = tmp_path / "canvas.csv"
    rc = main(["lms", "canvas", "IoU and NMS", "--grades", str(GRADES), "--roster", str(CANVAS_EXPORT),
               "--points", "20", "-o", str(out)])
    assert rc == 1
    text = capsys.readouterr().out
    assert "left out (needs a look): 9999: test_nms: KernelDied" in text
    assert "left out (not in the canvas file): 1001" in text
    assert set(canvas_reads(out, CANVAS_EXPORT)) == {"12345", "222"}


def test_nbgrader_gradebook_as_input(tmp_path, monkeypatch):
    import nbgrader.api
    from nbgrader.api import Gradebook

    # a new gradebook asks the alembic script for its schema version (seconds of CPU); irrelevant here
    monkeypatch.setattr(nbgrader.api, "get_alembic_version", lambda: "test")
    db = tmp_path / "gradebook.db"
    with Gradebook(f"sqlite:///{db}", course_id="cvcourse") as gb:
        gb.add_assignment("iou_nms")
        gb.update_or_create_notebook("iou_nms", "iou_nms")
        gb.update_or_create_grade_cell("test_a", "iou_nms", "iou_nms", max_score=2, cell_type="code")
        gb.update_or_create_grade_cell("test_b", "iou_nms", "iou_nms", max_score=3, cell_type="code")
        for student in ("12345", "222"):
            gb.add_student(student)
            gb.add_submission("iou_nms", student)
        for grade in gb.find_submission("iou_nms", "12345").notebooks[0].grades:
            grade.auto_score, grade.needs_manual_grade = grade.max_score - 1, False
        grade = gb.find_submission("iou_nms", "222").notebooks[0].grades[0]
        grade.auto_score, grade.needs_manual_grade = 1, False  # test_b still needs a grader
        gb.db.commit()
    got = {g.student: (g.score, g.max_score, g.flags) for g in lms.read_gradebook(db, "iou_nms")}
    assert got == {"12345": (3.0, 5.0, ""), "222": (1.0, 5.0, "needs manual grading")}
    with pytest.raises(ValueError, match="no assignment 'unpool_unet'"):
        lms.read_gradebook(db, "unpool_unet")


def test_bad_input_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,score\nann,3\n")
    with pytest.raises(ValueError, match="missing columns"):
        lms.read_grade_csv(bad)
    with pytest.raises(ValueError, match="not a Canvas gradebook export"):
        lms.canvas([lms.Grade("1", 1, 2)], tmp_path / "o.csv", "a", roster=bad)
    german = tmp_path / "bewertung.csv"
    german.write_text("ID,Vollständiger Name,Bewertung,Zuletzt geändert (Bewertung)\nTeilnehmer/in 1,A,,-\n")
    with pytest.raises(ValueError, match="Moodle's language set to English"):
        lms.moodle_worksheet([lms.Grade("1", 1, 2)], tmp_path / "o.csv", worksheet=german)
    with pytest.raises(ValueError, match="maximum score must be positive"):
        lms.scaled(lms.Grade("1", 0, 0), 10)
    with pytest.raises(FileNotFoundError):
        lms.read_gradebook(tmp_path / "none.db", "iou_nms")
