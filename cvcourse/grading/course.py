"""nbgrader plumbing shared by generation and grading: find the course, call nbgrader, build a course folder.

A *course checkout* is a folder holding ``assignments/nbgrader_config.py`` and ``assignments/source/``
(this repository). :func:`repo_root` finds it without assuming that ``cvcourse`` is installed in
editable mode: from an explicit path, the ``CVCOURSE_ROOT`` environment variable, the current folder
or one of its parents, and only then the checkout around the imported package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

#: Environment variable naming the course checkout (the folder holding ``assignments/``).
ROOT_ENV = "CVCOURSE_ROOT"


class CourseNotFoundError(FileNotFoundError):
    """No course checkout (a folder with ``assignments/nbgrader_config.py``) could be found."""


def _is_course(folder: Path) -> bool:
    return (folder / "assignments" / "nbgrader_config.py").is_file()


def repo_root(course: str | os.PathLike | None = None) -> Path:
    """The course checkout root: the folder holding ``assignments/nbgrader_config.py``.

    Args:
        course: the checkout (or its ``assignments/`` folder); default: ``$CVCOURSE_ROOT``, else the
            current folder or the nearest parent that is a checkout, else the checkout around an
            editable ``cvcourse``.

    Raises:
        CourseNotFoundError: the given folder is not a checkout, or none was found.
    """
    for given, how in ((course, "the course argument"), (os.environ.get(ROOT_ENV) or None, f"${ROOT_ENV}")):
        if given is None:
            continue
        folder = Path(given).expanduser().resolve()
        if folder.name == "assignments" and _is_course(folder.parent):
            folder = folder.parent
        if not _is_course(folder):
            raise CourseNotFoundError(
                f"{how} names {folder}, which holds no assignments/nbgrader_config.py; expected the course "
                "checkout (the folder with assignments/ in it)")
        return folder
    cwd = Path.cwd().resolve()
    package_checkout = Path(__file__).resolve().parents[2]  # only meaningful for an editable install
    for folder in (cwd, *cwd.parents, package_checkout):
        if _is_course(folder):
            return folder
    raise CourseNotFoundError(
        f"no course checkout found from {cwd} (a folder holding assignments/nbgrader_config.py): run from "
        f"inside the checkout, pass --course DIR, or set {ROOT_ENV}=DIR")


def nbgrader_cmd() -> list[str]:
    """How to call nbgrader with the running interpreter."""
    return [sys.executable, "-m", "nbgrader"]


def nbgrader_env(env: dict | None = None) -> dict:
    """The environment for nbgrader subprocesses: this interpreter's ``bin/`` first on ``PATH``
    (nbgrader runs the ``alembic`` script when it creates a gradebook)."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def list_assignments(assignments_dir: Path) -> list[str]:
    """Names of the assignments in ``<assignments_dir>/source``."""
    return sorted(p.name for p in (assignments_dir / "source").iterdir() if p.is_dir() and not p.name.startswith("."))


def make_course(assignments_dir: Path, course: Path, assignments: list[str]) -> Path:
    """A fresh nbgrader course folder at ``course`` with the config and the sources, assignments generated.

    Returns:
        ``course``; it holds ``gradebook.db`` and ``release/``.
    """
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy2(assignments_dir / "nbgrader_config.py", course / "nbgrader_config.py")
    for name in assignments:
        dst = course / "source" / name
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(assignments_dir / "source" / name, dst,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        proc = subprocess.run(nbgrader_cmd() + ["generate_assignment", name, "--force", "--log-level=WARN"],
                              cwd=course, capture_output=True, text=True, env=nbgrader_env())
        if proc.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n{proc.stdout}\n{proc.stderr}")
    return course
