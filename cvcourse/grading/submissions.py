"""Sample submissions as small ``.py`` files, turned into notebooks built from the release notebook.

Format of a submission file (``tests/submissions/<assignment>/<name>.py``): text before the first
marker is a free comment (say what the submission gets wrong); then sections, each starting with a
marker line::

    # -- cell: <grade_id> --          replace the source of the cell with this grade_id
    # -- delete: <grade_id> --        remove that cell (section body must be empty)
    # -- insert-after: <grade_id> --  add a new code cell with this body after that cell

``<grade_id>`` is the nbgrader ``grade_id`` of a cell in the release notebook (answer cells and
test cells alike, so a submission can also try to edit or delete a locked test cell). Unnamed
cells keep the release text. A whole notebook can be given instead: a submission path ending in
``.ipynb`` is used as it is. Assignments with several notebooks name the notebook in the marker:
``# -- cell: <notebook>:<grade_id> --`` (without ``<notebook>:`` the first notebook is meant).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

MARKER = re.compile(r"^# -- (cell|delete|insert-after): (?:(?P<nb>[\w.-]+):)?(?P<id>[\w.-]+) --\s*$")


@dataclass
class Section:
    """One section of a submission file."""

    action: str  # "cell", "delete" or "insert-after"
    grade_id: str
    source: str
    notebook: str | None = None


def parse_submission(text: str) -> list[Section]:
    """Split a submission file into its sections.

    Raises:
        ValueError: a ``delete`` section has a body, or a line looks like a malformed marker.
    """
    sections: list[Section] = []
    body: list[str] = []
    current: Section | None = None

    def close() -> None:
        if current is not None:
            current.source = "\n".join(body).strip("\n")
            if current.action == "delete" and current.source.strip():
                raise ValueError(f"delete section for {current.grade_id!r} must be empty")
            sections.append(current)

    for line in text.splitlines():
        m = MARKER.match(line)
        if m:
            close()
            current, body = Section(m.group(1), m.group("id"), "", m.group("nb")), []
        elif line.startswith("# -- ") and line.rstrip().endswith(" --") and current is None and ":" in line:
            raise ValueError(f"malformed submission marker: {line!r}")
        else:
            body.append(line)
    close()
    return sections


def _find(nb: nbformat.NotebookNode, grade_id: str) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return i
    raise KeyError(f"no cell with grade_id {grade_id!r} in the notebook")


def apply_sections(nb: nbformat.NotebookNode, sections: list[Section]) -> nbformat.NotebookNode:
    """Apply parsed sections to a copy of a (release) notebook."""
    nb = nbformat.from_dict(nb)
    for sec in sections:
        i = _find(nb, sec.grade_id)
        if sec.action == "cell":
            nb.cells[i].source = sec.source
        elif sec.action == "delete":
            del nb.cells[i]
        else:
            nb.cells.insert(i + 1, nbformat.v4.new_code_cell(sec.source))
    return nb


def build_submission(release_dir: Path, submission: Path) -> dict[str, nbformat.NotebookNode]:
    """The notebooks a student hands in, as ``{notebook_file_name: notebook}``.

    Args:
        release_dir: ``assignments/release/<assignment>``.
        submission: a ``.py`` submission file (format above) or a whole ``.ipynb``.
    """
    release = sorted(release_dir.glob("*.ipynb"))
    if not release:
        raise FileNotFoundError(f"no release notebook in {release_dir}; run python -m cvcourse.grading generate")
    if submission.suffix == ".ipynb":
        return {release[0].name: nbformat.read(submission, as_version=4)}
    sections = parse_submission(submission.read_text())
    out = {}
    for path in release:
        mine = [s for s in sections if (s.notebook or release[0].stem) == path.stem]
        out[path.name] = apply_sections(nbformat.read(path, as_version=4), mine)
    unknown = {s.notebook for s in sections if s.notebook} - {p.stem for p in release}
    if unknown:
        raise ValueError(f"submission {submission.name} names unknown notebooks {sorted(unknown)}")
    return out
