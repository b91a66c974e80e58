"""Grade files that Canvas and Moodle import as they are (see README.md, "After grading").

    python -m cvcourse.grading lms canvas  ASSIGNMENT (--grades grades.csv | --gradebook gradebook.db) -o OUT.csv
                                           [--roster canvas_export.csv] [--column "IoU and NMS (123)"] [--points P]
    python -m cvcourse.grading lms moodle  ASSIGNMENT (...) -o OUT.csv [--worksheet Grades-worksheet.csv] [--points P]
    python -m cvcourse.grading lms moodle-gradebook ASSIGNMENT (...) -o OUT.csv [--match email|username|idnumber]

Input: the CSV that ``python -m cvcourse.grading grade --csv`` writes (columns ``student``, one per
graded cell, ``total``, ``max_total``, ``needs_a_look``) or nbgrader's ``gradebook.db`` (score and
maximum of each submission of ASSIGNMENT). Scores are scaled to ``--points`` (the LMS assignment's
points possible / maximum grade; default: the notebook's own maximum) and rounded to 2 decimals.
Students who need a look (a flag in the grade CSV, or a notebook that needs manual grading in the
gradebook) are left out and listed, so a half-graded notebook never reaches the LMS; ``--include-flagged``
exports them anyway. Student ids are those of ``cvcourse.grading.collect``: the Canvas user id, the
Moodle participant id, or the folder name.

Conventions followed (from the LMSs' documentation and source; nothing else is assumed):

* **Canvas gradebook import** (Grades > Import): identity columns ``Student``, ``ID``, ``SIS User ID``,
  ``SIS Login ID``, ``Section``, then one column per assignment; Canvas matches a row by ``ID`` (the
  Canvas user id) or the SIS ids, an assignment column by its header ``Name (assignment id)`` as in
  Canvas's own export, and a header it does not know creates a new assignment; columns left out and
  rows left out are not changed. Sources: Ohio State's "Import CSV File for Carmen Grades"
  (teaching.resources.osu.edu, required columns), nemogb's "Detailed Canvas Export Info"
  (nemogb-dev.github.io, the ``Name (id)`` headers and ``ID`` = Canvas user id), VCU's Canvas
  "Gradebook Action Menu" notes (read-only columns are ignored on import). With ``--roster`` (the
  gradebook CSV exported from Canvas) the identity columns are copied from the roster and the
  assignment's exact header is taken from it.
* **Moodle assignment grading worksheet** (Assignment > Submissions > "Upload grading worksheet";
  needs the "Offline grading worksheet" feedback type): Moodle's importer (``mod/assign/feedback/offline/
  importgradeslib.php`` and ``locallib.php``) reads the columns ``Identifier`` (``Participant <id>``),
  ``Grade`` and ``Last modified (grade)`` by their (English) headers; it skips rows whose grade is
  blank, unchanged, negative or above the assignment's maximum, and rows whose grade was changed in
  Moodle more than a minute after the worksheet's ``Last modified (grade)``. With ``--worksheet`` (the
  worksheet downloaded from Moodle) every other column and row is kept as downloaded and only
  ``Grade`` is filled in; without it a minimal worksheet is written, stamped with the current time.
* **Moodle gradebook CSV import** (Grades > Import > CSV file): any CSV with a header row; on the
  import page one maps a user column ("Map from") to a user field ("Map to": email address, username,
  ID number) and the grade column to a grade item (MoodleDocs "Grade import").
"""

from __future__ import annotations

import csv
import datetime
import re
from dataclasses import dataclass
from pathlib import Path

CANVAS_IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_ID, MOODLE_GRADE, MOODLE_MAX, MOODLE_MODIFIED = "Identifier", "Grade", "Maximum Grade", "Last modified (grade)"
MOODLE_MATCH = {"email": "Email address", "username": "Username", "idnumber": "ID number"}


@dataclass
class Grade:
    """One student's result for an assignment."""

    student: str
    score: float
    max_score: float
    flags: str = ""  # why the student needs a look; empty when the grade can go to the LMS


