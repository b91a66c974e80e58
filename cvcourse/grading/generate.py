"""Regenerate ``assignments/release/`` and ``solutions/`` from ``assignments/source/``.

* ``release/<a>/`` is what ``nbgrader generate_assignment`` writes (solutions replaced by
  ``raise NotImplementedError()``, hidden tests removed, cells locked and checksummed), produced in
  a throw-away course folder so the committed gradebook-free tree stays clean.
* ``solutions/<a>/`` is the source with the ``### BEGIN/END SOLUTION`` marker lines removed (the
  solution code stays), the ``### BEGIN/END HIDDEN TESTS`` regions removed, and outputs cleared.
  (``nbgrader generate_solution`` alone would keep the hidden tests and the markers, and execute
  the notebook.)

``python -m cvcourse.grading generate`` runs this; ``tests/test_grading_generate.py`` checks that
the committed trees equal a fresh regeneration and that nothing secret leaks into ``release/``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nbformat

from cvcourse.grading.course import list_assignments, make_course, repo_root
from cvcourse.grading.feedback import strip_hidden_tests

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def solution_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The released solution of a source notebook: markers gone, hidden tests gone, outputs cleared."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source, _ = strip_hidden_tests(cell.source, note=None)
            cell.outputs = []
            cell.execution_count = None
        lines = [ln for ln in cell.source.split("\n") if ln.strip() not in SOLUTION_MARKERS]
        cell.source = "\n".join(lines)
        cell.metadata.pop("nbgrader", None)  # plain notebook, not a graded one
    return nb


def generate(assignments_dir: Path | None = None, solutions_dir: Path | None = None,
             assignments: list[str] | None = None) -> list[Path]:
    """Rewrite ``release/<a>`` and ``solutions/<a>`` for every (or the named) assignment.

    ``assignments_dir`` defaults to the ``assignments/`` of :func:`cvcourse.grading.course.repo_root`.

    Returns:
        The folders written.
    """
    assignments_dir = Path(assignments_dir or repo_root() / "assignments")
    solutions_dir = Path(solutions_dir or assignments_dir.parent / "solutions")
    names = assignments or list_assignments(assignments_dir)
    written = []
    with tempfile.TemporaryDirectory(prefix="cvcourse-generate-") as tmp:
        course = make_course(assignments_dir, Path(tmp) / "course", names)
        for name in names:
            dst = assignments_dir / "release" / name
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(course / "release" / name, dst)
            written.append(dst)
            sol = solutions_dir / name
            if sol.exists():
                shutil.rmtree(sol)
            src = assignments_dir / "source" / name
            for path in sorted(src.rglob("*")):
                if ".ipynb_checkpoints" in path.parts or "__pycache__" in path.parts or path.is_dir():
                    continue
                out = sol / path.relative_to(src)
                out.parent.mkdir(parents=True, exist_ok=True)
                if path.suffix == ".ipynb":
                    nbformat.write(solution_notebook(nbformat.read(path, as_version=4)), out)
                else:
                    shutil.copy2(path, out)
            written.append(sol)
    return written
