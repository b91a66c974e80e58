"""Feedback without the hidden tests (nbgrader issue #917).

``nbgrader generate_feedback`` renders the autograded notebook, whose test cells were restored from
the instructor's source, so by default students would read every hidden test, and the tracebacks of
failed hidden tests quote the failing lines. :class:`HideHiddenTests` (registered in
``nbgrader_config.py``) replaces each ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``
region with a one-line note and cuts the tracebacks of those cells down to their last line (the
error name and the hint message written for students).
"""

from __future__ import annotations

import re

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

BEGIN = "### BEGIN HIDDEN TESTS"
END = "### END HIDDEN TESTS"
NOTE = "# (hidden tests: not shown in feedback; the messages below say what failed)"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_hidden_tests(source: str, note: str | None = NOTE) -> tuple[str, bool]:
    """Remove the hidden-test regions of a cell's source; return ``(new_source, had_hidden)``."""
    out, inside, had = [], False, False
    for line in source.split("\n"):
        if BEGIN in line:
            inside = had = True
            if note is not None:
                out.append(line[: len(line) - len(line.lstrip())] + note)
        elif END in line and inside:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out), had


def last_traceback_line(output: dict) -> list[str]:
    """The ``ename: evalue`` line of an error output, without code context."""
    return [f"{output.get('ename', 'Error')}: {_ANSI.sub('', str(output.get('evalue', '')))}"]


class HideHiddenTests(Preprocessor):
    """nbconvert preprocessor used by ``nbgrader generate_feedback``: hide hidden test code."""

    enabled = Bool(True, help="On by default (nbconvert preprocessors are off unless enabled).").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        cell.source, had = strip_hidden_tests(cell.source)
        if had:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = last_traceback_line(output)
        return cell, resources
