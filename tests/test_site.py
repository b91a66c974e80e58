"""The course site (`make site`, site/build.py): Jupyter Book 2 builds it offline and it leaks no solution.

The whole course is built from the committed notebooks without executing them (the lectures already run under
nbval; executing them again here would double the suite's time): every page must exist and no solution or
hidden-test text may reach any built file. Execution, its cache, figures and math are tested on a two-notebook
fixture project rendered by the same theme. Cost, measured: about 45 CPU-seconds for the file (three site builds,
two of them with a Jupyter server and kernels), mostly Node.js, server and kernel start-up.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "site"

spec = importlib.util.spec_from_file_location("cvcourse_site_build", SITE / "build.py")
site_build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(site_build)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("node") is None or not (Path(site_build.sys.executable).parent / "jupyter-book").exists(),
        reason="the course site needs Node.js and jupyter-book: `make site` (or `make test`) installs them",
    ),
]


def _site_copy(tmp: Path) -> Path:
    """site/ (myst.yml and theme) in a scratch folder beside links to the course, so the build does not touch
    the developer's site/_build (and its execution cache)."""
    (tmp / "site").mkdir()
    shutil.copy(SITE / "myst.yml", tmp / "site" / "myst.yml")
    shutil.copytree(SITE / "theme", tmp / "site" / "theme")
    for name in ("README.md", "lectures", "docs", "assignments"):
        (tmp / name).symlink_to(REPO / name)
    return tmp / "site"


@pytest.fixture(scope="module")
def course_site(tmp_path_factory):
    site_dir = _site_copy(tmp_path_factory.mktemp("course"))
    site_build.build(site_dir, execute=False)
    return site_dir


def test_table_of_contents_is_the_whole_public_course():
    toc = site_build.toc_sources(SITE)
    public = (
        [REPO / "README.md"]
        + sorted((REPO / "lectures").glob("*.ipynb"))
        + sorted((REPO / "lectures" / "papers").glob("*.ipynb"))
        + sorted((REPO / "assignments" / "release").glob("*/*.ipynb"))
        + sorted((REPO / "docs").glob("*.md"))
    )
    assert all(p.is_file() for p in toc), [str(p) for p in toc if not p.is_file()]
    missing = [str(p.relative_to(REPO)) for p in public if p not in toc]
    assert not missing, f"add these to site/myst.yml: {missing}"
    lectures = [f.name for f in toc if f.parent == REPO / "lectures"]
    assert lectures == sorted(lectures), "lectures must appear in their order"
    for f in toc:
        parts = f.relative_to(REPO).parts
        assert "source" not in parts and "solutions" not in parts, f"{f} must never reach the site"


def test_course_site_has_every_page_and_no_solution_text(course_site):
    stats = site_build.check_site(course_site, executed=False)
    assert stats["pages"] == len(site_build.toc_files(SITE))
    assert stats["secrets"] > 50  # solution and hidden-test lines searched for
    html = course_site / "_build" / "html"
    index = (html / "index.html").read_text()
    for page in ("sift.html", "fast-faster-mask-rcnn.html", "grad-cam.html", "iou-nms.html", "unpool-unet.html"):
        assert f'href="{page}"' in index, f"{page} is not in the navigation"
    assert "window.SEARCH_INDEX" in (html / "search-index.js").read_text()
    assignment = (html / "iou-nms.html").read_text()
    assert "raise NotImplementedError()" in assignment  # the student's stub, as released
    assert 'class="katex"' in (html / "segmentation.html").read_text()  # math typeset at build time
    assert (html / "katex" / "katex.min.css").is_file() and any((html / "katex" / "fonts").iterdir())


