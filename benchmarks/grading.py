"""Benchmark: grading throughput, the local process pool against a 2-worker Dask cluster on 127.0.0.1.

    OMP_NUM_THREADS=1 CVCOURSE_FAST=1 .venv/bin/python benchmarks/grading.py --students 4

The same submissions (the first ``--students`` of the correct and buggy iou_nms samples) are graded
by ``grade_batch(jobs=2)`` and by ``grade_batch(scheduler=...)`` on a ``LocalCluster(n_workers=2,
threads_per_worker=1, processes=True)``; the grades must be equal. Reported per mode: wall time and
CPU seconds of this process and all its finished descendants (nbgrader, kernels, Dask workers:
``os.times()``), which includes generating the assignment (once locally, once per Dask worker
process) and, for Dask, starting the cluster. On a shared machine the CPU seconds are the number to
trust; a grading worker is one core, so CPU-s per submission is also core-seconds per submission.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> int:
    from grading_harness import ASSIGNMENTS, build_submission, submission_files  # noqa: PLC0415

    from cvcourse.grading.autograde import grade_batch  # noqa: PLC0415
    from cvcourse.grading.sandbox import ensure_kernel  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=4)
    args = parser.parse_args()
    names = [n for n in submission_files("iou_nms") if n.startswith(("correct_", "bug_"))][: args.students]
    release = ASSIGNMENTS / "release" / "iou_nms"
    notebooks = {n: build_submission(release, p) for n, p in submission_files("iou_nms", names).items()}
    ensure_kernel()
    rows = {}
    for mode in ("local", "dask"):
        c0, w0 = _cpu(), time.monotonic()
        if mode == "local":
            results, _ = grade_batch("iou_nms", notebooks, assignments_dir=ASSIGNMENTS, jobs=2)
        else:
            from distributed import LocalCluster  # noqa: PLC0415

            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None, silence_logs=40) as cluster:
                results, _ = grade_batch("iou_nms", notebooks, assignments_dir=ASSIGNMENTS,
                                         scheduler=cluster.scheduler_address)
        rows[mode] = (time.monotonic() - w0, _cpu() - c0, {s: (r.scores, r.flags) for s, r in results.items()})
    same = rows["local"][2] == rows["dask"][2]
    print(f"{len(notebooks)} iou_nms submissions ({', '.join(names)}); grades equal: {same}")
    print("mode   wall s  CPU s  CPU s/submission")
    for mode, (wall, cpu, _) in rows.items():
        print(f"{mode:<5} {wall:7.1f} {cpu:6.1f} {cpu / len(notebooks):8.1f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
