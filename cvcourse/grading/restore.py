"""Locked cells restored at autograde without false "has changed!" warnings.

``nbgrader generate_assignment`` records each locked cell's checksum in the gradebook *before* it
removes the hidden tests (``SaveCells`` runs before ``ClearHiddenTests``) and writes the checksum
*after* it into ``release/``. At autograde, nbgrader's ``OverwriteCells`` compares the handed-in
cell with the gradebook's, so every test cell with hidden tests of an untouched release copy
logged ``Attribute 'checksum' for cell ... has changed!`` (nine per student for ``iou_nms``), and a
real edit of a locked cell drowned among them.

:class:`RestoreLockedCells` (registered in ``nbgrader_config.py`` in place of ``OverwriteCells``)
does everything ``OverwriteCells`` does (every locked cell's source is still replaced by the
instructor's, hidden tests included), and compares the handed-in cell with the cell *as released*:
the gradebook's source with the hidden-test regions removed exactly as ``ClearHiddenTests`` removes
them. Only a cell that differs from its released version is reported.
"""

from __future__ import annotations

from nbformat.v4 import new_code_cell, new_markdown_cell
from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells


class RestoreLockedCells(OverwriteCells):
    """nbgrader's ``OverwriteCells``; a locked cell equal to its released version is restored silently."""

    _as_released = False

    def released_checksum(self, grade_id: str) -> str | None:
        """The checksum ``release/`` carries for the cell ``grade_id`` (None when it is not in the gradebook)."""
        try:
            source_cell = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
        except MissingEntry:
            return None
        meta = {"grade_id": grade_id, "locked": source_cell.locked, "grade": False, "solution": False}
        try:
            graded = self.gradebook.find_graded_cell(grade_id, self.notebook_id, self.assignment_id)
            meta.update(grade=True, points=float(graded.max_score))
        except MissingEntry:
            pass
        try:
            self.gradebook.find_solution_cell(grade_id, self.notebook_id, self.assignment_id)
            meta["solution"] = True
        except MissingEntry:
            pass
        make = new_markdown_cell if source_cell.cell_type == "markdown" else new_code_cell
        cell = make(source_cell.source, metadata={"nbgrader": meta})
        ClearHiddenTests(parent=self)._remove_hidden_test_region(cell)
        return utils.compute_checksum(cell)

    def preprocess_cell(self, cell, resources, cell_index):  # noqa: ANN001
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        self._as_released = False
        if grade_id is not None and utils.is_locked(cell):
            try:
                self._as_released = utils.compute_checksum(cell) == self.released_checksum(grade_id)
            except (KeyError, ValueError, TypeError):  # malformed metadata: let nbgrader report it
                self._as_released = False
        try:
            return super().preprocess_cell(cell, resources, cell_index)
        finally:
            self._as_released = False

    def report_change(self, name, attr, old, new):  # noqa: ANN001
        if attr == "checksum" and self._as_released:
            self.log.debug("Cell %s is as released; restoring its hidden tests", name)
            return
        super().report_change(name, attr, old, new)
