"""One nbgrader course folder for a whole batch: merge what every worker graded into one gradebook.

:func:`cvcourse.grading.autograde.grade_batch` grades in one private course copy per worker (local
pool) or per task (Dask cluster), each with its own ``gradebook.db``. For ``--keep`` and
``--feedback`` the results are gathered here into ONE course folder, as if one ``nbgrader
autograde`` had graded everyone: ``gradebook.db`` (the assignment generated once, every student's
submission with its scores and comments), ``submitted/<student>/<assignment>/`` and
``autograded/<student>/<assignment>/``. Plain nbgrader commands then work in it
(``nbgrader generate_feedback``, ``nbgrader export``, formgrader).

Grades travel as plain data (:func:`export_grades`, matched by notebook and cell *name*, not by
database id: two course copies generated separately have different ids). Files travel as
``{relative path: bytes}`` (:func:`export_files`): regular, singly linked files only, so a link the
student's code left behind (already refused by :mod:`cvcourse.grading.execute`) never travels.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import warnings
from pathlib import Path, PurePosixPath

from cvcourse.grading.course import nbgrader_cmd, nbgrader_env


def export_grades(course: Path, assignment: str, student: str) -> dict | None:
    """The student's submission in ``course/gradebook.db`` as plain data (None when there is none)."""
    from nbgrader.api import Gradebook, MissingEntry  # noqa: PLC0415  (heavy import, only when grading)

    with Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}") as gb:
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return None
        notebooks = {}
        for nb in sub.notebooks:
            notebooks[nb.name] = {
                "flagged": bool(nb.flagged),
                "late_submission_penalty": nb.late_submission_penalty,
                "grades": {g.name: [g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade]
                           for g in nb.grades},
                "comments": {c.name: [c.auto_comment, c.manual_comment] for c in nb.comments},
            }
        return {"timestamp": sub.timestamp.isoformat() if sub.timestamp else None,
                "extension": sub.extension.total_seconds() if sub.extension else None,
                "notebooks": notebooks}


def import_grades(course: Path, assignment: str, student: str, data: dict) -> None:
    """Write :func:`export_grades` data into ``course/gradebook.db`` (replacing the student's submission)."""
    import datetime  # noqa: PLC0415

    from nbgrader.api import Gradebook, MissingEntry  # noqa: PLC0415

    with Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}") as gb:
        gb.update_or_create_student(student)
        try:
            gb.remove_submission(assignment, student)
        except MissingEntry:
            pass
        kwargs = {}
        if data.get("timestamp"):
            kwargs["timestamp"] = data["timestamp"]
        if data.get("extension") is not None:
            kwargs["extension"] = datetime.timedelta(seconds=data["extension"])
        with warnings.catch_warnings():  # nbgrader's add_submission trips SQLAlchemy autoflush warnings (harmless)
            warnings.simplefilter("ignore")
            gb.add_submission(assignment, student, **kwargs)
        for nb_name, nb_data in data["notebooks"].items():
            nb = gb.find_submission_notebook(nb_name, assignment, student)
            nb.flagged = nb_data["flagged"]
            nb.late_submission_penalty = nb_data["late_submission_penalty"]
            for name, (auto, manual, extra, needs) in nb_data["grades"].items():
                grade = gb.find_grade(name, nb_name, assignment, student)
                grade.auto_score, grade.manual_score, grade.extra_credit = auto, manual, extra
                grade.needs_manual_grade = needs
            for name, (auto, manual) in nb_data["comments"].items():
                comment = gb.find_comment(name, nb_name, assignment, student)
                comment.auto_comment, comment.manual_comment = auto, manual
        gb.db.commit()


def export_files(course: Path, assignment: str, student: str) -> dict[str, bytes]:
    """The student's ``submitted/`` and ``autograded/`` files, ``{course-relative posix path: bytes}``.

    Only regular files with one link are read, without following links; links and other
    non-files are left out (the execute step has already reported those it refused).
    """
    out: dict[str, bytes] = {}
    for top in ("submitted", "autograded"):
        root = Path(course) / top / student / assignment
        if not root.is_dir() or root.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if stat.S_ISDIR(os.lstat(os.path.join(dirpath, d)).st_mode)]
            for name in filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                    continue
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb") as fh:
                    out[Path(path).relative_to(course).as_posix()] = fh.read()
    return out


def _safe_relpath(rel: str, student: str, assignment: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if (path.is_absolute() or ".." in path.parts or len(path.parts) < 4
            or path.parts[0] not in ("submitted", "autograded") or path.parts[1:3] != (student, assignment)):
        raise ValueError(f"refusing to write {rel!r}: not inside submitted/ or autograded/{student}/{assignment}/")
    return path


def import_files(course: Path, assignment: str, student: str, files: dict[str, bytes]) -> None:
    """Write :func:`export_files` output into ``course``, replacing that student's folders."""
    for top in ("submitted", "autograded"):
        folder = Path(course) / top / student / assignment
        if folder.is_symlink() or folder.is_file():
            folder.unlink()
        elif folder.exists():
            shutil.rmtree(folder)
    for rel, data in sorted(files.items()):
        dst = Path(course) / _safe_relpath(rel, student, assignment)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)


def generate_feedback(course: Path, assignment: str, out: Path) -> list[Path]:
    """Run ``nbgrader generate_feedback`` in the merged ``course``; copy each student's HTML to ``out/<student>/``.

    The course's ``nbgrader_config.py`` hides the hidden tests (:mod:`cvcourse.grading.feedback`).

    Raises:
        RuntimeError: nbgrader failed (its output is in the message).
    """
    proc = subprocess.run(nbgrader_cmd() + ["generate_feedback", assignment, "--force", "--log-level=WARN"],
                          cwd=course, capture_output=True, text=True, env=nbgrader_env())
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader generate_feedback {assignment} failed:\n{proc.stdout}\n{proc.stderr}")
    written = []
    for folder in sorted((Path(course) / "feedback").glob(f"*/{assignment}")):
        student = folder.parent.name
        dst = Path(out) / student
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(folder, dst)
        written += sorted(dst.glob("*.html"))
    return written
