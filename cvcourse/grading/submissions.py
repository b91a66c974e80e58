"""Sample submissions as small ``.py`` files, turned into notebooks built from the release notebook.

Format of a submission file (``tests/submissions/<assignment>/<name>.py``): text before the first
marker is a free comment (say what the submission gets wrong); then sections, each starting with a
marker line::

    # -- cell: <grade_id> --          replace the source of the cell with this grade_id
    # -- delete: <grade_id> --        remove that cell (section body must be empty)
    # -- insert-after: <grade_id> --  add a new code cell with this body after that cell

A ``# -- base: <name> --`` line before the first section starts from another sample of the same
folder (``<name>.py``): its sections are applied first, then this file's, so a buggy sample holds
only its bug (``# -- base: correct_vectorised --`` then one ``# -- cell: nms --``). Bases may
themselves have a base; a cycle is an error.

``<grade_id>`` is the nbgrader ``grade_id`` of a cell in the release notebook (answer cells and
test cells alike, so a submission can also try to edit or delete a locked test cell). Unnamed
cells keep the release text. A whole notebook can be given instead: a submission path ending in
``.ipynb`` is used as it is. Assignments with several notebooks name the notebook in the marker:
``# -- cell: <notebook>:<grade_id> --`` (without ``<notebook>:`` the first notebook is meant).

Command line (turn a sample into the notebook a student would hand in, e.g. to open it in Jupyter)::

    python -m cvcourse.grading.submissions build ASSIGNMENT SAMPLE.py OUT.ipynb [--release DIR]

and a whole folder of samples (``<name>.ipynb`` per sample, or with ``--submitted`` nbgrader's
``submitted/<name>/<assignment>/`` layout, ready for ``nbgrader autograde``, :func:`write_samples`)::

    python -m cvcourse.grading samples ASSIGNMENT tests/submissions/ASSIGNMENT OUT_DIR [--submitted]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

MARKER = re.compile(r"^# -- (cell|delete|insert-after): (?:(?P<nb>[\w.-]+):)?(?P<id>[\w.-]+) --\s*$")
BASE = re.compile(r"^# -- base: (?P<name>[\w.-]+) --\s*$")


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
        if BASE.match(line):
            if current is not None:
                raise ValueError(f"the base line must come before the first section: {line!r}")
            body.append(line)
        elif m:
            close()
            current, body = Section(m.group(1), m.group("id"), "", m.group("nb")), []
        elif line.startswith("# -- ") and line.rstrip().endswith(" --") and current is None and ":" in line:
            raise ValueError(f"malformed submission marker: {line!r}")
        else:
            body.append(line)
    close()
    return sections


def base_of(text: str) -> str | None:
    """The sample named by the ``# -- base: NAME --`` line of a submission file, or None."""
    names = [m.group("name") for m in map(BASE.match, text.splitlines()) if m]
    if len(names) > 1:
        raise ValueError(f"a submission file may name one base, got {names}")
    return names[0] if names else None


def load_sections(submission: Path) -> list[Section]:
    """The sections of a submission file with those of its bases (``# -- base: NAME --``) first.

    Raises:
        FileNotFoundError: the base sample does not exist next to the file.
        ValueError: the bases form a cycle, or a file is malformed.
    """
    chain: list[Path] = []
    path: Path | None = Path(submission)
    while path is not None:
        if path.resolve() in [p.resolve() for p in chain]:
            raise ValueError("submission bases form a cycle: " + " -> ".join(p.stem for p in chain + [path]))
        chain.append(path)
        text = path.read_text()
        parse_submission(text)  # malformed files (a base line after a section) fail here, before their base
        name = base_of(text)
        if name is None:
            path = None
        else:
            path = path.with_name(name if name.endswith(".py") else f"{name}.py")
            if not path.is_file():
                raise FileNotFoundError(f"{chain[-1].name} names base {name!r}, but {path} does not exist")
    sections: list[Section] = []
    for p in reversed(chain):
        sections += parse_submission(p.read_text())
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
    sections = load_sections(submission)
    out = {}
    for path in release:
        mine = [s for s in sections if (s.notebook or release[0].stem) == path.stem]
        out[path.name] = apply_sections(nbformat.read(path, as_version=4), mine)
    unknown = {s.notebook for s in sections if s.notebook} - {p.stem for p in release}
    if unknown:
        raise ValueError(f"submission {submission.name} names unknown notebooks {sorted(unknown)}")
    return out


def write_samples(release_dir: Path, samples: Path, out: Path, assignment: str | None = None) -> list[Path]:
    """Build every sample submission of a folder (or one file) into notebooks under ``out``.

    Files starting with ``_`` or ``.`` are skipped. Without ``assignment``: ``out/<name>.ipynb``
    (assignments with one notebook) or ``out/<name>/<notebook>``; with it, nbgrader's layout
    ``out/<name>/<assignment>/<notebook>`` (``out`` is then a course's ``submitted/`` folder).

    Raises:
        FileNotFoundError: ``samples`` holds no ``.py`` or ``.ipynb`` sample.
    """
    samples = Path(samples)
    files = [samples] if samples.is_file() else sorted(
        p for p in samples.iterdir() if p.suffix in (".py", ".ipynb") and not p.name.startswith(("_", ".")))
    if not files:
        raise FileNotFoundError(f"no sample submissions (.py or .ipynb) in {samples}")
    written = []
    for path in files:
        notebooks = build_submission(Path(release_dir), path)
        if assignment is None and len(notebooks) == 1:
            targets = {out / f"{path.stem}.ipynb": next(iter(notebooks.values()))}
        else:
            folder = out / path.stem / assignment if assignment else out / path.stem
            targets = {folder / name: nb for name, nb in notebooks.items()}
        for target, nb in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, target)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """``build ASSIGNMENT SAMPLE.py OUT.ipynb``: write the notebook a sample submission stands for."""
    parser = argparse.ArgumentParser(prog="python -m cvcourse.grading.submissions",
                                     description="Turn a sample submission (.py) into a notebook.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the handed-in notebook(s) of a sample submission")
    b.add_argument("assignment")
    b.add_argument("sample", type=Path)
    b.add_argument("out", type=Path, help="OUT.ipynb (several notebooks: OUT is a folder)")
    b.add_argument("--release", type=Path, help="release folder (default: assignments/release/ASSIGNMENT of "
                                                  "this checkout)")
    args = parser.parse_args(argv)
    release = args.release
    if release is None:
        from cvcourse.grading.generate import repo_root  # noqa: PLC0415

        release = repo_root() / "assignments" / "release" / args.assignment
    notebooks = build_submission(release, args.sample)
    if len(notebooks) == 1 and args.out.suffix == ".ipynb":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(next(iter(notebooks.values())), args.out)
        print(f"wrote {args.out}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, args.out / name)
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
