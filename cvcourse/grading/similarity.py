"""Similarity report: which students' answer cells are near-copies of each other (see README.md, "After grading").

    python -m cvcourse.grading similarity ASSIGNMENT SUBMISSIONS_DIR [--html FILE] [--csv FILE]
                                          [--threshold J] [--min-shared N] [--release DIR]

What is compared. For every task (the nbgrader ``grade_id`` of a solution cell of the release
notebook) each student's answer is that cell plus any code cells the student inserted after it.
Answers are compared on a normalised form, not on their text:

* the source is parsed (``ast``); comments disappear with parsing, docstrings and other bare string
  statements are dropped;
* each node becomes one token: its type, with every identifier the student chose (variables,
  parameters, function and class names, import aliases) abstracted to ``Name`` and every literal to
  ``Const``; builtins (``len``, ``max``), attribute names (``.clamp``, ``torch.maximum``) and keyword
  argument names stay, since renaming them changes what the code does;
* each top-level statement (a function, a class, an assignment) is cut into overlapping runs of
  ``K`` tokens ("shingles", hashed to integers) on its own, so reordering functions changes nothing.

Then, per task: shingles of the release template (signature, docstring, ``raise NotImplementedError``)
are removed from every answer; shingles that a large part of the class shares (``--common``, default
20% of the students, only from 20 students on) are textbook idioms, not evidence, and are removed
too. Two answers are flagged when their Jaccard similarity ``|A & B| / |A | B|`` is at least
``--threshold`` (default 0.8) and they share at least ``--min-shared`` shingles (default 25), so that
two short canonical one-liners (``box_area`` written the obvious way) are never evidence.

Speed. Pairs are never enumerated: an inverted index from each shingle to the students whose answer
contains it counts the shared shingles of exactly the pairs that share any (the common-shingle cut
bounds each posting list), so the cost grows with the number of near pairs, not with students².
``benchmarks/similarity.py`` measures a synthetic class of 1,000 (see its RESULTS).

Not covered: markdown answers, copies that restructure the code (a loop rewritten as a
comprehension), and code taken from the same outside source by students who did not talk. A flagged
pair is a reason to read both notebooks, never a verdict.
"""

from __future__ import annotations

import ast
import builtins
import csv
import html
import io
import keyword
import logging
import tokenize
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

log = logging.getLogger(__name__)
K = 6  # tokens per shingle
BUILTINS = frozenset(dir(builtins))
_SKIP = (ast.expr_context,)  # Load / Store / Del carry no information


@dataclass
class Answer:
    """One student's answer to one task: its source (for the report), its normalised token units and
    its shingles (hashes of ``k`` consecutive tokens)."""

    source: str
    units: list[list[tuple[str, int]]] = field(default_factory=list)
    shingles: set[int] = field(default_factory=set)
    k: int = 6

    def spans(self):
        """``(shingle, lines)`` for every shingle of the answer, with the source lines it came from."""
        for unit in self.units:
            toks = [t for t, _ in unit]
            for i in range(max(1, len(unit) - self.k + 1)):
                yield hash(tuple(toks[i:i + self.k])), {ln for _, ln in unit[i:i + self.k]}


@dataclass
class Match:
    """A pair of students whose answers to one task are near-copies."""

    task: str
    student_a: str
    student_b: str
    similarity: float  # Jaccard similarity of the shingle sets, in [0, 1]
    shared: int  # shingles in common
    size_a: int
    size_b: int


# --- normalisation ---------------------------------------------------------------------------

def _tokens(node: ast.AST, line: int, out: list[tuple[str, int]]) -> None:
    if isinstance(node, _SKIP):
        return
    line = getattr(node, "lineno", line)
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
        return  # docstring or bare string
    if isinstance(node, ast.Name):
        out.append((f"Name:{node.id}" if node.id in BUILTINS else "Name", line))
        return
    if isinstance(node, ast.Constant):
        out.append(("Const", line))
        return
    if isinstance(node, ast.Attribute):
        out.append((f"Attr:{node.attr}", line))
    elif isinstance(node, ast.keyword):
        out.append((f"kw:{node.arg}", line))
    elif isinstance(node, ast.alias):
        out.append((f"alias:{node.name}", line))
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        out.append((f"{type(node).__name__}:{getattr(node, 'module', '') or ''}", line))
    else:
        out.append((type(node).__name__, line))
    for child in ast.iter_child_nodes(node):
        _tokens(child, line, out)


