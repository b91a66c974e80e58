"""Command line of the grading tools (see README.md, "For instructors").

    python -m cvcourse.grading install-kernel [--sys-prefix | --prefix DIR]
    python -m cvcourse.grading generate [ASSIGNMENT ...] [--course DIR]
    python -m cvcourse.grading grade ASSIGNMENT SUBMISSIONS_DIR [--jobs N | --scheduler tcp://HOST:PORT]
                                     [--csv FILE] [--keep DIR] [--feedback DIR] [--timeout S]
                                     [--no-sandbox] [--course DIR]
    python -m cvcourse.grading samples ASSIGNMENT SAMPLES_DIR OUT_DIR [--submitted]
    python -m cvcourse.grading similarity ASSIGNMENT SUBMISSIONS_DIR [--html F] [--csv F] [--release DIR]
    python -m cvcourse.grading lms {canvas,moodle,moodle-gradebook} ASSIGNMENT (--grades CSV | --gradebook DB) -o OUT

The course checkout (the folder holding ``assignments/nbgrader_config.py``) is ``--course``, else
``$CVCOURSE_ROOT``, else the current folder or a parent of it (:func:`cvcourse.grading.course.repo_root`).
``grade`` takes the layouts of :func:`cvcourse.grading.autograde.collect_submissions`, prints one
line per finished submission, then a table of scores per task, the time per submission and the
students whose notebook needs a look, and exits with status 1 when any student was flagged.
``samples`` turns ``.py`` sample submissions into the notebooks students would hand in.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cvcourse.grading", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("install-kernel", help="install the sandboxed kernelspec (idempotent)")
    k.add_argument("--sys-prefix", action="store_true", help="into this Python environment (default)")
    k.add_argument("--prefix", help="into another prefix")
    g = sub.add_parser("generate", help="regenerate assignments/release and solutions from assignments/source")
    g.add_argument("assignments", nargs="*")
    a = sub.add_parser("grade", help="autograde a folder of submissions in the sandbox, in parallel")
    a.add_argument("assignment")
    a.add_argument("submissions", type=Path)
    a.add_argument("--jobs", type=int, default=None, help="parallel workers of the local pool (default: CPU cores)")
    a.add_argument("--scheduler", help="grade on a Dask cluster: the scheduler's address, e.g. tcp://10.0.0.5:8786")
    a.add_argument("--csv", type=Path, help="also write the per-cell scores here")
    a.add_argument("--keep", type=Path, help="write one nbgrader course folder here: merged gradebook.db, "
                                             "submitted/ and autograded/")
    a.add_argument("--feedback", type=Path, help="write each student's HTML feedback to DIR/<student>/")
    a.add_argument("--submission-timeout", type=float, default=None,
                   help="seconds one submission's nbgrader run may take before it is killed (default: 1800)")
    a.add_argument("--timeout", type=int, help="per-cell timeout in seconds (default: nbgrader_config.py)")
    a.add_argument("--no-sandbox", action="store_true", help="UNSAFE: run student code unsandboxed")
    sm = sub.add_parser("samples", help="turn .py sample submissions into handed-in notebooks")
    sm.add_argument("assignment")
    sm.add_argument("samples", type=Path, help="a folder of sample .py files, or one file")
    sm.add_argument("out", type=Path)
    sm.add_argument("--submitted", action="store_true",
                    help="write nbgrader's submitted/<student>/<assignment>/ layout (default: <student>.ipynb)")
    for p in (g, a, sm):
        p.add_argument("--course", type=Path, help="the course checkout (default: $CVCOURSE_ROOT or the current folder)")
    from cvcourse.grading import lms, similarity  # noqa: PLC0415  (after-grading subcommands)

    similarity.register(sub)
    lms.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd in ("similarity", "lms"):
        from cvcourse.grading import lms, similarity  # noqa: PLC0415

        return {"similarity": similarity, "lms": lms}[args.cmd].run(args)
    if args.cmd == "install-kernel":
        from cvcourse.grading.sandbox import install_kernel  # noqa: PLC0415

        print(install_kernel(args.prefix))
        return 0

    from cvcourse.grading.course import CourseNotFoundError, repo_root  # noqa: PLC0415

    try:
        assignments_dir = repo_root(args.course) / "assignments"
    except CourseNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.cmd == "generate":
        from cvcourse.grading.generate import generate  # noqa: PLC0415

        for path in generate(assignments_dir, assignments=args.assignments or None):
            print(f"wrote {path}")
        return 0

    if args.cmd == "samples":
        from cvcourse.grading.submissions import write_samples  # noqa: PLC0415

        for path in write_samples(assignments_dir / "release" / args.assignment, args.samples, args.out,
                                  assignment=args.assignment if args.submitted else None):
            print(f"wrote {path}")
        return 0

    from cvcourse.grading.autograde import SUBMISSION_TIMEOUT, collect_submissions, grade_batch  # noqa: PLC0415
    from cvcourse.grading.table import WIDTH, format_flags, format_progress, format_table, tasks_of, write_csv  # noqa: PLC0415

    release_dir = assignments_dir / "release" / args.assignment
    if not args.submissions.is_dir():
        print(f"error: {args.submissions} is not a folder of submissions", file=sys.stderr)
        return 2
    notebooks = collect_submissions(args.assignment, args.submissions, release_dir)
    if not notebooks:
        print(f"no submissions found in {args.submissions}", file=sys.stderr)
        return 2
    if args.scheduler and args.jobs:
        print("error: --jobs is for the local pool; with --scheduler the cluster's workers decide", file=sys.stderr)
        return 2
    if args.no_sandbox:
        print("WARNING: grading WITHOUT the sandbox; student code can read hidden tests and the gradebook",
              file=sys.stderr)
    where = f"on the Dask cluster at {args.scheduler}" if args.scheduler else f"{args.jobs or 'all'} local workers"
    print(f"grading {len(notebooks)} submissions of {args.assignment} ({where})", flush=True)
    start = time.monotonic()
    results, _ = grade_batch(
        args.assignment, notebooks, assignments_dir=assignments_dir, jobs=args.jobs, sandbox=not args.no_sandbox,
        timeout=args.timeout, keep=args.keep, feedback=args.feedback, scheduler=args.scheduler,
        limit=args.submission_timeout or SUBMISSION_TIMEOUT,
        progress=lambda done, total, graded: print(format_progress(done, total, graded), flush=True),
        notify=lambda line: print(line, file=sys.stderr, flush=True))
    wall = time.monotonic() - start
    print()
    print(format_table(results, tasks_of(release_dir)))
    print(f"\n{len(results)} submissions in {wall:.1f} s wall time ({wall / len(results):.1f} s per submission, "
          f"{where}, including generating the assignment)")
    if args.keep:
        print(f"course folder with one gradebook: {args.keep}")
    if args.feedback:
        print(f"feedback: {args.feedback}/<student>/*.html")
    flags = format_flags(results, width=WIDTH if args.csv else None)
    if flags:
        print("\n" + flags)
    if args.csv:
        write_csv(results, args.csv)
        print(f"per-cell scores and the full reasons: {args.csv}")
    return 1 if flags else 0


if __name__ == "__main__":
    sys.exit(main())
