"""Grade a batch of submissions with the real ``nbgrader autograde``, in parallel over the cores.

nbgrader grades one notebook at a time, and a kernel that imports torch needs a few seconds to
start, so a class takes minutes (nbgrader issue #174). :func:`grade_batch` generates the assignment
once in a throw-away course folder, copies that folder (with its gradebook) once per worker, deals
the students out round-robin and runs one ``nbgrader autograde`` per worker at the same time; every
worker has its own gradebook and kernel runtime folder, so they never share state. Scores are read
back from each worker's gradebook; error outputs written by
:class:`cvcourse.grading.execute.GradingExecute` (a dead or hung kernel) and its report (links and
other non-files the code left in its folder, outputs that quoted hidden tests) flag the student for
a look. :func:`collect_submissions` finds the submissions in a folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from cvcourse.grading.course import make_course, nbgrader_cmd, nbgrader_env, repo_root
from cvcourse.grading.execute import FLAG_NAMES, read_report


@dataclass
class StudentResult:
    """Autograding result of one student for one assignment."""

    student: str
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)  # grade_id -> (score, max_score)
    flags: list[str] = field(default_factory=list)  # why a human should look (kernel died, timeout, ...)
    errors: dict[str, str] = field(default_factory=dict)  # grade_id -> last line of its error output
    seconds: float = 0.0  # wall time of this student's share of the worker's autograde run

    @property
    def total(self) -> float:
        return sum(s for s, _ in self.scores.values())

    @property
    def max_total(self) -> float:
        return sum(m for _, m in self.scores.values())


def _read_results(course: Path, assignment: str, students: list[str]) -> dict[str, StudentResult]:
    from nbgrader.api import Gradebook  # noqa: PLC0415  (heavy import, only when grading)

    results = {s: StudentResult(s) for s in students}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in students:
            res = results[student]
            try:
                sub = gb.find_submission(assignment, student)
            except Exception:  # noqa: BLE001  (MissingEntry: autograde never reached this student)
                res.flags.append("not graded: nbgrader autograde failed before recording any score")
                continue
            for nb in sub.notebooks:
                for grade in nb.grades:
                    if grade.max_score:
                        score = grade.score if grade.score is not None else 0.0
                        res.scores[grade.name] = (float(score), float(grade.max_score))
            graded_dir = course / "autograded" / student / assignment
            graded_nbs = sorted(graded_dir.glob("*.ipynb"))
            for notebook, messages in sorted(read_report(graded_dir).items()):
                res.flags += [f"{notebook}: {m}" for m in messages]
            if not graded_nbs:
                res.flags.append("not graded: nbgrader autograde failed on this notebook (see the nbgrader log)")
            for path in graded_nbs:
                nb = nbformat.read(path, as_version=4)
                for cell in nb.cells:
                    gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
                    for out in cell.get("outputs", []):
                        if out.get("output_type") == "error":
                            res.errors[gid] = f"{out.get('ename')}: {str(out.get('evalue'))[:300]}"
                            if out.get("ename") in FLAG_NAMES:
                                res.flags.append(f"{gid or 'cell'}: {out.get('ename')}: {out.get('evalue')}")
    return results


def _worker(base: Path, workdir: Path, assignment: str, notebooks: dict[str, dict[str, nbformat.NotebookNode]],
            extra_args: list[str], env: dict[str, str]) -> tuple[dict[str, StudentResult], str]:
    shutil.copytree(base, workdir)
    for student, files in notebooks.items():
        folder = workdir / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        for name, nb in files.items():
            nbformat.write(nb, folder / name)
    start = time.monotonic()
    proc = subprocess.run(nbgrader_cmd() + ["autograde", assignment, "--force", *extra_args],
                          cwd=workdir, capture_output=True, text=True, env=env)
    elapsed = time.monotonic() - start
    results = _read_results(workdir, assignment, list(notebooks))
    for res in results.values():
        res.seconds = elapsed / max(1, len(notebooks))
    return results, proc.stdout + proc.stderr


def collect_submissions(assignment: str, folder: Path,
                        release_dir: Path) -> dict[str, dict[str, nbformat.NotebookNode]]:
    """The submissions in ``folder`` as ``{student: {notebook_name: notebook}}``.

    Accepts ``folder/<student>/<assignment>/*.ipynb`` (nbgrader's ``submitted/`` layout),
    ``folder/<student>/*.ipynb``, ``folder/<student>.ipynb`` (named after the release notebook) and
    ``.py`` sample submission files (:mod:`cvcourse.grading.submissions`).
    """
    from cvcourse.grading.submissions import build_submission  # noqa: PLC0415

    found: dict[str, dict[str, nbformat.NotebookNode]] = {}
    for entry in sorted(Path(folder).iterdir()):
        if entry.is_dir():
            inner = entry / assignment if (entry / assignment).is_dir() else entry
            nbs = sorted(inner.glob("*.ipynb"))
            if nbs:
                found[entry.name] = {p.name: nbformat.read(p, as_version=4) for p in nbs}
        elif entry.suffix == ".ipynb":
            release = sorted(Path(release_dir).glob("*.ipynb"))
            found[entry.stem] = {release[0].name: nbformat.read(entry, as_version=4)}
        elif entry.suffix == ".py":
            found[entry.stem] = build_submission(Path(release_dir), entry)
    return found


def grade_batch(assignment: str, notebooks: dict[str, dict[str, nbformat.NotebookNode]], *,
                assignments_dir: Path | None = None, jobs: int | None = None, sandbox: bool = True,
                timeout: int | None = None, extra_args: list[str] | tuple[str, ...] = (),
                keep: Path | None = None) -> tuple[dict[str, StudentResult], list[str]]:
    """Autograde ``{student: {notebook_name: notebook}}`` with nbgrader; return results and worker logs.

    Args:
        assignment: e.g. ``"iou_nms"``.
        notebooks: each student's handed-in notebooks.
        assignments_dir: the course's ``assignments/`` (config + source); default: this checkout's.
        jobs: parallel workers (default: the number of CPU cores, at most the number of students).
        sandbox: False grades with the ordinary ``python3`` kernel: UNSAFE, for quick local checks only.
        timeout: per-cell timeout in seconds (default: the one in ``nbgrader_config.py``).
        extra_args: more ``nbgrader autograde`` command-line options.
        keep: copy the worker course folders here (autograded notebooks, gradebooks) for inspection.
    """
    assignments_dir = Path(assignments_dir or repo_root() / "assignments")
    students = sorted(notebooks)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(students) or 1))
    args = list(extra_args)
    if timeout is not None:
        args += [f"--Execute.timeout={int(timeout)}"]
    env = nbgrader_env()
    env.pop("JUPYTER_RUNTIME_DIR", None)  # each nbgrader process makes a private one (nbgrader_config.py)
    env.pop("CVCOURSE_GRADING_UNSANDBOXED", None)
    if not sandbox:
        env["CVCOURSE_GRADING_UNSANDBOXED"] = "1"  # nbgrader_config.py then keeps the plain python3 kernel
    with tempfile.TemporaryDirectory(prefix="cvcourse-grade-") as tmp:
        base = make_course(assignments_dir, Path(tmp) / "base", [assignment])
        shares = [students[i::jobs] for i in range(jobs)]
        with ThreadPoolExecutor(jobs) as pool:
            futures = [pool.submit(_worker, base, Path(tmp) / f"worker{i}", assignment,
                                   {s: notebooks[s] for s in share}, args, env)
                       for i, share in enumerate(shares) if share]
            outs = [f.result() for f in futures]
        if keep is not None:
            keep = Path(keep)
            keep.mkdir(parents=True, exist_ok=True)
            for i in range(len(futures)):
                dst = keep / f"worker{i}"
                if dst.exists():
                    shutil.rmtree(dst)
                shutil.copytree(Path(tmp) / f"worker{i}", dst)
    results: dict[str, StudentResult] = {}
    logs = []
    for res, log in outs:
        results.update(res)
        logs.append(log)
    _add_static_reports(results, notebooks, assignments_dir / "release" / assignment)
    return results, logs


def _add_static_reports(results: dict[str, StudentResult], notebooks: dict[str, dict[str, nbformat.NotebookNode]],
                        release_dir: Path) -> None:
    """Flag each student whose code holds constructs a grader should read by hand (:mod:`static_report`)."""
    from cvcourse.grading import static_report  # noqa: PLC0415

    release = {p.name: nbformat.read(p, as_version=4) for p in sorted(release_dir.glob("*.ipynb"))}
    for student, files in notebooks.items():
        findings = [f for name, nb in files.items() for f in static_report.report(nb, release.get(name))]
        if findings and student in results:
            results[student].flags.append(static_report.summary(findings))