def _fallback_units(source: str) -> list[list[tuple[str, int]]]:
    """Token stream of code that does not parse (a syntax error, IPython magics): one unit."""
    out: list[tuple[str, int]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.NAME:
                keep = tok.string in BUILTINS or keyword.iskeyword(tok.string)
                out.append((tok.string if keep else "Name", tok.start[0]))
            elif tok.type in (tokenize.NUMBER, tokenize.STRING):
                out.append(("Const", tok.start[0]))
            elif tok.type == tokenize.OP:
                out.append((tok.string, tok.start[0]))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        out = [(word, i + 1) for i, ln in enumerate(source.splitlines()) for word in ln.split()]
    return [out]


def normalise(source: str) -> list[list[tuple[str, int]]]:
    """The normalised token units of a code cell: one list of ``(token, line)`` per top-level statement.

    Raises:
        TypeError: ``source`` is not a string.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str (a cell's code), got {type(source).__name__}")
    code = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return _fallback_units(code)
    units = []
    for stmt in tree.body:
        out: list[tuple[str, int]] = []
        _tokens(stmt, stmt.lineno, out)
        if out:
            units.append(out)
    return units


def fingerprint(source: str, k: int = K) -> Answer:
    """Shingles of a code cell (``k`` consecutive normalised tokens of one top-level statement; a
    statement shorter than ``k`` tokens is one shingle)."""
    answer = Answer(source, normalise(source), k=k)
    for unit in answer.units:
        toks = tuple(t for t, _ in unit)
        answer.shingles.update(hash(toks[i:i + k]) for i in range(max(1, len(toks) - k + 1)))
    return answer


# --- answers from notebooks ------------------------------------------------------------------

def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def solution_ids(release_nb: nbformat.NotebookNode) -> list[str]:
    """``grade_id`` of the code solution cells of a release notebook, in order."""
    return [_meta(c)["grade_id"] for c in release_nb.cells
            if c.cell_type == "code" and _meta(c).get("solution") and _meta(c).get("grade_id")]


def answers_of(nb: nbformat.NotebookNode, release_nb: nbformat.NotebookNode) -> dict[str, str]:
    """A student's answer per task: the solution cell with that ``grade_id`` (matched by metadata, or
    by the cell id when the student's copy lost its metadata), plus the code cells the student added
    after it (cells that are not in the release notebook)."""
    ids = set(solution_ids(release_nb))
    by_cell_id = {c.get("id"): _meta(c).get("grade_id") for c in release_nb.cells if c.get("id")}
    release_sources = {c.source.strip() for c in release_nb.cells}
    out: dict[str, list[str]] = {}
    current = None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        gid = _meta(cell).get("grade_id") or by_cell_id.get(cell.get("id"))
        if gid in ids:
            current = gid
            out.setdefault(gid, []).append(cell.get("source", ""))
        elif gid:  # a locked or test cell of the release: ends the answer
            current = None
        elif current is not None and cell.get("source", "").strip() not in release_sources:
            out[current].append(cell.get("source", ""))
    return {gid: "\n\n".join(parts) for gid, parts in out.items()}


def load_class(folder: Path, release_dir: Path, assignment: str | None = None) -> dict[str, dict[str, str]]:
    """``{student: {task: answer source}}`` for a folder of submissions.

    Layouts: ``<student>/<assignment>/*.ipynb`` (nbgrader's ``submitted/``), ``<student>/*.ipynb``,
    ``<student>.ipynb``, and ``<student>.py`` sample files (cvcourse.grading.submissions). With several
    release notebooks, tasks are named ``<notebook>:<grade_id>``.

    Raises:
        FileNotFoundError: no release notebook in ``release_dir`` or ``folder`` is missing.
    """
    from cvcourse.grading.submissions import build_submission  # noqa: PLC0415

    folder, release_dir = Path(folder), Path(release_dir)
    release = {p.name: nbformat.read(p, as_version=4) for p in sorted(release_dir.glob("*.ipynb"))}
    if not release:
        raise FileNotFoundError(f"no release notebook in {release_dir}")
    if not folder.is_dir():
        raise FileNotFoundError(f"submissions folder {folder} does not exist")
    assignment = assignment or release_dir.name
    first = next(iter(release))
    found: dict[str, dict[str, nbformat.NotebookNode]] = {}
    for entry in sorted(folder.iterdir()):
        try:
            if entry.is_dir():
                inner = entry / assignment if (entry / assignment).is_dir() else entry
                nbs = {p.name: nbformat.read(p, as_version=4) for p in sorted(inner.glob("*.ipynb"))}
                if nbs:
                    found[entry.name] = nbs
            elif entry.suffix == ".ipynb":
                found[entry.stem] = {first: nbformat.read(entry, as_version=4)}
            elif entry.suffix == ".py":
                found[entry.stem] = build_submission(release_dir, entry)
        except (ValueError, KeyError, AttributeError, OSError) as exc:  # not a notebook (JSON or nbformat error)
            log.warning("skipped %s: not a readable notebook (%s: %s)", entry, type(exc).__name__, exc)
    prefix = len(release) > 1
    out: dict[str, dict[str, str]] = {}
    for student, nbs in found.items():
        out[student] = {}
        for name, rel in release.items():
            nb = nbs.get(name) or (nbs[next(iter(nbs))] if len(release) == 1 and len(nbs) == 1 else None)
            if nb is None:
                continue
            for gid, src in answers_of(nb, rel).items():
                out[student][f"{Path(name).stem}:{gid}" if prefix else gid] = src
    return out


def load_templates(release_dir: Path) -> dict[str, str]:
    """``{task: template source}`` of the release notebooks (what every student starts from)."""
    release = {p.name: nbformat.read(p, as_version=4) for p in sorted(Path(release_dir).glob("*.ipynb"))}
    prefix = len(release) > 1
    return {(f"{Path(name).stem}:{gid}" if prefix else gid): src
            for name, nb in release.items() for gid, src in answers_of(nb, nb).items()}


# --- comparison ------------------------------------------------------------------------------

def compare(answers: dict[str, dict[str, str]], templates: dict[str, str] | None = None, *,
            threshold: float = 0.8, min_shared: int = 25, common: float = 0.2, k: int = K,
            ) -> tuple[list[Match], dict[str, dict[str, Answer]]]:
    """Flag near-copy pairs, task by task.

    Args:
        answers: ``{student: {task: source}}`` (``load_class``).
        templates: ``{task: release source}``; its shingles never count.
        threshold: least Jaccard similarity of two answers' shingle sets to flag them.
        min_shared: least number of shared shingles to flag a pair (short answers are no evidence).
        common: shingles found in more than this fraction of the students are ignored (from 20
            students on; below, every shingle counts).
        k: tokens per shingle.

    Returns:
        The flagged pairs (most similar first) and the fingerprints ``{task: {student: Answer}}``
        (shingles after the template and common ones were removed).

    Raises:
        ValueError: threshold outside (0, 1], min_shared < 1 or common outside (0, 1].
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if min_shared < 1:
        raise ValueError(f"min_shared must be at least 1, got {min_shared}")
    if not 0 < common <= 1:
        raise ValueError(f"common must be in (0, 1], got {common}")
    templates = templates or {}
    tasks = sorted({t for per in answers.values() for t in per})
    students = sorted(answers)
    index = {s: i for i, s in enumerate(students)}
    limit = max(20, common * len(students)) if len(students) >= 20 else len(students)
    matches: list[Match] = []
    prints: dict[str, dict[str, Answer]] = {}
    for task in tasks:
        base = fingerprint(templates.get(task, ""), k).shingles
        prints[task] = fp = {s: fingerprint(answers[s][task], k) for s in students if task in answers[s]}
        postings: dict[int, list[int]] = defaultdict(list)
        for s, a in fp.items():
            a.shingles -= base
            for h in a.shingles:
                postings[h].append(index[s])
        dropped = {h for h, who in postings.items() if len(who) > limit}
        for s, a in fp.items():
            a.shingles -= dropped
        counts: dict[tuple[int, int], int] = defaultdict(int)
        for h, who in postings.items():
            if 1 < len(who) <= limit:
                for x in range(len(who)):
                    for y in range(x + 1, len(who)):
                        counts[who[x], who[y]] += 1
        for (i, j), shared in counts.items():
            if shared < min_shared:
                continue
            a, b = fp[students[i]], fp[students[j]]
            jac = shared / (len(a.shingles) + len(b.shingles) - shared)
            if jac >= threshold:
                matches.append(Match(task, students[i], students[j], jac, shared, len(a.shingles), len(b.shingles)))
    matches.sort(key=lambda m: (-m.similarity, -m.shared, m.task, m.student_a, m.student_b))
    return matches, prints


# --- reports ---------------------------------------------------------------------------------

def write_csv(matches: list[Match], path: Path) -> None:
    """One row per flagged pair and task."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "student_a", "student_b", "similarity", "shared", "size_a", "size_b"])
        for m in matches:
            w.writerow([m.task, m.student_a, m.student_b, f"{m.similarity:.3f}", m.shared, m.size_a, m.size_b])


def format_summary(matches: list[Match], n_students: int, n_tasks: int, limit: int = 40) -> str:
    """Plain-text summary: one line per pair of students (the tasks they share, with the similarity),
    pairs sharing the most tasks first; at most ``limit`` lines (the CSV and HTML have them all)."""
    pairs: dict[tuple[str, str], list[Match]] = defaultdict(list)
    for m in matches:
        pairs[m.student_a, m.student_b].append(m)
    order = sorted(pairs.items(), key=lambda kv: (-len(kv[1]), -sum(m.similarity for m in kv[1]), kv[0]))
    lines = [f"{n_students} students, {n_tasks} tasks: {len(matches)} near-copy answer(s) in {len(pairs)} pair(s) of students"]
    for (a, b), ms in order[:limit]:
        tasks = ", ".join(f"{m.task} {m.similarity:.2f}" for m in sorted(ms, key=lambda m: m.task))
        lines.append(f"  {a} ~ {b}: {len(ms)}/{n_tasks} tasks ({tasks})")
    if len(order) > limit:
        lines.append(f"  ... {len(order) - limit} more pair(s): see --csv / --html")
    return "\n".join(lines)


_CSS = """body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;width:100%;table-layout:fixed}
td{vertical-align:top;border:1px solid #ccc;padding:4px}pre{margin:0;white-space:pre-wrap;font-size:12px}
.hit{background:#ffe08a}h2{font-size:1.05em;margin-top:2em}"""


def _highlighted(answer: Answer, shared: set[int]) -> str:
    hot = {ln for h, lines in answer.spans() if h in shared for ln in lines}
    rows = []
    for i, text in enumerate(answer.source.splitlines(), start=1):
        cls = ' class="hit"' if i in hot else ""
        rows.append(f"<span{cls}>{html.escape(text) or ' '}</span>")
    return "<pre>" + "\n".join(rows) + "</pre>"


def write_html(matches: list[Match], prints: dict[str, dict[str, Answer]], path: Path, title: str) -> None:
    """A self-contained HTML page (no scripts, no outside resources): each flagged pair's two answers
    side by side, the lines that hold shared code highlighted. Everything from notebooks is escaped."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>{len(matches)} near-copy pair(s). Highlighted: lines holding shared normalised code "
             "(names and literals abstracted, template code removed). A flag is a reason to read both "
             "notebooks, not a verdict.</p>"]
    for m in matches:
        a, b = prints[m.task][m.student_a], prints[m.task][m.student_b]
        shared = a.shingles & b.shingles
        parts.append(f"<h2>{html.escape(m.task)}: {html.escape(m.student_a)} ~ {html.escape(m.student_b)}"
                     f" &mdash; similarity {m.similarity:.2f} ({m.shared} shared)</h2>"
                     f"<table><tr><th>{html.escape(m.student_a)}</th><th>{html.escape(m.student_b)}</th></tr>"
                     f"<tr><td>{_highlighted(a, shared)}</td><td>{_highlighted(b, shared)}</td></tr></table>")
    parts.append("</body></html>")
    Path(path).write_text("\n".join(parts), encoding="utf-8")


# --- command line ----------------------------------------------------------------------------

def register(subparsers) -> None:
    """Add the ``similarity`` subcommand to ``python -m cvcourse.grading``."""
    p = subparsers.add_parser("similarity", help="flag near-copy answers between students (HTML + CSV report)")
    p.add_argument("assignment")
    p.add_argument("submissions", type=Path)
    p.add_argument("--release", type=Path, help="release folder (default: assignments/release/ASSIGNMENT)")
    p.add_argument("--html", type=Path, default=None, help="write the side-by-side report here")
    p.add_argument("--csv", type=Path, default=None, help="write one row per flagged pair and task here")
    p.add_argument("--threshold", type=float, default=0.8, help="least Jaccard similarity to flag (0.8)")
    p.add_argument("--min-shared", type=int, default=25, help="least shared shingles to flag (25)")
    p.add_argument("--common", type=float, default=0.2,
                   help="ignore code shared by more than this fraction of the class (0.2)")


def run(args) -> int:
    """Run the ``similarity`` subcommand; exit status 1 when a pair was flagged."""
    release = args.release
    if release is None:
        from cvcourse.grading.course import repo_root  # noqa: PLC0415

        release = repo_root() / "assignments" / "release" / args.assignment
    answers = load_class(args.submissions, release, args.assignment)
    if not answers:
        print(f"no submissions found in {args.submissions}")
        return 2
    matches, prints = compare(answers, load_templates(release), threshold=args.threshold,
                              min_shared=args.min_shared, common=args.common)
    print(format_summary(matches, len(answers), len(prints)))
    if args.csv:
        write_csv(matches, args.csv)
    if args.html:
        write_html(matches, prints, args.html, f"Similarity report: {args.assignment}")
        print(f"wrote {args.html}")
    return 1 if matches else 0
