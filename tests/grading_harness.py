"""Test harness for the graded assignments: autograde sample submissions with the real nbgrader.

Usage in a test module (see tests/test_grading_iou_nms.py)::

    from grading_harness import SUBMISSIONS, autograde, submission_files

    results = autograde("iou_nms", submission_files("iou_nms"))   # one batch, both cores
    scores = results["correct_loops"].scores     # {grade_id: (score, max_score)}
    assert results["correct_loops"].total == results["correct_loops"].max_total

``autograde(assignment, submissions, *, jobs=2, timeout=None, sandbox=True)`` takes
``{student_name: Path}`` where each path is a submission file and returns
``{student_name: StudentResult}`` (``.scores``, ``.total``, ``.max_total``, ``.flags`` — why a
human should look: kernel died, timeout, links or fifos the code left in its folder, outputs that
quoted hidden tests —, ``.errors`` — grade_id to the last line of its error —
and ``.seconds``). It builds a temporary nbgrader course (a copy of ``assignments/nbgrader_config.py``
and ``assignments/source/<assignment>``, generated with ``nbgrader generate_assignment``), builds
each student's notebook from the committed RELEASE notebook, and runs the real
``nbgrader autograde`` in the sandbox kernel, one course copy (own gradebook) per worker.
``autograde_scores`` returns the plain ``{student: {grade_id: (score, max_score)}}`` mapping.

Submission files (``tests/submissions/<assignment>/<name>.py``; full format in
:mod:`cvcourse.grading.submissions`): a free comment first, then sections::

    # -- cell: <grade_id> --          replace that cell's source (answer or test cell)
    # -- delete: <grade_id> --        delete that cell
    # -- insert-after: <grade_id> --  insert a new code cell after that cell

A path ending in ``.ipynb`` is taken as the whole handed-in notebook.

Cost: about 5-10 s per torch-importing notebook on the 2-core CI machine, two at a time; grade
every sample of an assignment in ONE call (module-scoped fixture) rather than one call per test.
The per-cell timeout can be lowered for a batch (``timeout=20``) so that a looping submission
costs little.
"""

from __future__ import annotations

from pathlib import Path

from cvcourse.grading.autograde import StudentResult, grade_batch
from cvcourse.grading.sandbox import ensure_kernel
from cvcourse.grading.submissions import build_submission

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "assignments"
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"

__all__ = ["autograde", "autograde_scores", "submission_files", "build_submission", "StudentResult",
           "ROOT", "ASSIGNMENTS", "SUBMISSIONS"]


def submission_files(assignment: str, names: list[str] | None = None) -> dict[str, Path]:
    """``{name: path}`` of the sample submissions of an assignment (all, or the named ones)."""
    folder = SUBMISSIONS / assignment
    files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in (".py", ".ipynb")
             and not p.name.startswith(("_", "."))}
    if names is not None:
        missing = set(names) - set(files)
        if missing:
            raise KeyError(f"no sample submissions named {sorted(missing)} in {folder}")
        files = {n: files[n] for n in names}
    return files


def autograde(assignment: str, submissions: dict[str, Path], *, jobs: int = 2, timeout: int | None = None,
              sandbox: bool = True, keep: Path | None = None) -> dict[str, StudentResult]:
    """Autograde sample submissions with the real ``nbgrader autograde``; see the module docstring."""
    ensure_kernel()
    release = ASSIGNMENTS / "release" / assignment
    notebooks = {name: build_submission(release, Path(path)) for name, path in submissions.items()}
    results, _logs = grade_batch(assignment, notebooks, assignments_dir=ASSIGNMENTS, jobs=jobs,
                                 timeout=timeout, sandbox=sandbox, keep=keep)
    return results


def autograde_scores(assignment: str, submissions: dict[str, Path], **kwargs) -> dict[str, dict[str, tuple]]:
    """Like :func:`autograde`, as ``{student: {grade_id: (score, max_score)}}``."""
    return {name: res.scores for name, res in autograde(assignment, submissions, **kwargs).items()}
