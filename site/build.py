"""Build the course site with Jupyter Book 2 and check it: `make site` runs `python site/build.py`.

Steps:
  1. stage the released assignments (assignments/release/<a>/<a>.ipynb -> site/_stage/assignments/<a>.ipynb)
     with `execute: {skip: true}` in their metadata: a student notebook raises NotImplementedError by design, so
     it is shown as students get it, not executed;
  2. `jupyter-book build --html --execute` in site/ with CVCOURSE_FAST=1: mystmd executes each notebook and
     caches the outputs in site/_build/execute, keyed by a hash of its code cells, so a rebuild re-executes only
     the notebooks whose code changed; site/theme renders the HTML (nothing is downloaded);
  3. check the result (`check_site`): a page for every table-of-contents entry, no executed cell with an error,
     and no solution or hidden-test text from assignments/source/ anywhere in the built files.

Usage: python site/build.py [--no-execute] [--site-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SITE = Path(__file__).resolve().parent
REPO = SITE.parent
MIN_NODE = 18  # jupyter-book 2 needs Node.js 18, 20 or 22+
# myst.yml names the course's files through links in site/ (site/lectures -> ../lectures, ...): mystmd opens each
# notebook's kernel session at its path relative to site/, and Jupyter refuses paths that leave its root folder.
COURSE_LINKS = ("README.md", "lectures", "docs")
SERVER_START_TIMEOUT_S = 180
NOISE = ("Exception opening new comm", "Comm not found for comm id", "Starting WebSocket")

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


class SiteError(RuntimeError):
    """The site could not be built, or the built site failed a check."""


def node_major() -> int | None:
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    match = re.match(r"v(\d+)\.", out)
    return int(match.group(1)) if match else None


def toc_files(site_dir: Path) -> list[Path]:
    """The files named in myst.yml's table of contents, in order, as paths relative to `site_dir`."""
    files = re.findall(r"^\s*-?\s*file:\s*(\S+)\s*$", (site_dir / "myst.yml").read_text(), flags=re.M)
    if not files:
        raise SiteError(f"{site_dir / 'myst.yml'} lists no `file:` entries")
    return [Path(f) for f in files]


def toc_sources(site_dir: Path) -> list[Path]:
    """The course files behind myst.yml's table of contents (links and staged copies resolved), in order."""
    sources = []
    for f in toc_files(site_dir):
        if f.parts[0] in COURSE_LINKS:
            sources.append((site_dir / ".." / f).resolve())
        elif f.parts[:2] == ("_stage", "assignments"):
            sources.append((site_dir / ".." / "assignments" / "release" / f.stem / f.name).resolve())
        else:
            sources.append((site_dir / f).resolve())
    return sources


def stage_assignments(site_dir: Path) -> list[Path]:
    """Copy each released assignment to site_dir/_stage/assignments/ with execution switched off."""
    release = (site_dir / ".." / "assignments" / "release").resolve()
    stage = site_dir / "_stage" / "assignments"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    staged = []
    for nb_path in sorted(release.glob("*/*.ipynb")):
        nb = json.loads(nb_path.read_text())
        nb.setdefault("metadata", {})["execute"] = {"skip": True}
        dest = stage / nb_path.name
        dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        staged.append(dest)
    if not staged:
        raise SiteError(f"no released assignment in {release}: run `make generate` first")
    return staged


