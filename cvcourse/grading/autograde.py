"""Grade a batch of submissions with the real ``nbgrader autograde``, in parallel over cores or machines.

nbgrader grades one notebook at a time, and a kernel that imports torch needs a few seconds to
start, so a class takes minutes (nbgrader issue #174). :func:`grade_batch` generates the assignment
once in a throw-away course folder, copies that folder (with its gradebook) once per worker, and
deals the students out round-robin: :func:`grade_share` runs one ``nbgrader autograde`` per worker in
that worker's private copy, so workers never share a gradebook or a kernel runtime folder, and
reports each student as nbgrader finishes it. With a Dask scheduler address,
:func:`grade_student` (``nbgrader autograde --student``, the same config, sandbox and timeouts)
runs as one task per student on a cluster (:mod:`cvcourse.grading.cluster`). Scores are read back from the worker's gradebook;
error outputs written by :class:`cvcourse.grading.execute.GradingExecute` (a dead or hung kernel)
and its report (links and other non-files the code left in its folder, outputs that quoted hidden
tests) flag the student for a look, and so does the static report. ``keep``/``feedback`` gather
everything into one course folder with one gradebook (:mod:`cvcourse.grading.gradebook`).
:func:`collect_submissions` finds the submissions in a folder.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
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


#: Seconds one ``nbgrader autograde`` of one submission may run before it is killed. Cells have their own
#: timeout and the notebook its budget (``nbgrader_config.py``); this catches a hung nbgrader or sandbox.
SUBMISSION_TIMEOUT = 1800

#: Characters a student id may not hold (nbgrader treats ``--student`` as a glob; ``/`` makes a path).
_BAD_ID = re.compile(r"[*?\[\]/\\]|^\.|^$")


class GradingTimeout(RuntimeError):
    """``nbgrader autograde`` of one submission ran longer than its limit and was killed."""


@dataclass
class Graded:
    """What grading one submission produced (picklable: it comes back from a Dask worker)."""

    result: StudentResult
    log: str = ""  # nbgrader's output
    files: dict[str, bytes] | None = None  # submitted/ and autograded/ files (cvcourse.grading.gradebook)
    grades: dict | None = None  # the gradebook rows (cvcourse.grading.gradebook.export_grades)
    where: str = ""  # the worker that graded it
    attempts: list[str] = field(default_factory=list)  # earlier attempts that failed, and why


def check_student_ids(students: list[str]) -> None:
    """Raise ValueError for student ids nbgrader would misread (globs, paths, empty, hidden)."""
    bad = [s for s in students if _BAD_ID.search(s)]
    if bad:
        raise ValueError(f"student ids may not be empty, start with '.' or hold * ? [ ] / \\: {bad[:5]}; "
                         "rename those submissions")


def grading_env(sandbox: bool = True) -> dict[str, str]:
    """The environment of the ``nbgrader autograde`` processes (built on the machine that grades)."""
    env = nbgrader_env()
    env.pop("JUPYTER_RUNTIME_DIR", None)  # each nbgrader process makes a private one (nbgrader_config.py)
    env.pop("CVCOURSE_GRADING_UNSANDBOXED", None)
    if not sandbox:
        env["CVCOURSE_GRADING_UNSANDBOXED"] = "1"  # nbgrader_config.py then keeps the plain python3 kernel
    return env


def autograde_args(timeout: int | None = None, extra_args: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Extra ``nbgrader autograde`` options: a per-cell ``timeout`` and anything else."""
    args = list(extra_args)
    if timeout is not None:
        args += [f"--Execute.timeout={int(timeout)}"]
    return args


def grade_student(course: Path, assignment: str, student: str, files: dict[str, nbformat.NotebookNode],
                  extra_args: list[str], env: dict[str, str], *, limit: float | None = SUBMISSION_TIMEOUT,
                  collect: bool = False) -> Graded:
    """Autograde one student with ``nbgrader autograde --student`` in the course folder ``course``.

    ``course`` is private to the caller (its gradebook gets this student's submission). With
    ``collect`` the graded files and gradebook rows come back too (for one merged course).

    Raises:
        GradingTimeout: nbgrader ran longer than ``limit`` seconds (it is killed with its kernel).
    """
    folder = course / "submitted" / student / assignment
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, nb in files.items():
        nbformat.write(nb, folder / name)
    start = time.monotonic()
    proc = subprocess.Popen(nbgrader_cmd() + ["autograde", assignment, f"--student={student}", "--force", *extra_args],
                            cwd=course, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)  # its own process group: a timeout kills nbgrader and kernel
    try:
        log, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise GradingTimeout(f"nbgrader autograde of {student} ran longer than {limit:g} s and was killed") from None
    except BaseException:  # Ctrl-C, a cancelled task: its own session would outlive us otherwise
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    result = _read_results(course, assignment, [student])[student]
    result.seconds = time.monotonic() - start
    graded = Graded(result, log, where=socket.gethostname())
    if collect:
        from cvcourse.grading.gradebook import export_files, export_grades  # noqa: PLC0415

        graded.files = export_files(course, assignment, student)
        graded.grades = export_grades(course, assignment, student)
    return graded