def read_grade_csv(path: Path) -> list[Grade]:
    """Grades from the CSV of ``python -m cvcourse.grading grade --csv``.

    Raises:
        ValueError: the file lacks the ``student``, ``total`` or ``max_total`` column, or a score is
            not a number.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"student", "total", "max_total"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} is not a grade CSV of 'cvcourse.grading grade --csv': missing columns "
                             f"{sorted(missing)}, found {reader.fieldnames}")
        out = []
        for row in reader:
            try:
                out.append(Grade(row["student"], float(row["total"]), float(row["max_total"]),
                                 row.get("needs_a_look") or ""))
            except ValueError as exc:
                raise ValueError(f"{path}: student {row['student']!r} has a score that is not a number: {exc}") from None
    return out


def read_gradebook(path: Path, assignment: str) -> list[Grade]:
    """Grades of one assignment from nbgrader's ``gradebook.db``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the gradebook has no submission of ``assignment``.
    """
    from nbgrader.api import Gradebook  # noqa: PLC0415

    if not Path(path).is_file():
        raise FileNotFoundError(f"no gradebook at {path}")
    with Gradebook(f"sqlite:///{Path(path).resolve()}") as gb:
        names = sorted(a.name for a in gb.assignments)
        if assignment not in names:
            raise ValueError(f"gradebook {path} has no assignment {assignment!r}; it has {names}")
        out = [Grade(s.student_id, float(s.score), float(s.max_score),
                     "needs manual grading" if s.needs_manual_grade else "")
               for s in gb.assignment_submissions(assignment)]
    if not out:
        raise ValueError(f"gradebook {path} has no submission of {assignment!r}")
    return out


def scaled(grade: Grade, points: float | None) -> str:
    """The score on the LMS's scale, as text with at most 2 decimals (``7.5``, ``10``)."""
    if grade.max_score <= 0:
        raise ValueError(f"student {grade.student!r}: maximum score must be positive, got {grade.max_score}")
    value = grade.score if points is None else grade.score / grade.max_score * points
    return f"{round(value, 2):g}"


def _read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{path} is empty")
    return rows[0], rows[1:]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def canvas(grades: list[Grade], out: Path, assignment: str, *, column: str | None = None,
           roster: Path | None = None, points: float | None = None) -> list[str]:
    """Write a Canvas gradebook import file. Returns the students that could not be placed.

    Args:
        column: the assignment's header in Canvas (``"IoU and NMS (123456)"``); default: the roster's
            column that starts with ``assignment`` and ``" ("``, else ``assignment`` (Canvas then
            creates a new assignment of that name).
        roster: a gradebook CSV exported from Canvas; students are matched by ``ID``, ``SIS User ID``
            or ``SIS Login ID``.
    """
    missing: list[str] = []
    if roster is None:
        header = CANVAS_IDENTITY + [column or assignment]
        rows = [["", g.student, "", "", "", scaled(g, points)] for g in grades]
    else:
        head, body = _read_table(roster)
        absent = [c for c in CANVAS_IDENTITY if c not in head]
        if absent:
            raise ValueError(f"{roster} is not a Canvas gradebook export: no column {absent}; found {head[:8]}")
        cols = [head.index(c) for c in CANVAS_IDENTITY]
        if column is None:
            named = [h for h in head if h.startswith(f"{assignment} (") and h.endswith(")")]
            column = named[0] if len(named) == 1 else assignment
        people = [r for r in body if len(r) >= len(head) and not r[0].strip().startswith("Points Possible")]
        index = {}
        for r in people:
            for c in ("SIS Login ID", "SIS User ID", "ID"):  # ID wins over the SIS ids
                if r[head.index(c)].strip():
                    index[r[head.index(c)].strip()] = r
        header = CANVAS_IDENTITY + [column]
        rows = []
        for g in grades:
            r = index.get(g.student)
            if r is None:
                missing.append(g.student)
            else:
                rows.append([r[i] for i in cols] + [scaled(g, points)])
    _write(out, header, rows)
    return missing


