"""Command line of the grading tools (see README.md, "For instructors").

    python -m cvcourse.grading install-kernel [--sys-prefix | --prefix DIR]
    python -m cvcourse.grading generate [ASSIGNMENT ...] [--course DIR]
    python -m cvcourse.grading grade ASSIGNMENT SUBMISSIONS_DIR [--jobs N] [--csv FILE] [--keep DIR]
                                     [--timeout S] [--no-sandbox] [--course DIR]
    python -m cvcourse.grading similarity ASSIGNMENT SUBMISSIONS_DIR [--html F] [--csv F] [--release DIR]
    python -m cvcourse.grading lms {canvas,moodle,moodle-gradebook} ASSIGNMENT (--grades CSV | --gradebook DB) -o OUT

The course checkout (the folder holding ``assignments/nbgrader_config.py``) is ``--course``, else
``$CVCOURSE_ROOT``, else the current folder or a parent of it (:func:`cvcourse.grading.course.repo_root`).
``grade`` takes the layouts of :func:`cvcourse.grading.autograde.collect_submissions`, prints a table
of scores, the time per submission and the students whose notebook needs a look, and exits with
status 1 when any student was flagged.
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
    a.add_argument("--jobs", type=int, default=None, help="parallel workers (default: CPU cores)")
    a.add_argument("--csv", type=Path, help="also write the per-cell scores here")
    a.add_argument("--keep", type=Path, help="keep the autograded notebooks and gradebooks here")
    a.add_argument("--timeout", type=int, help="per-cell timeout in seconds (default: nbgrader_config.py)")
    a.add_argument("--no-sandbox", action="store_true", help="UNSAFE: run student code unsandboxed")
    for p in (g, a):
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

    from cvcourse.grading.autograde import collect_submissions, grade_batch  # noqa: PLC0415
    from cvcourse.grading.table import format_flags, format_table, write_csv  # noqa: PLC0415

    notebooks = collect_submissions(args.assignment, args.submissions, assignments_dir / "release" / args.assignment)
    if not notebooks:
        print(f"no submissions found in {args.submissions}", file=sys.stderr)
        return 2
    if args.no_sandbox:
        print("WARNING: grading WITHOUT the sandbox; student code can read hidden tests and the gradebook",
              file=sys.stderr)
    start = time.monotonic()
    results, _ = grade_batch(args.assignment, notebooks, assignments_dir=assignments_dir, jobs=args.jobs,
                             sandbox=not args.no_sandbox, timeout=args.timeout, keep=args.keep)
    wall = time.monotonic() - start
    print(format_table(results))
    print(f"\n{len(results)} submissions in {wall:.1f} s wall time ({wall / len(results):.1f} s per submission, "
          f"{args.jobs or 'all'} parallel workers, including generating the assignment once)")
    flags = format_flags(results)
    if flags:
        print("\n" + flags)
    if args.csv:
        write_csv(results, args.csv)
    return 1 if flags else 0


if __name__ == "__main__":
    sys.exit(main())
