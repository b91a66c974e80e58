"""The grade table and CSV of ``python -m cvcourse.grading grade`` (results from :mod:`cvcourse.grading.autograde`)."""

from __future__ import annotations

import csv
from pathlib import Path


def _grade_ids(results: dict) -> list[str]:
    return sorted({gid for r in results.values() for gid in r.scores})


def format_table(results: dict) -> str:
    """A plain-text table: one row per student, one column per graded cell, then the total."""
    ids = _grade_ids(results)
    width = max([len("student")] + [len(s) for s in results])
    head = f"{'student':<{width}}  " + "  ".join(ids) + "  total"
    rows = [head, "-" * len(head)]
    for name, r in sorted(results.items()):
        cells = [f"{r.scores.get(g, (0.0, 0.0))[0]:>{len(g)}g}" for g in ids]
        mark = "  <- needs a look" if r.flags else ""
        rows.append(f"{name:<{width}}  " + "  ".join(cells) + f"  {r.total:g}/{r.max_total:g}{mark}")
    return "\n".join(rows)


def format_flags(results: dict) -> str:
    """The "Needs a look" list: one line per reason, empty when no student was flagged."""
    lines = [f"  {name}: {flag}" for name, r in sorted(results.items()) for flag in r.flags]
    return "Needs a look:\n" + "\n".join(lines) if lines else ""


def write_csv(results: dict, path: Path) -> None:
    """Per-cell scores, totals and the reasons to look, one row per student."""
    ids = _grade_ids(results)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", *ids, "total", "max_total", "needs_a_look"])
        for name, r in sorted(results.items()):
            w.writerow([name, *[r.scores.get(g, (0.0, 0.0))[0] for g in ids], r.total, r.max_total,
                        "; ".join(r.flags)])
