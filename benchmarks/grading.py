"""Benchmark: grading throughput of both assignments, the local process pool against a 2-worker Dask cluster.

    OMP_NUM_THREADS=1 CVCOURSE_FAST=1 .venv/bin/python benchmarks/grading.py            # 4 per assignment
    OMP_NUM_THREADS=1 CVCOURSE_FAST=1 .venv/bin/python benchmarks/grading.py --copies 1 # 2 per assignment

Each assignment (``iou_nms``; ``unpool_unet``, whose notebook trains a U-Net at grading) is graded from
``--copies`` copies of two sample submissions that run every cell (``SAMPLES``), as the students ``s<k>_<sample>``, twice:

* **local**: ``grade_batch(jobs=2)``, the local process pool (the assignment generated once, one
  ``nbgrader autograde`` per worker for its share of the students);
* **dask**: ``grade_batch(scheduler=...)`` on a ``LocalCluster(n_workers=2, threads_per_worker=1,
  processes=True)`` on 127.0.0.1 (one task, so one ``nbgrader autograde --student``, per submission).

The grades (scores and flags per student) of the two modes must be equal; the exit status is 1 if not.

What is measured, in CPU seconds (user + system; on a shared machine the robust number, and since a
grading worker is one process at a time, CPU-s per submission is core-seconds per submission):

* local: the whole ``grade_batch`` call (``os.times()`` of this process and its finished children:
  nbgrader, the sandbox kernels), which includes generating the assignment once and one nbgrader start
  per worker. Two fixed costs are also measured on their own, in a course generated for that
  purpose: ``generate`` (``nbgrader generate_assignment``) and ``nbgrader start`` (``nbgrader
  autograde ASSIGNMENT --student=nobody``, which imports torch through ``nbgrader_config.py``, finds
  no notebook and exits);
* dask: this process (client and scheduler) plus every worker process (``os.times()`` read on each
  worker through ``client.run`` before and after), separately for starting the cluster, for
  generating the assignment on each worker (done up front, by :func:`cvcourse.grading.cluster._base_course`,
  so the batch measures the tasks alone), and for the batch.

Wall time and submissions per minute are reported too, with the load average before and after each
phase: on a machine shared with other jobs they say how busy it was, not how fast grading is.
Writes the "Grading throughput" section of ``benchmarks/RESULTS.md`` (``--out`` for another file).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

#: Per assignment, two samples that run every cell: for iou_nms a correct one and one with a bug; for
#: unpool_unet the two correct ones (vectorised; loops and a BatchNorm U-Net), since a buggy sample's
#: U-Net is a stub that never trains and would make the grading look cheaper than a real class's.
SAMPLES = {"iou_nms": ["correct_vectorised", "bug_nms_ge"], "unpool_unet": ["correct_vectorised", "correct_loops"]}
BEGIN, END = "<!-- grading benchmark: begin -->", "<!-- grading benchmark: end -->"


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished (waited-for) children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


class Phase:
    """Wall and CPU seconds of a block: this process, plus the workers' CPU when ``workers`` is given."""

    def __init__(self, client=None):  # noqa: ANN001  (a distributed.Client or None)
        self.client = client

    def _workers(self) -> float:
        return sum(self.client.run(cpu_seconds).values()) if self.client is not None else 0.0

    def __enter__(self) -> Phase:
        self.load0 = _load()
        self.c0, self.w0, self.t0 = cpu_seconds(), self._workers(), time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.monotonic() - self.t0
        self.own = cpu_seconds() - self.c0
        self.workers = self._workers() - self.w0
        self.cpu = self.own + self.workers
        self.load1 = _load()


def _grades(results: dict) -> dict:
    return {s: (r.scores, r.flags) for s, r in results.items()}


def measure_local(assignment: str, notebooks: dict, assignments: Path) -> dict:
    from cvcourse.grading.autograde import grade_batch, grading_env  # noqa: PLC0415
    from cvcourse.grading.course import make_course, nbgrader_cmd  # noqa: PLC0415

    row: dict = {}
    with tempfile.TemporaryDirectory(prefix="cvcourse-bench-") as tmp:
        with Phase() as gen:
            course = make_course(assignments, Path(tmp) / "course", [assignment])
        with Phase() as start:
            proc = subprocess.run(nbgrader_cmd() + ["autograde", assignment, "--student=nobody"], cwd=course,
                                  env=grading_env(), capture_output=True, text=True)
        if "No notebooks were matched" not in proc.stdout + proc.stderr:  # nbgrader started, found no one: exit 1
            raise RuntimeError(f"nbgrader autograde --student=nobody failed:\n{proc.stdout}\n{proc.stderr}")
    row["generate"], row["start"] = gen.cpu, start.cpu
    with Phase() as batch:
        results, _ = grade_batch(assignment, notebooks, assignments_dir=assignments, jobs=2)
    row["batch"], row["grades"] = batch, _grades(results)
    return row


