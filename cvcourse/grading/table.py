"""The grade table, progress lines and CSV of ``python -m cvcourse.grading grade``
(results from :mod:`cvcourse.grading.autograde`).

The table has one column per *task* (an answer cell of the release notebook, with the test cells
below it up to the next answer cell), ``score/max`` summed over those test cells, so that it stays
readable at 100 columns; the CSV keeps one column per test cell.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nbformat

#: Width the grade table aims for.
WIDTH = 100


def _grade_ids(results: dict) -> list[str]:
    return sorted({gid for r in results.values() for gid in r.scores})


def tasks_of(release_dir: Path) -> dict[str, str]:
    """``{test grade_id: task}``: each graded cell belongs to the answer cell above it (notebook order).

    Graded cells above the first answer cell belong to a task named after themselves.
    """
    tasks: dict[str, str] = {}
    for path in sorted(Path(release_dir).glob("*.ipynb")):
        current = None
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            gid = meta.get("grade_id")
            if not gid:
                continue
            if meta.get("solution") and not meta.get("grade"):
                current = gid
            elif meta.get("grade"):
                tasks[gid] = current or gid
    return tasks


def _fmt(x: float) -> str:
    return f"{x:g}"


def format_table(results: dict, tasks: dict[str, str] | None = None) -> str:
    """A plain-text table: one row per student, one column per task (``score/max``), then the total.

    Args:
        tasks: ``{grade_id: task}`` (:func:`tasks_of`); without it, one column per graded cell.
    """
    ids = _grade_ids(results)
    order = [g for g in (tasks or {}) if g in ids] + [g for g in ids if g not in (tasks or {})]  # notebook order
    tasks = {g: (tasks or {}).get(g, g) for g in ids}
    columns = list(dict.fromkeys(tasks[g] for g in order))
    width = max([len("student")] + [len(s) for s in results])
    cells_of = {}
    for name, r in results.items():
        per = {}
        for g in ids:
            score, top = r.scores.get(g, (0.0, 0.0))
            s, m = per.get(tasks[g], (0.0, 0.0))
            per[tasks[g]] = (s + score, m + top)
        cells_of[name] = {t: f"{_fmt(s)}/{_fmt(m)}" if m else "-" for t, (s, m) in per.items()}
    col_w = {t: max([len(t)] + [len(c.get(t, "-")) for c in cells_of.values()]) for t in columns}
    head = f"{'student':<{width}}  " + "  ".join(f"{t:>{col_w[t]}}" for t in columns) + "  total"
    rows = [head, "-" * len(head)]
    for name, r in sorted(results.items()):
        cells = [f"{cells_of[name].get(t, '-'):>{col_w[t]}}" for t in columns]
        mark = "  <- needs a look" if r.flags else ""
        rows.append(f"{name:<{width}}  " + "  ".join(cells) + f"  {_fmt(r.total)}/{_fmt(r.max_total)}{mark}")
    return "\n".join(rows)


def format_progress(done: int, total: int, graded) -> str:  # noqa: ANN001  (autograde.Graded)
    """One line for a finished submission: ``[3/40] alice  18/18  12.3 s  (on worker)``."""
    r = graded.result
    what = "NOT GRADED" if any(f.startswith("not graded") for f in r.flags) else f"{_fmt(r.total)}/{_fmt(r.max_total)}"
    extra = []
    if r.flags:
        extra.append(f"needs a look ({len(r.flags)})")
    if graded.where:
        extra.append(f"on {graded.where}")
    if graded.attempts:
        extra.append(f"after {len(graded.attempts)} failed attempt(s)")
    tail = f"  {'; '.join(extra)}" if extra else ""
    return f"[{done:>{len(str(total))}}/{total}] {r.student}  {what}  {r.seconds:.1f} s{tail}"


def _one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_flags(results: dict, width: int | None = None) -> str:
    """The "Needs a look" list: one line per reason, empty when no student was flagged.

    With ``width`` each line is cut to that many characters (the full reasons are in the CSV).
    """
    lines = [f"  {name}: {flag}" for name, r in sorted(results.items()) for flag in r.flags]
    if width:
        lines = [_one_line(line, width) for line in lines]
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
