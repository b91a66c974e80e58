"""``nbgrader zip_collect`` for the files an LMS hands out (see README.md, "The grading cycle with nbgrader").

Out of the box ``nbgrader zip_collect`` collects nothing: its ``FileNameCollectorPlugin`` needs a
``named_regexp`` that matches the *full path* of each file, and with none (or a wrong one) it skips
every file with a warning and exits with status 0. :class:`LMSCollector` knows the names that Canvas
and Moodle give the files of a "download all submissions" archive, and plain names, so no regular
expression is needed; :class:`LMSExtractor` and the collector together make a collection that
finds nothing an error (exit status 1, saying which files were seen and which names are accepted).

Accepted names (``<nb>`` is the notebook's file name; the path is relative to the ``extracted/``
folder, zips unpacked into a folder of their own by nbgrader):

* **Canvas** ``<sortable name>[_LATE]_<user id>_<attachment id>_<nb>`` (Canvas ``ContentZipper``:
  the name is lower-cased, non-word characters removed; a re-upload may be renamed ``<nb>-1``), and
  ``[LATE_]anon_<anonymous id>_<attachment id>_<nb>`` for anonymous grading. Student id: the Canvas
  user id (the ``ID`` column of Canvas's gradebook CSV), or ``anon_<id>``.
* **Moodle** ``<Full Name>_<participant id>_assignsubmission_file_<nb>`` and, with "download
  submissions in folders" (Moodle's default since 3.1), ``<Full Name>_<participant id>_assignsubmission_file/<nb>``
  (``mod/assign`` download code: underscores in the name become spaces). Student id: the participant
  id (``Participant <id>`` in Moodle's grading worksheet; the same number under blind marking).
* **Plain** ``<student>/<nb>`` (a folder per student) and ``<student>.ipynb`` (assignments with one
  notebook). Student id: ``<student>``.

A notebook name that is not one of the release notebooks is mapped to the release notebook when the
assignment has exactly one (students rename files: ``iou_nms (1).ipynb``, ``Copy of iou_nms.ipynb``).

Enable in ``nbgrader_config.py``::

    from cvcourse.grading.collect import LMSCollector, LMSExtractor
    c.ZipCollectApp.collector_plugin = LMSCollector
    c.ZipCollectApp.extractor_plugin = LMSExtractor
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from nbgrader.plugins import ExtractorPlugin, FileNameCollectorPlugin

CANVAS = re.compile(r"^(?:(?P<name>.*?)_)?(?:LATE_)?(?P<id>\d+|anon_[A-Za-z0-9]+)_(?P<attachment>\d+)_(?P<file>.+)$",
                    re.IGNORECASE)
MOODLE_FILE = re.compile(r"^(?P<name>.+)_(?P<id>\d+)_assignsubmission_file_(?P<file>.+)$")
MOODLE_DIR = re.compile(r"^(?P<name>.+)_(?P<id>\d+)_assignsubmission_file$")
PLAIN_ID = re.compile(r"^[\w.@+-]+$")
ACCEPTED = ("Canvas <name>_<user id>_<attachment id>_<notebook>.ipynb, "
            "Moodle <Full Name>_<participant id>_assignsubmission_file_<notebook>.ipynb (or a folder of that name), "
            "<student>/<notebook>.ipynb, <student>.ipynb")


def parse_name(relpath: str, release: list[str]) -> dict | None:
    """Student id and notebook of one submitted file, or None when the name is not understood.

    Args:
        relpath: the file's path relative to the ``extracted/`` folder, ``/``-separated.
        release: the release notebooks' file names (``["iou_nms.ipynb"]``).

    Returns:
        ``{"student_id": ..., "file_id": ..., "lms": "canvas" | "moodle" | "plain"}``.
    """
    parts = [p for p in relpath.replace(os.sep, "/").split("/") if p]
    if not parts:
        return None
    base, parents = parts[-1], parts[:-1]
    found = None
    m = MOODLE_FILE.match(base)
    if m:
        found = (m["id"], m["file"], "moodle")
    elif any(MOODLE_DIR.match(d) for d in parents):
        found = (next(MOODLE_DIR.match(d) for d in reversed(parents) if MOODLE_DIR.match(d))["id"], base, "moodle")
    elif m := CANVAS.match(base):
        sid = m["id"].lower() if m["id"].lower().startswith("anon_") else m["id"]
        found = (sid, m["file"], "canvas")
    elif _notebook(base, release, fallback=False) in release and parents and PLAIN_ID.match(parents[-1]):
        found = (parents[-1], base, "plain")
    elif len(release) == 1 and base.endswith(".ipynb") and PLAIN_ID.match(Path(base).stem) and base not in release:
        found = (Path(base).stem, release[0], "plain")
    if found is None:
        return None
    sid, file, lms = found
    return {"student_id": sid, "file_id": _notebook(file, release), "lms": lms}


def _notebook(name: str, release: list[str], fallback: bool = True) -> str:
    if name in release:
        return name
    stem, ext = os.path.splitext(name)
    for pattern in (r"-\d+$", r"\s*\(\d+\)$"):  # Canvas re-upload "-1", browser duplicate " (1)"
        cut = re.sub(pattern, "", stem) + ext
        if cut in release:
            return cut
    return release[0] if fallback and len(release) == 1 and ext == ".ipynb" else name


class LMSCollector(FileNameCollectorPlugin):
    """Collector plugin for ``nbgrader zip_collect`` that understands Canvas, Moodle and plain names.

    A notebook whose name matches none of the patterns stops the collection with an error (nbgrader's
    plugin would skip it with a warning); a collection that accepts no file is an error too.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.collected = 0
        self.seen: list[str] = []
        app = self.parent
        if app is not None and hasattr(app, "process_extracted_files") and hasattr(app, "fail"):
            process = app.process_extracted_files

            def checked():  # nbgrader returns quietly when the extracted folder is missing or empty
                process()
                if not self.collected:
                    seen = ", ".join(self.seen[:5]) + (" ..." if len(self.seen) > 5 else "") or "no files"
                    app.fail(f"zip_collect collected no submission (found: {seen}) in "
                             f"{app._format_collect_path(app.extracted_directory)}; put the LMS download "
                             f"(zip or files) in {app._format_collect_path(app.archive_directory)}. "
                             f"Accepted names: {ACCEPTED}")

            app.process_extracted_files = checked

    def _release(self) -> list[str]:
        app = self.parent
        if app is None or not hasattr(app, "coursedir"):
            return []
        cd = app.coursedir
        folder = Path(cd.format_path(cd.release_directory, ".", cd.assignment_id))
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.ipynb"))

    def collect(self, submitted_file: str) -> dict | None:
        """Student id and file id of one extracted file (nbgrader calls this with the absolute path)."""
        self.seen.append(os.path.basename(submitted_file))
        if os.path.splitext(submitted_file)[1] not in self.valid_ext:
            return None
        app = self.parent
        root = app._format_collect_path(app.extracted_directory) if app is not None else os.path.dirname(submitted_file)
        info = parse_name(os.path.relpath(submitted_file, root), self._release())
        if info is None:
            if app is not None and hasattr(app, "fail"):
                app.fail(f"cannot tell whose submission {submitted_file} is. Accepted names: {ACCEPTED}. "
                         "Rename the file or remove it from the download")
            return None
        self.collected += 1
        self.log.info("%s -> student %s, %s (%s)", submitted_file, info["student_id"], info["file_id"], info["lms"])
        return {"student_id": info["student_id"], "file_id": info["file_id"]}


class LMSExtractor(ExtractorPlugin):
    """Extractor plugin that fails when the archive folder holds no file at all (nbgrader warns and goes on)."""

    def extract(self, archive_path: str, extracted_path: str) -> None:
        """Unpack zips and copy files as nbgrader does, after checking there is something to unpack."""
        if not any(files for _, _, files in os.walk(archive_path)):
            message = f"no files in {archive_path}: put the LMS download (zip or files) there"
            if self.parent is not None and hasattr(self.parent, "fail"):
                self.parent.fail(message)
            raise FileNotFoundError(message)
        super().extract(archive_path, extracted_path)