def measure_dask(assignments_list: list[str], notebooks: dict, assignments: Path) -> tuple[Phase, dict]:
    import dask  # noqa: PLC0415
    from distributed import Client, LocalCluster, wait  # noqa: PLC0415

    from cvcourse.grading import cluster  # noqa: PLC0415
    from cvcourse.grading.autograde import grade_batch  # noqa: PLC0415

    rows: dict = {}
    c0, t0, load0 = cpu_seconds(), time.monotonic(), _load()
    with dask.config.set({"distributed.scheduler.worker-ttl": None}):  # a busy worker is not a dead one
        lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=40)
    with lc, Client(lc) as client:
        client.wait_for_workers(2)
        startup = Phase(client)
        startup.wall, startup.own, startup.load0, startup.load1 = time.monotonic() - t0, cpu_seconds() - c0, load0, _load()
        startup.workers = sum(client.run(cpu_seconds).values())  # each worker's whole life so far
        startup.cpu = startup.own + startup.workers
        workers = list(client.scheduler_info()["workers"])
        for assignment in assignments_list:
            bundle = cluster.course_bundle(assignments, assignment)
            with Phase(client) as gen:  # what the first task on each worker would pay, paid up front
                wait([client.submit(cluster._base_course, bundle, assignment, workers=[w], allow_other_workers=False,
                                    pure=False) for w in workers])
            with Phase(client) as batch:
                results, _ = grade_batch(assignment, notebooks[assignment], assignments_dir=assignments,
                                         scheduler=lc.scheduler_address)
            rows[assignment] = {"generate": gen, "batch": batch, "grades": _grades(results)}
    return startup, rows


