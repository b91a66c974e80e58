"""Command line of the grading tools (see README.md, "For instructors").

    python -m cvcourse.grading install-kernel [--sys-prefix | --prefix DIR]
    python -m cvcourse.grading generate [ASSIGNMENT ...]
    python -m cvcourse.grading grade ASSIGNMENT SUBMISSIONS_DIR [--jobs N] [--csv FILE] [--keep DIR]
                                     [--timeout S] [--no-sandbox]

``grade`` accepts ``SUBMISSIONS_DIR/<student>/<assignment>/*.ipynb`` (nbgrader's ``submitted/``
layout, e.g. after ``nbgrader zip_collect``), ``SUBMISSIONS_DIR/<student>/*.ipynb`` or
``SUBMISSIONS_DIR/<student>.ipynb``, plus ``.py`` submission files (cvcourse.grading.submissions)
for tests and demos. It prints a table of scores, the time per submission and the students whose
notebook needs a look, and exits with status 1 when any student was flagged.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import nbformat


def _collect(assignment: str, folder: Path, release_dir: Path) -> dict[str, dict[str, nbformat.NotebookNode]]:
    from cvcourse.grading.submissions import build_submission  # noqa: PLC0415

    found: dict[str, dict[str, nbformat.NotebookNode]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            inner = entry / assignment if (entry / assignment).is_dir() else entry
            nbs = sorted(inner.glob("*.ipynb"))
            if nbs:
                found[entry.name] = {p.name: nbformat.read(p, as_version=4) for p in nbs}
        elif entry.suffix == ".ipynb":
            release = sorted(release_dir.glob("*.ipynb"))
            found[entry.stem] = {release[0].name: nbformat.read(entry, as_version=4)}
        elif entry.suffix == ".py":
            found[entry.stem] = build_submission(release_dir, entry)
    return found


def format_table(results: dict) -> str:
    """A plain-text table: one row per student, one column per graded cell, then the total."""
    ids = sorted({gid for r in results.values() for gid in r.scores})
    width = max([len("student")] + [len(s) for s in results])
    head = f"{'student':<{width}}  " + "  ".join(ids) + "  total"
    rows = [head, "-" * len(head)]
    for name, r in sorted(results.items()):
        cells = [f"{r.scores.get(g, (0.0, 0.0))[0]:>{len(g)}g}" for g in ids]
        mark = "  <- needs a look" if r.flags else ""
        rows.append(f"{name:<{width}}  " + "  ".join(cells) + f"  {r.total:g}/{r.max_total:g}{mark}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
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
    from cvcourse.grading import lms, similarity  # noqa: PLC0415  (after-grading subcommands)

    similarity.register(sub)
    lms.register(sub)
    args = parser.parse_args(argv)
    if args.cmd in ("similarity", "lms"):
        return {"similarity": similarity, "lms": lms}[args.cmd].run(args)

    if args.cmd == "install-kernel":
        from cvcourse.grading.sandbox import install_kernel  # noqa: PLC0415

        print(install_kernel(args.prefix))
        return 0
    if args.cmd == "generate":
        from cvcourse.grading.generate import generate  # noqa: PLC0415

        for path in generate(assignments=args.assignments or None):
            print(f"wrote {path}")
        return 0

    from cvcourse.grading.autograde import grade_batch  # noqa: PLC0415
    from cvcourse.grading.generate import repo_root  # noqa: PLC0415

    release_dir = repo_root() / "assignments" / "release" / args.assignment
    notebooks = _collect(args.assignment, args.submissions, release_dir)
    if not notebooks:
        print(f"no submissions found in {args.submissions}", file=sys.stderr)
        return 2
    if args.no_sandbox:
        print("WARNING: grading WITHOUT the sandbox; student code can read hidden tests and the gradebook",
              file=sys.stderr)
    start = time.monotonic()
    results, _ = grade_batch(args.assignment, notebooks, jobs=args.jobs, sandbox=not args.no_sandbox,
                             timeout=args.timeout, keep=args.keep)
    wall = time.monotonic() - start
    print(format_table(results))
    print(f"\n{len(results)} submissions in {wall:.1f} s wall time ({wall / len(results):.1f} s per submission, "
          f"{args.jobs or 'all'} parallel workers, including generating the assignment once)")
    flagged = {n: r for n, r in results.items() if r.flags}
    if flagged:
        print("\nNeeds a look:")
        for name, r in sorted(flagged.items()):
            for flag in r.flags:
                print(f"  {name}: {flag}")
    if args.csv:
        ids = sorted({gid for r in results.values() for gid in r.scores})
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["student", *ids, "total", "max_total", "needs_a_look"])
            for name, r in sorted(results.items()):
                w.writerow([name, *[r.scores.get(g, (0.0, 0.0))[0] for g in ids], r.total, r.max_total,
                            "; ".join(r.flags)])
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