def moodle_worksheet(grades: list[Grade], out: Path, *, worksheet: Path | None = None,
                     points: float | None = None, now: datetime.datetime | None = None) -> list[str]:
    """Write a Moodle assignment grading worksheet. Returns the students that could not be placed.

    Students are matched to ``Participant <id>`` by the digits of their id (``cvcourse.grading.collect``
    makes the Moodle participant id the student id). With ``worksheet``, ``points`` defaults to the
    worksheet's ``Maximum Grade``.

    Raises:
        ValueError: the worksheet lacks the Identifier, Grade or Last modified (grade) column.
    """
    def number(student: str) -> str | None:
        m = re.fullmatch(r"(?:.*?_)?(\d+)", student.strip())
        return m.group(1) if m else None

    missing: list[str] = []
    if worksheet is None:
        stamp = (now or datetime.datetime.now(datetime.timezone.utc)).replace(microsecond=0).isoformat()
        header = [MOODLE_ID, "Full name", MOODLE_GRADE, MOODLE_MAX, MOODLE_MODIFIED]
        rows = []
        for g in grades:
            n = number(g.student)
            if n is None:
                missing.append(g.student)
            else:
                rows.append([f"Participant {n}", "", scaled(g, points), f"{points if points is not None else g.max_score:g}",
                             stamp])
        _write(out, header, rows)
        return missing
    header, body = _read_table(worksheet)
    absent = [c for c in (MOODLE_ID, MOODLE_GRADE, MOODLE_MODIFIED) if c not in header]
    if absent:
        raise ValueError(f"{worksheet} is not a Moodle grading worksheet (in English): no column {absent}; "
                         f"found {header}. Download it with Moodle's language set to English")
    i_id, i_grade = header.index(MOODLE_ID), header.index(MOODLE_GRADE)
    i_max = header.index(MOODLE_MAX) if MOODLE_MAX in header else None
    where = {}
    for k, r in enumerate(body):
        m = re.search(r"(\d+)\s*$", r[i_id]) if len(r) > i_id else None
        if m:
            where[m.group(1)] = k
    for g in grades:
        k = where.get(number(g.student) or "")
        if k is None:
            missing.append(g.student)
            continue
        row = body[k]
        top = points
        if top is None and i_max is not None and row[i_max].strip():
            top = float(row[i_max].replace(",", "."))
        row[i_grade] = scaled(g, top)
    _write(out, header, body)
    return missing


def moodle_gradebook(grades: list[Grade], out: Path, assignment: str, *, match: str = "username",
                     points: float | None = None) -> list[str]:
    """Write a CSV for Moodle's gradebook import: a user column named after ``match`` and the grade."""
    if match not in MOODLE_MATCH:
        raise ValueError(f"match must be one of {sorted(MOODLE_MATCH)}, got {match!r}")
    _write(out, [MOODLE_MATCH[match], assignment], [[g.student, scaled(g, points)] for g in grades])
    return []


# --- command line ----------------------------------------------------------------------------

def register(subparsers) -> None:
    """Add the ``lms`` subcommand to ``python -m cvcourse.grading``."""
    p = subparsers.add_parser("lms", help="write a grade file that Canvas or Moodle imports")
    p.add_argument("format", choices=["canvas", "moodle", "moodle-gradebook"])
    p.add_argument("assignment")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--grades", type=Path, help="the CSV of 'cvcourse.grading grade --csv'")
    src.add_argument("--gradebook", type=Path, help="nbgrader's gradebook.db")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--points", type=float, help="the LMS assignment's points possible / maximum grade")
    p.add_argument("--roster", type=Path, help="canvas: the gradebook CSV exported from Canvas")
    p.add_argument("--column", help="canvas: the assignment's column header, e.g. 'IoU and NMS (123456)'")
    p.add_argument("--worksheet", type=Path, help="moodle: the grading worksheet downloaded from Moodle")
    p.add_argument("--match", default="username", choices=sorted(MOODLE_MATCH),
                   help="moodle-gradebook: what the student ids are")
    p.add_argument("--include-flagged", action="store_true", help="also export students who need a look")


def run(args) -> int:
    """Run the ``lms`` subcommand; exit status 1 when a student was left out."""
    grades = read_grade_csv(args.grades) if args.grades else read_gradebook(args.gradebook, args.assignment)
    flagged = [g for g in grades if g.flags and not args.include_flagged]
    grades = [g for g in grades if g not in flagged]
    if args.format == "canvas":
        missing = canvas(grades, args.output, args.assignment, column=args.column, roster=args.roster,
                         points=args.points)
    elif args.format == "moodle":
        missing = moodle_worksheet(grades, args.output, worksheet=args.worksheet, points=args.points)
    else:
        missing = moodle_gradebook(grades, args.output, args.assignment, match=args.match, points=args.points)
    print(f"wrote {args.output}: {len(grades) - len(missing)} grades")
    for g in flagged:
        print(f"  left out (needs a look): {g.student}: {g.flags}")
    for s in missing:
        print(f"  left out (not in the {args.format} file): {s}")
    return 1 if flagged or missing else 0