def link_course(site_dir: Path) -> None:
    """Create site_dir/<name> -> ../<name> for the course files myst.yml names (idempotent)."""
    for name in COURSE_LINKS:
        link = site_dir / name
        target = Path("..") / name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        if link.exists() or link.is_symlink():
            raise SiteError(f"{link} exists and is not the link to {target} that the site build makes")
        link.symlink_to(target)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def jupyter_server(root: Path, env: dict):
    """A Jupyter server on 127.0.0.1 for mystmd's kernels, yielding (url, token).

    mystmd would start one itself, but gives it 20 s to come up; with the course's extensions on a busy 2-core
    machine that is not enough. This one may take SERVER_START_TIMEOUT_S, and runs as root too (containers).
    """
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyter_server", f"--ServerApp.root_dir={root}", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
        "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
    ]
    log = open(root / "_build" / "jupyter-server.log", "w")
    # No server extensions (JupyterLab, nbgrader, ...): kernels are all mystmd needs, and they start faster.
    proc = subprocess.Popen(cmd, env={**env, "JUPYTER_NO_CONFIG": "1"}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise SiteError(f"the Jupyter server for execution exited ({proc.returncode}): see {log.name}")
            try:
                with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SiteError(f"the Jupyter server did not answer in {SERVER_START_TIMEOUT_S} s: see {log.name}")
                time.sleep(1)
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def build(site_dir: Path = SITE, execute: bool = True, course: bool = True) -> float:
    """Run `jupyter-book build --html` in `site_dir`; returns the wall time in seconds.

    `course`: link the course into site_dir and stage its released assignments first (False for a project
    of its own, such as the test's fixture).
    """
    major = node_major()
    if major is None or major < MIN_NODE:
        raise SiteError(
            f"Jupyter Book 2 needs Node.js >= {MIN_NODE} (found {major or 'none'}): "
            "`make site` installs Debian's nodejs, or run `apt-get install nodejs`"
        )
    venv_bin = Path(sys.executable).parent
    jupyter_book = venv_bin / "jupyter-book"
    if not jupyter_book.exists():
        raise SiteError(f"{jupyter_book} is missing: `make setup` installs jupyter-book (pyproject.toml, dev extra)")
    if course:
        link_course(site_dir)
        stage_assignments(site_dir)
    (site_dir / "_build").mkdir(exist_ok=True)
    env = dict(os.environ)
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["CVCOURSE_FAST"] = env.get("CVCOURSE_FAST", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [str(jupyter_book), "build", "--html", "--ci"] + (["--execute"] if execute else [])
    start = time.monotonic()
    with jupyter_server(site_dir, env) if execute else contextlib.nullcontext((None, None)) as (url, token):
        if url:
            env["JUPYTER_BASE_URL"], env["JUPYTER_TOKEN"] = url, token
        proc = subprocess.Popen(cmd, cwd=site_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        skip_next = False
        for line in proc.stdout:
            # Noise: cell ids ("cell-21") repeat across notebooks, and mystmd's kernel client has no handler for
            # widget comms (the widget's output is kept all the same).
            if skip_next and line.lstrip().startswith("In files:"):
                skip_next = False
                continue
            skip_next = "Duplicate identifier in project" in line
            if skip_next or line.startswith(NOISE):
                continue
            print(line, end="", flush=True)
        result = proc.wait()
    elapsed = time.monotonic() - start
    if result != 0:
        raise SiteError(f"`{' '.join(cmd)}` in {site_dir} failed with exit code {result}")
    return elapsed


def _walk(node):
    yield node
    for child in node.get("children", []) if isinstance(node, dict) else []:
        yield from _walk(child)


def _source_lines(path: Path) -> set[str]:
    """The stripped lines of a notebook's cells or of a text file."""
    if path.suffix == ".ipynb":
        text = "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])
    else:
        text = path.read_text()
    return {line.strip() for line in text.splitlines()}


def secret_lines(source_dir: Path, public_files: list[Path] = (), min_len: int = 25) -> list[str]:
    """Distinctive lines between BEGIN/END SOLUTION and BEGIN/END HIDDEN TESTS markers of the source notebooks.

    Left out: short lines (`return out`), comments, and lines that a public page of the site also contains
    (`public_files`: lecture 8 teaches a naive NMS whose last line is also a solution line). What remains can
    only reach the site by leaking.
    """
    public: set[str] = set()
    for path in public_files:
        public |= _source_lines(path)
    lines: list[str] = []
    for nb_path in sorted(source_dir.glob("*/*.ipynb")):
        for cell in json.loads(nb_path.read_text())["cells"]:
            inside = False
            for line in "".join(cell["source"]).splitlines():
                stripped = line.strip()
                if stripped.startswith(("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")):
                    inside = True
                elif stripped.startswith(("### END SOLUTION", "### END HIDDEN TESTS")):
                    inside = False
                elif inside and len(stripped) >= min_len and stripped not in public and not stripped.startswith("#"):
                    lines.append(stripped)
    return lines


def _html_variants(text: str) -> set[str]:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return {text, escaped, json.dumps(text)[1:-1]}


def check_site(site_dir: Path = SITE, source_dir: Path | None = None, executed: bool = True) -> dict:
    """Check a built site; raises SiteError listing every problem. Returns counts for the report."""
    problems: list[str] = []
    content = site_dir / "_build" / "site" / "content"
    html_dir = site_dir / "_build" / "html"
    config_path = content.parent / "config.json"
    if not config_path.exists():
        raise SiteError(f"{config_path} is missing: the site was not built")
    project = json.loads(config_path.read_text())["projects"][0]
    slugs = [project["index"]] + [p["slug"] for p in project["pages"] if p.get("slug")]
    n_toc = len(toc_files(site_dir))
    if len(slugs) != n_toc:
        problems.append(f"myst.yml lists {n_toc} files but the site has {len(slugs)} pages: {slugs}")
    errors = 0
    code_cells = 0
    outputs = 0
    for slug in slugs:
        page = "index.html" if slug == project["index"] else f"{slug}.html"
        if not (html_dir / page).is_file():
            problems.append(f"page {page} (slug {slug}) is missing from {html_dir}")
        data = json.loads((content / f"{slug}.json").read_text())
        for node in _walk(data["mdast"]):
            if node.get("type") == "code" and node.get("executable"):
                code_cells += 1
            if node.get("type") == "output":
                outputs += 1
                jd = node.get("jupyter_data", {})
                if jd.get("output_type") == "error":
                    errors += 1
                    problems.append(f"{slug}: a cell raised {jd.get('ename', 'an error')}: {jd.get('evalue', '')}")
    if executed and code_cells and not outputs:
        problems.append("no notebook cell has an output although the site was built with execution")
    # Solution and hidden-test text must not reach any built file (HTML, page JSON, notebook downloads).
    source_dir = source_dir or (site_dir / ".." / "assignments" / "source").resolve()
    secrets = secret_lines(source_dir, toc_sources(site_dir))
    if not secrets:
        problems.append(f"no solution lines found in {source_dir}: the leak check would check nothing")
    needles = {v: s for s in list(SOLUTION_MARKERS) + secrets for v in _html_variants(s)}
    scanned = 0
    for root in (html_dir, site_dir / "_build" / "site"):
        for path in root.rglob("*"):
            if path.suffix not in {".html", ".json", ".js", ".ipynb", ".md", ".txt"} or not path.is_file():
                continue
            scanned += 1
            text = path.read_text(errors="replace")
            for needle, secret in needles.items():
                if needle in text:
                    problems.append(f"{path.relative_to(site_dir)} contains solution/hidden-test text: {secret!r}")
                    break
    if problems:
        raise SiteError("the site failed its checks:\n  " + "\n  ".join(problems))
    return {"pages": len(slugs), "code_cells": code_cells, "outputs": outputs, "secrets": len(secrets), "files": scanned}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-execute", action="store_true", help="build from the notebooks as committed (no outputs)")
    parser.add_argument("--site-dir", type=Path, default=SITE, help="folder with myst.yml (default: site/)")
    args = parser.parse_args(argv)
    try:
        elapsed = build(args.site_dir, execute=not args.no_execute)
        stats = check_site(args.site_dir, executed=not args.no_execute)
    except SiteError as err:
        print(f"make site: {err}", file=sys.stderr)
        return 1
    print(
        f"Course site: {args.site_dir / '_build' / 'html' / 'index.html'} ({stats['pages']} pages, "
        f"{stats['outputs']} cell outputs, built in {elapsed:.0f} s; no cell errors, no solution text in "
        f"{stats['files']} files)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