def _table(n: dict, local: dict, startup: Phase, dask_rows: dict) -> list[str]:
    lines = ["| assignment | mode | submissions | wall s | submissions/min (wall) | CPU-s | CPU-s per submission | "
             "load avg before -> after |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for a in local:
        b = local[a]["batch"]
        lines.append(f"| {a} | local pool, 2 workers (incl. generating once, 2 nbgrader starts) | {n[a]} | {b.wall:.0f} | "
                     f"{60 * n[a] / b.wall:.1f} | {b.cpu:.1f} | {b.cpu / n[a]:.1f} | {b.load0} -> {b.load1} |")
        d = dask_rows[a]["batch"]
        lines.append(f"| {a} | Dask, 2 workers, warm (tasks only) | {n[a]} | {d.wall:.0f} | {60 * n[a] / d.wall:.1f} | "
                     f"{d.cpu:.1f} | {d.cpu / n[a]:.1f} | {d.load0} -> {d.load1} |")
    lines += ["", "Fixed costs (CPU-s; paid once, not per submission):", "",
              "| what | assignment | CPU-s | wall s |", "|---|---|---:|---:|"]
    for a in local:
        lines.append(f"| `nbgrader generate_assignment` (local pool: once per batch) | {a} | {local[a]['generate']:.1f} | - |")
        lines.append(f"| one nbgrader start (`autograde --student=nobody`; local pool: once per worker, "
                     f"Dask: in every task) | {a} | {local[a]['start']:.1f} | - |")
    lines.append(f"| starting the 2-worker LocalCluster (both workers, imports included) | - | {startup.cpu:.1f} | "
                 f"{startup.wall:.0f} |")
    for a in dask_rows:
        g = dask_rows[a]["generate"]
        lines.append(f"| generating the assignment on each of the 2 Dask workers (both together) | {a} | {g.cpu:.1f} | "
                     f"{g.wall:.0f} |")
    return lines


def _projection(n: dict, local: dict, startup: Phase, dask_rows: dict, students: int = 1000) -> list[str]:
    task = {a: dask_rows[a]["batch"].cpu / n[a] for a in dask_rows}
    fixed = startup.cpu / 2 + sum(dask_rows[a]["generate"].cpu / 2 for a in dask_rows)
    total_task = sum(task.values())
    lines = [f"Projection from these numbers for {students} students x {len(task)} assignments on N single-core Dask "
             f"workers: CPU = {students} x ({' + '.join(f'{task[a]:.1f}' for a in task)}) + N x {fixed:.1f} "
             f"(per-worker start and generating both assignments); wall, if the N cores are free and the "
             "tasks spread evenly, = CPU / N.", "",
             "| N workers | CPU-s | core-hours | wall (ideal) |", "|---:|---:|---:|---:|"]
    for workers in (1, 8, 32, 100):
        cpu = students * total_task + workers * fixed
        lines.append(f"| {workers} | {cpu:,.0f} | {cpu / 3600:.1f} | {cpu / workers / 60:,.0f} min |")
    return lines


def write_section(path: Path, body: list[str]) -> None:
    text = path.read_text() if path.exists() else ""
    section = "\n".join([BEGIN, *body, END])
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    from grading_harness import ASSIGNMENTS, build_submission, submission_files  # noqa: PLC0415

    from cvcourse.grading.sandbox import ensure_kernel  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=2, help="copies of each sample (2 samples per assignment)")
    parser.add_argument("--assignments", nargs="+", default=list(SAMPLES), choices=list(SAMPLES))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    if args.copies < 1:
        parser.error(f"--copies must be at least 1, got {args.copies}")
    notebooks = {}
    for a in args.assignments:
        release = ASSIGNMENTS / "release" / a
        built = {name: build_submission(release, path) for name, path in submission_files(a, SAMPLES[a]).items()}
        notebooks[a] = {f"s{k}_{name}": nbs for k in range(args.copies) for name, nbs in built.items()}
    n = {a: len(nbs) for a, nbs in notebooks.items()}
    ensure_kernel()
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = _load()
    local = {}
    for a in args.assignments:
        local[a] = measure_local(a, notebooks[a], ASSIGNMENTS)
        print(f"local {a}: {local[a]['batch'].cpu:.1f} CPU-s, {local[a]['batch'].wall:.0f} s wall", flush=True)
    startup, dask_rows = measure_dask(args.assignments, notebooks, ASSIGNMENTS)
    for a in args.assignments:
        print(f"dask {a}: {dask_rows[a]['batch'].cpu:.1f} CPU-s, {dask_rows[a]['batch'].wall:.0f} s wall", flush=True)
    equal = {a: local[a]["grades"] == dask_rows[a]["grades"] for a in args.assignments}
    totals = {a: sorted({f"{sum(s for s, _ in sc.values()):g}/{sum(m for _, m in sc.values()):g}"
                         for sc, _ in local[a]["grades"].values()}) for a in args.assignments}
    cmd = "OMP_NUM_THREADS=1 CVCOURSE_FAST=1 python benchmarks/grading.py" + (
        f" --copies {args.copies}" if args.copies != 2 else "") + (
        f" --assignments {' '.join(args.assignments)}" if args.assignments != list(SAMPLES) else "")
    import distributed  # noqa: PLC0415
    import nbgrader  # noqa: PLC0415
    import torch  # noqa: PLC0415

    body = [
        "## Grading throughput: local pool against a 2-worker Dask cluster",
        "",
        f"Written by `benchmarks/grading.py` on {started:%Y-%m-%d %H:%M} UTC. Command: `{cmd}`.",
        f"Machine: {os.cpu_count()} logical cores ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}, torch {torch.__version__}, nbgrader {nbgrader.__version__}, distributed "
        f"{distributed.__version__}. Load average (1/5/15 min) at the start: {load_before}; at the end: {_load()}.",
        "",
        "Submissions: " + "; ".join(f"{a}: {args.copies} x ({', '.join(SAMPLES[a])}), graded {', '.join(totals[a])}"
                                    for a in args.assignments) + ". Grades (scores and flags of every student) "
        "equal in both modes: " + ", ".join(f"{a} **{'yes' if equal[a] else 'NO'}**" for a in args.assignments) + ".",
        "",
        "CPU-s: user + system seconds of every process involved (this process and its nbgrader and kernel "
        "children; for Dask also each worker process, read on the worker). The CPU-s column is the robust "
        "number; wall time and submissions/min depend on what else ran on the machine.",
        "",
        *_table(n, local, startup, dask_rows),
        "",
        *_projection(n, local, startup, dask_rows),
    ]
    write_section(args.out, body)
    print("\n".join(body))
    return 0 if all(equal.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