def not_graded(student: str, why: str, attempts: list[str] | None = None) -> Graded:
    """The result of a submission that could not be graded: no score, flagged with the reason."""
    return Graded(StudentResult(student, flags=[f"not graded: {why}"]), why, attempts=list(attempts or []))

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
                keep: Path | None = None, feedback: Path | None = None, scheduler: str | None = None,
                progress: Callable[[int, int, Graded], None] | None = None,
                notify: Callable[[str], None] | None = None, limit: float | None = SUBMISSION_TIMEOUT) -> tuple[dict[str, StudentResult], list[str]]:
    """Autograde ``{student: {notebook_name: notebook}}`` with nbgrader; return results and nbgrader logs.

    Args:
        assignment: e.g. ``"iou_nms"``.
        notebooks: each student's handed-in notebooks.
        assignments_dir: the course's ``assignments/`` (config + source); default: this checkout's.
        jobs: parallel workers of the local pool (default: the number of CPU cores, at most the number
            of students); ignored with ``scheduler``.
        sandbox: False grades with the ordinary ``python3`` kernel: UNSAFE, for quick local checks only.
        timeout: per-cell timeout in seconds (default: the one in ``nbgrader_config.py``).
        extra_args: more ``nbgrader autograde`` command-line options.
        keep: write ONE nbgrader course folder here holding every student (merged ``gradebook.db``,
            ``submitted/``, ``autograded/``; :mod:`cvcourse.grading.gradebook`).
        feedback: write each student's HTML feedback (hidden tests hidden) to ``feedback/<student>/``.
        scheduler: a Dask scheduler address (``tcp://host:8786``): one task per submission on that
            cluster (:mod:`cvcourse.grading.cluster`) instead of the local pool.
        progress: called after each finished submission with ``(done, total, graded)``.
        notify: called with a line when a cluster task is sent again after a failure.
        limit: seconds one submission's ``nbgrader autograde`` may run before it is killed.
    """
    assignments_dir = Path(assignments_dir or repo_root() / "assignments")
    students = sorted(notebooks)
    check_student_ids(students)
    args = autograde_args(timeout, extra_args)
    collect = keep is not None or feedback is not None
    release_dir = assignments_dir / "release" / assignment
    release = {p.name: nbformat.read(p, as_version=4) for p in sorted(release_dir.glob("*.ipynb"))}
    graded: dict[str, Graded] = {}
    with tempfile.TemporaryDirectory(prefix="cvcourse-grade-") as tmp:
        merged = None
        if collect:
            merged = make_course(assignments_dir, Path(keep) if keep is not None else Path(tmp) / "merged", [assignment])

        def done(g: Graded) -> None:
            _add_static_report(g.result, notebooks[g.result.student], release)
            if merged is not None and g.files is not None:
                from cvcourse.grading.gradebook import import_files, import_grades  # noqa: PLC0415

                import_files(merged, assignment, g.result.student, g.files)
                if g.grades is not None:
                    import_grades(merged, assignment, g.result.student, g.grades)
                g.files = g.grades = None  # the bytes are on disk now
            graded[g.result.student] = g
            if progress is not None:
                progress(len(graded), len(students), g)

        if scheduler is not None:
            from cvcourse.grading.cluster import grade_on_cluster  # noqa: PLC0415  (needs `distributed`)

            grade_on_cluster(scheduler, assignments_dir, assignment, notebooks, args, sandbox=sandbox,
                             collect=collect, limit=limit, done=done, notify=notify)
        else:
            _grade_local(assignments_dir, Path(tmp), assignment, notebooks, args, grading_env(sandbox),
                         jobs=jobs, collect=collect, limit=limit, done=done)
        lost = [s for s in students if s not in graded]
        if lost:  # never silently: the cluster code reports every task, this is the last guard
            raise RuntimeError(f"no result came back for {lost}")
        if feedback is not None:
            from cvcourse.grading.gradebook import generate_feedback  # noqa: PLC0415

            generate_feedback(merged, assignment, Path(feedback))
    results = {s: graded[s].result for s in students}
    return results, [graded[s].log for s in students]


def _finished(course: Path, assignment: str, student: str) -> bool:
    """nbgrader is done with ``student``: its graded notebooks exist and were made read-only, nbgrader's
    last step for a student (only nbgrader writes notebooks there: the execute step never copies one back)."""
    nbs = list((course / "autograded" / student / assignment).glob("*.ipynb"))
    return bool(nbs) and all(not os.lstat(p).st_mode & 0o222 for p in nbs)


def _split_log(log: str, students: list[str]) -> dict[str, str]:
    """nbgrader's output cut at its ``Creating/updating student with ID '<id>'`` lines (for reading only:
    student code can write to this stream, so nothing is decided from it)."""
    parts = {s: [] for s in students}
    current = students[0] if students else None
    for line in log.splitlines(keepends=True):
        m = re.search(r"Creating/updating student with ID '(.+?)'", line)
        if m and m.group(1) in parts:
            current = m.group(1)
        if current is not None:
            parts[current].append(line)
    return {s: "".join(lines) for s, lines in parts.items()}


