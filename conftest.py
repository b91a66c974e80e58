"""How `make test` shares the suite among pytest-xdist workers (``--dist loadgroup``).

``--dist loadfile`` sends a whole file to one worker, so one slow file (all lecture claims, one notebook)
keeps a worker busy while the other has run out of work. With ``--dist loadgroup`` this hook decides the
units instead:

* a notebook (nbval) is one unit: its cells must run in order in one kernel;
* a test file is one unit, except that the tests using one of the module's own module-scoped fixtures
  (an autograde batch, a regenerated course) form a unit of their own, apart from the file's other tests;
* the lecture claims are one unit per lecture (and per ``seed`` where a claim is parametrised by seed),
  so that claims sharing a cached training run stay together;
* the units known to be slowest run first (:data:`SLOW_FIRST`), so that no worker starts a long unit
  near the end while the other sits idle.

It lives at the repository root so that it applies to any selection (``pytest lectures`` too). Without
``--dist loadgroup`` it changes nothing.
"""

from __future__ import annotations

import re

import pytest

#: unit-name prefixes, slowest first; units not listed keep their collection order after these. The order is an
#: estimate from what each unit runs (sample notebooks autograded, models trained, notebooks executed), since a
#: full profile did not finish on the shared machine (2026-12-02); re-rank from `--durations` of a CI run. A wrong
#: rank costs only balance, never correctness.
SLOW_FIRST = [
    "tests/test_grading_iou_nms.py::graded",
    "tests/test_grading_unpool_unet.py",
    "tests/test_lecture_claims.py::l07",
    "tests/test_lecture_claims.py::l09",
    "tests/test_grading_infra.py::attacked",
    "lectures/09_",
    "lectures/08_",
    "lectures/07_",
    "tests/test_lecture_claims.py::l08",
    "tests/test_grading_generate.py",
    "lectures/papers/",
    "lectures/0",
    "tests/test_lecture_claims.py",
    "tests/test_grading_",
]

_LECTURE = re.compile(r"^test_(l\d\d)_")


def _own_module_fixtures(item: pytest.Item, path: str) -> set[str]:
    """The module- or session-scoped fixtures defined in the item's own test module that it uses."""
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return {name for name in getattr(item, "fixturenames", ()) for fdef in defs.get(name, ())[-1:]
            if fdef.scope in ("module", "session") and fdef.baseid == path}


def _units(items: list[pytest.Item]) -> dict[str, str]:
    """``{nodeid: unit}``; tests of a file that share (transitively) a module fixture are one unit."""
    units, fixtures = {}, {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        if path.endswith(".ipynb"):
            units[item.nodeid] = path
        elif path.endswith("test_lecture_claims.py"):
            m = _LECTURE.match(getattr(item, "originalname", item.name))
            seed = getattr(getattr(item, "callspec", None), "params", {}).get("seed")
            units[item.nodeid] = (f"{path}::{m.group(1)}" + (f"[seed={seed}]" if seed is not None else "")
                                  if m else path)
        else:
            fixtures[item.nodeid] = (path, _own_module_fixtures(item, path))
    # connected components of the "uses the same module fixture" relation, file by file
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for path, names in fixtures.values():
        keys = [(path, n) for n in sorted(names)]
        for a in keys[1:]:
            parent[find(a)] = find(keys[0])
    members: dict[tuple[str, str], set[str]] = {}
    for path, names in fixtures.values():
        for n in names:
            members.setdefault(find((path, n)), set()).add(n)
    for nodeid, (path, names) in fixtures.items():
        units[nodeid] = f"{path}::{'+'.join(sorted(members[find((path, min(names)))]))}" if names else path
    return units


def _rank(unit: str) -> int:
    return next((i for i, prefix in enumerate(SLOW_FIRST) if unit.startswith(prefix)), len(SLOW_FIRST))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if getattr(config.option, "dist", "no") != "loadgroup":
        return
    units = _units(items)
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is None:
            item.add_marker(pytest.mark.xdist_group(units[item.nodeid]))
        else:  # a test's own group wins
            units[item.nodeid] = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
    first_seen = {}
    for item in items:
        first_seen.setdefault(units[item.nodeid], len(first_seen))
    # stable: a unit's items keep their order (nbval cells run top to bottom)
    items.sort(key=lambda it: (_rank(units[it.nodeid]), first_seen[units[it.nodeid]]))
