"""Grade on a Dask distributed cluster: one task per submission (``grade ... --scheduler tcp://HOST:PORT``).

The instructor's machine (the *client*) sends each student's notebooks to the scheduler as one task,
:func:`grade_task`. A worker runs it exactly as the local pool does
(:func:`cvcourse.grading.autograde.grade_student`): in a private course copy of its own, one per
task, made from a course generated once per worker process from the client's
``nbgrader_config.py`` and ``source/<assignment>`` (shipped with the task, so a worker needs the
``cvcourse`` package, nbgrader and bubblewrap, not the course checkout), in the same sandbox kernel
with the same timeouts. What comes back is a :class:`cvcourse.grading.autograde.Graded`: scores,
flags and nbgrader's log, and with ``--keep``/``--feedback`` the graded files and gradebook rows,
merged on the client into one course folder (:mod:`cvcourse.grading.gradebook`). The static report
is computed on the client, from the notebooks it sent, as in a local run.

Failures are never silent: a task whose worker died (the scheduler raises ``KilledWorker`` once its
``allowed-failures`` are used up) or that failed on the worker (``nbgrader autograde`` ran past its
limit and was killed, the course could not be generated there) is sent once more, to another worker
when there is one; when that fails too the student is reported as *not graded* with both reasons.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import nbformat

from cvcourse.grading.autograde import Graded, grade_student, grading_env, not_graded
from cvcourse.grading.course import make_course

#: How many times a submission is sent before it is reported as not graded.
ATTEMPTS = 2

#: Seconds to wait for the scheduler to have at least one worker.
WORKER_WAIT = 120

_BASES: dict[str, Path] = {}
_LOCK = threading.Lock()


class TaskFailed(RuntimeError):
    """A grading task failed on a worker: ``TaskFailed(worker_address, message)``."""

    @property
    def worker(self) -> str:
        return self.args[0]

    def __str__(self) -> str:
        return f"{self.args[1]} (on {self.args[0]})"


def course_bundle(assignments_dir: Path, assignment: str) -> dict[str, bytes]:
    """``nbgrader_config.py`` and ``source/<assignment>/`` as ``{assignments-relative posix path: bytes}``."""
    assignments_dir = Path(assignments_dir)
    files = {"nbgrader_config.py": (assignments_dir / "nbgrader_config.py").read_bytes()}
    src = assignments_dir / "source" / assignment
    if not src.is_dir():
        raise FileNotFoundError(f"no assignment {assignment!r} in {assignments_dir / 'source'}")
    for path in sorted(src.rglob("*")):
        if path.is_file() and not {".ipynb_checkpoints", "__pycache__"} & set(path.parts):
            files[path.relative_to(assignments_dir).as_posix()] = path.read_bytes()
    return files


def _digest(bundle: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name, data in sorted(bundle.items()):
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def _base_course(bundle: dict[str, bytes], assignment: str) -> Path:
    """The assignment generated once per worker process (and per course version) for its tasks to copy."""
    key = f"{_digest(bundle)}:{assignment}"
    with _LOCK:
        base = _BASES.get(key)
        if base is not None and (base / "gradebook.db").is_file():
            return base
        root = Path(tempfile.mkdtemp(prefix="cvcourse-worker-"))
        for rel, data in bundle.items():
            path = PurePosixPath(rel)
            if path.is_absolute() or ".." in path.parts or not (rel == "nbgrader_config.py" or path.parts[0] == "source"):
                raise ValueError(f"refusing course file {rel!r}")
            dst = root / "assignments" / path
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
        _BASES[key] = make_course(root / "assignments", root / "base", [assignment])
        return _BASES[key]


def _worker_address() -> str:
    try:
        from distributed import get_worker  # noqa: PLC0415

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def grade_task(bundle: dict[str, bytes], assignment: str, student: str, notebooks: dict[str, str],
               args: list[str], sandbox: bool, collect: bool, limit: float | None) -> Graded:
    """Grade one student on a worker (the Dask task). ``notebooks`` is ``{file name: notebook JSON}``.

    Raises:
        TaskFailed: anything went wrong on the worker (the message says what, and where).
    """
    where = _worker_address()
    try:
        base = _base_course(bundle, assignment)
        with tempfile.TemporaryDirectory(prefix="cvcourse-task-") as tmp:
            course = Path(tmp) / "course"
            shutil.copytree(base, course)
            files = {name: nbformat.reads(text, as_version=4) for name, text in notebooks.items()}
            graded = grade_student(course, assignment, student, files, args, grading_env(sandbox), limit=limit,
                                   collect=collect)
    except Exception as err:  # noqa: BLE001  (sent back as one picklable error naming the worker)
        raise TaskFailed(where, f"{type(err).__name__}: {err}") from None
    graded.where = where
    return graded


def _failed_on(err: BaseException) -> str | None:
    if isinstance(err, TaskFailed):
        return err.worker
    last = getattr(err, "last_worker", None)  # distributed's KilledWorker
    return getattr(last, "address", last) if last is not None else None


def grade_on_cluster(scheduler, assignments_dir: Path, assignment: str,  # noqa: ANN001  (address or Client)
                     notebooks: dict[str, dict[str, nbformat.NotebookNode]], args: list[str], *, sandbox: bool,
                     collect: bool, limit: float | None, done: Callable[[Graded], None],
                     notify: Callable[[str], None] | None = None, attempts: int = ATTEMPTS) -> None:
    """Send one :func:`grade_task` per student to the cluster; call ``done`` with each result as it comes.

    Args:
        scheduler: the scheduler's address (``tcp://host:8786``) or a ``distributed.Client``.
        done: called once per student, with the result or with a *not graded* result after
            ``attempts`` failures.
        notify: called with a line for each retry.
    """
    try:
        from distributed import Client, as_completed  # noqa: PLC0415
    except ImportError as err:
        raise ImportError("--scheduler needs the `distributed` package: pip install distributed") from err
    bundle = course_bundle(assignments_dir, assignment)
    texts = {s: {name: nbformat.writes(nb) for name, nb in files.items()} for s, files in notebooks.items()}
    own = not isinstance(scheduler, Client)
    client = Client(scheduler, timeout=60) if own else scheduler
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError as err:
            raise RuntimeError(f"the Dask scheduler at {client.scheduler.address} has no worker after "
                               f"{WORKER_WAIT} s; start some with: dask worker {client.scheduler.address}") from err
        batch = uuid.uuid4().hex[:8]
        pending: dict = {}

        def submit(student: str, history: list[str], avoid: str | None = None) -> None:
            workers = [w for w in client.scheduler_info()["workers"] if w != avoid] if avoid else []
            where = {"workers": workers, "allow_other_workers": True} if workers else {}  # another one if there is
            future = client.submit(grade_task, bundle, assignment, student, texts[student], args, sandbox, collect,
                                   limit, key=f"cvcourse-grade-{batch}-{student}-{len(history)}", retries=0, **where)
            pending[future] = (student, history)
            return future

        queue = as_completed([submit(s, []) for s in sorted(notebooks)])
        for future in queue:
            student, history = pending.pop(future)
            try:
                graded = future.result()
            except Exception as err:  # noqa: BLE001  (KilledWorker, TaskFailed, a lost connection)
                history = [*history, f"{type(err).__name__}: {err}"]
                if len(history) < attempts:
                    if notify is not None:
                        notify(f"{student}: attempt {len(history)} failed ({history[-1]}); sending it once more")
                    queue.add(submit(student, history, avoid=_failed_on(err)))
                    continue
                graded = not_graded(student, f"{len(history)} attempts failed: " + " | ".join(history), history)
            else:
                graded.attempts = history
            done(graded)
    finally:
        if own:
            client.close()