def test_leak_check_finds_solution_text(course_site, tmp_path):
    secret = site_build.secret_lines(REPO / "assignments" / "source", site_build.toc_sources(course_site))[0]
    planted = course_site / "_build" / "html" / "planted.html"
    planted.write_text(f"<pre>{secret.replace('<', '&lt;')}</pre>")
    try:
        with pytest.raises(site_build.SiteError, match="solution/hidden-test text"):
            site_build.check_site(course_site, executed=False)
    finally:
        planted.unlink()
    planted.write_text("### BEGIN HIDDEN TESTS")
    try:
        with pytest.raises(site_build.SiteError, match="BEGIN HIDDEN TESTS"):
            site_build.check_site(course_site, executed=False)
    finally:
        planted.unlink()


def _fixture_project(root: Path) -> Path:
    """A site of its own: a notebook with text, math, a print and a figure, and one whose cell raises."""
    site_dir = root / "site"
    site_dir.mkdir()
    shutil.copytree(SITE / "theme", site_dir / "theme")
    good = nbformat.v4.new_notebook()
    good.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    good.cells = [
        nbformat.v4.new_markdown_cell("# Fixture page\n\nThe area is $(x_2 - x_1)(y_2 - y_1)$."),
        nbformat.v4.new_code_cell("import os\nprint('fast mode:', os.environ.get('CVCOURSE_FAST'))"),
        nbformat.v4.new_code_cell(
            "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(2, 2))\nax.plot([0, 1], [1, 0])\nplt.show()"
        ),
    ]
    nbformat.write(good, site_dir / "good.ipynb")
    bad = nbformat.v4.new_notebook(metadata=good.metadata)
    bad.cells = [nbformat.v4.new_markdown_cell("# Broken page"), nbformat.v4.new_code_cell("1 / 0")]
    nbformat.write(bad, site_dir / "bad.ipynb")
    (site_dir / "myst.yml").write_text(
        "version: 1\nproject:\n  title: fixture\n  toc:\n    - file: good.ipynb\n    - file: bad.ipynb\n"
        "site:\n  template: ./theme\n"
    )
    return site_dir


def test_execution_outputs_figures_cache_and_cell_errors(tmp_path, capfd):
    site_dir = _fixture_project(tmp_path)
    source = REPO / "assignments" / "source"
    site_build.build(site_dir, execute=True, course=False)
    first = capfd.readouterr().out
    html_dir = site_dir / "_build" / "html"
    html = (html_dir / "index.html").read_text()
    assert "fast mode: 1" in html  # executed, in fast mode
    images = re.findall(r'<img class="output-image" src="(build/[^"]+\.png)"', html)
    assert images and all((html_dir / src).stat().st_size > 1000 for src in images)
    assert 'class="katex"' in html
    assert "ZeroDivisionError" in (html_dir / "bad.html").read_text()
    with pytest.raises(site_build.SiteError, match="bad: a cell raised ZeroDivisionError") as err:
        site_build.check_site(site_dir, source_dir=source, executed=True)
    assert str(err.value).count("\n") == 1, err.value  # one problem: the good page passes every check
    assert "Executing notebook (good.ipynb) [no execution cache found]" in first
    # Unchanged: the good notebook's outputs come from mystmd's execution cache; the failed one runs again.
    site_build.build(site_dir, execute=True, course=False)
    second = capfd.readouterr().out
    assert "Executing notebook (good.ipynb)" not in second
    assert "Executing notebook (bad.ipynb) [no execution cache found]" in second
    assert "fast mode: 1" in (html_dir / "index.html").read_text()


def test_staged_assignments_are_not_executed(tmp_path):
    site_dir = _site_copy(tmp_path)
    staged = site_build.stage_assignments(site_dir)
    assert {p.name for p in staged} == {p.name for p in (REPO / "assignments" / "release").glob("*/*.ipynb")}
    for path in staged:
        nb = json.loads(path.read_text())
        assert nb["metadata"]["execute"] == {"skip": True}
        release = REPO / "assignments" / "release" / path.stem / path.name
        assert nb["cells"] == json.loads(release.read_text())["cells"]