def grade_share(course: Path, assignment: str, notebooks: dict[str, dict[str, nbformat.NotebookNode]],
                extra_args: list[str], env: dict[str, str], *, limit: float | None = SUBMISSION_TIMEOUT,
                collect: bool = False, done: Callable[[Graded], None]) -> None:
    """Autograde several students with ONE ``nbgrader autograde`` in the private course folder ``course``.

    One process for the share saves an nbgrader start (with torch imported by ``nbgrader_config.py``:
    about 10 CPU-s) per student. ``done`` is called for each student as soon as nbgrader has finished
    with it (:func:`_finished`, polled). A student on which nbgrader spends more than ``limit``
    seconds is killed with its kernel and reported as not graded, and nbgrader goes on with the rest.
    """
    for student, files in notebooks.items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        for name, nb in files.items():
            nbformat.write(nb, folder / name)
    pending = sorted(notebooks)

    def finish(student: str, log: str, seconds: float, graded: Graded | None = None) -> None:
        if graded is None:
            result = _read_results(course, assignment, [student])[student]
            result.seconds = seconds
            graded = Graded(result, log, where=f"{socket.gethostname()} ({course.name})")
            if collect:
                from cvcourse.grading.gradebook import export_files, export_grades  # noqa: PLC0415

                graded.files = export_files(course, assignment, student)
                graded.grades = export_grades(course, assignment, student)
        pending.remove(student)
        done(graded)

    first = True
    while pending:
        out = tempfile.TemporaryFile(mode="w+")
        # no --force after a kill: nbgrader then skips the students it already has in autograded/
        proc = subprocess.Popen(nbgrader_cmd() + ["autograde", assignment, *(["--force"] if first else []), *extra_args],
                                cwd=course, stdout=out, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)
        first = False
        last = time.monotonic()
        finished: dict[str, float] = {}
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                for student in [s for s in pending if s not in finished and _finished(course, assignment, s)]:
                    finished[student] = time.monotonic() - last
                    last = time.monotonic()
                    out.seek(0)
                    finish(student, _split_log(out.read(), sorted(notebooks)).get(student, ""), finished[student])
                if limit is not None and time.monotonic() - last > limit:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    started = [s for s in pending if (course / "autograded" / s / assignment).is_dir()] or pending[:1]
                    out.seek(0)
                    log = out.read()
                    for student in started:
                        finish(student, log, limit, not_graded(
                            student, f"nbgrader autograde of {student} ran longer than {limit:g} s and was killed"))
                        folder = course / "autograded" / student / assignment
                        folder.mkdir(parents=True, exist_ok=True)  # so that the next run skips it
                    break
            else:
                out.seek(0)
                logs = _split_log(out.read(), sorted(notebooks))
                for student in list(pending):  # whatever nbgrader did not finish visibly (it failed on them)
                    finish(student, logs.get(student, ""), time.monotonic() - last)
        except BaseException:  # Ctrl-C: its own session would outlive us otherwise
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise
        finally:
            out.close()


def _grade_local(assignments_dir: Path, tmp: Path, assignment: str,
                 notebooks: dict[str, dict[str, nbformat.NotebookNode]], args: list[str], env: dict[str, str], *,
                 jobs: int | None, collect: bool, limit: float | None, done: Callable[[Graded], None]) -> None:
    """The local pool: the assignment generated once, one course copy per worker, the students dealt out
    round-robin, one ``nbgrader autograde`` per worker (:func:`grade_share`), all at the same time."""
    students = sorted(notebooks)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(students) or 1))
    base = make_course(assignments_dir, tmp / "base", [assignment])
    finished: queue.Queue = queue.Queue()  # done() runs here, in the caller's thread, one at a time
    shares = [students[i::jobs] for i in range(jobs)]

    def work(i: int, share: list[str]) -> None:
        course = tmp / f"worker{i}"
        shutil.copytree(base, course)
        grade_share(course, assignment, {s: notebooks[s] for s in share}, args, env, limit=limit, collect=collect,
                    done=finished.put)

    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(work, i, share) for i, share in enumerate(shares) if share]
        for _ in students:
            while True:
                try:
                    done(finished.get(timeout=1))
                    break
                except queue.Empty:
                    failed = [f for f in futures if f.done() and f.exception() is not None]
                    if failed:
                        raise failed[0].exception()


def _add_static_report(result: StudentResult, files: dict[str, nbformat.NotebookNode],
                       release: dict[str, nbformat.NotebookNode]) -> None:
    """Flag a student whose code holds constructs a grader should read by hand (:mod:`static_report`)."""
    from cvcourse.grading import static_report  # noqa: PLC0415

    findings = [f for name, nb in files.items() for f in static_report.report(nb, release.get(name))]
    if findings:
        result.flags.append(static_report.summary(findings))
