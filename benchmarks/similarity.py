"""Benchmark: the similarity report (cvcourse.grading.similarity) on a synthetic class, writes SIMILARITY_RESULTS.md.

    .venv/bin/python benchmarks/similarity.py                 # 1,000 students
    .venv/bin/python benchmarks/similarity.py --students 200  # smaller

The class: every student answers the four tasks of ``iou_nms`` with code drawn at random (a few
statements from a pool of shared idioms, the rest random tensor expressions over random names), so
independent students share idioms but not whole answers. Planted copies: 20 pairs where one student
copied all four answers of another, disguised (every name renamed, top-level functions reordered,
comments and docstrings added, literals changed), and 10 pairs that copied one task only. Notebooks are
written to a temporary ``submitted/<student>/iou_nms/iou_nms.ipynb`` tree and read back, as the
command does. Reported: CPU seconds (``time.process_time``) for reading the notebooks and for the
comparison, and planted pairs found / missed / other pairs flagged.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cvcourse.grading import similarity  # noqa: E402

TASKS = {"box_area": "boxes", "box_iou": "boxes1, boxes2", "nms": "boxes, scores, iou_threshold",
         "batched_nms": "boxes, scores, idxs, iou_threshold"}
IDIOMS = ["keep = []", "order = scores.argsort(descending=True)", "n = len(boxes)",
          "inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)", "return torch.tensor(keep, dtype=torch.int64)",
          "area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])",
          "x1 = torch.maximum(a[:, None, 0], b[None, :, 0])", "keep.append(i)", "iou = box_iou(boxes, boxes)"]
NAMES = ["a", "b", "x", "y", "w", "h", "tmp", "val", "res", "out", "lo", "hi", "top", "left", "mask", "idx"]
CALLS = ["torch.maximum({}, {})", "torch.minimum({}, {})", "({}).clamp(min={})", "torch.where({} > 0, {}, {})",
         "({}).sum(dim={})", "{}[:, {}]", "max({}, {})", "min({}, {})", "({}).float()", "abs({})"]


def _expr(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(NAMES) if rng.random() < 0.7 else str(rng.randint(0, 9))
    if rng.random() < 0.5:
        return f"({_expr(rng, depth - 1)} {rng.choice('+-*/')} {_expr(rng, depth - 1)})"
    call = rng.choice(CALLS)
    return call.format(*[_expr(rng, depth - 1) for _ in range(call.count("{}"))])


def _stmt(rng: random.Random) -> list[str]:
    r = rng.random()
    if r < 0.15:
        return [rng.choice(IDIOMS)]
    if r < 0.3:
        return [f"for {rng.choice(NAMES)} in range(len({rng.choice(NAMES)})):",
                f"    {rng.choice(NAMES)} = {_expr(rng, 2)}"]
    if r < 0.4:
        return [f"if {_expr(rng, 1)} > {_expr(rng, 1)}:", f"    {rng.choice(NAMES)} = {_expr(rng, 2)}"]
    return [f"{rng.choice(NAMES)} = {_expr(rng, 3)}"]


def random_answer(rng: random.Random, task: str) -> str:
    """A random answer: the task's function (6-14 statements), sometimes with a helper before it."""
    funcs = []
    if rng.random() < 0.4:
        body = [ln for _ in range(rng.randint(2, 5)) for ln in _stmt(rng)]
        funcs.append(f"def _helper_{task}(a, b):\n" + "\n".join("    " + ln for ln in body) + "\n    return a")
    body = [ln for _ in range(rng.randint(6, 14)) for ln in _stmt(rng)]
    funcs.append(f"def {task}({TASKS[task]}):\n" + "\n".join("    " + ln for ln in body) + "\n    return out")
    return "\n\n\n".join(funcs)


class _Rename(ast.NodeTransformer):
    def __init__(self, rng: random.Random):
        self.map: dict[str, str] = {}
        self.rng = rng

    def new(self, name: str) -> str:
        if name in {"torch", "range", "len", "max", "min", "abs"} or name in TASKS:
            return name
        return self.map.setdefault(name, f"v{self.rng.randrange(10**6)}_{len(self.map)}")

    def visit_Name(self, node):
        node.id = self.new(node.id)
        return node

    def visit_arg(self, node):
        node.arg = self.new(node.arg)
        return node

    def visit_FunctionDef(self, node):
        node.name = self.new(node.name)
        self.generic_visit(node)
        return node

    def visit_Constant(self, node):
        if isinstance(node.value, int) and not isinstance(node.value, bool):
            node.value = float(node.value)
        return node


def disguise(source: str, rng: random.Random) -> str:
    """A copy that renames every name, reorders the top-level functions and adds comments and docstrings."""
    tree = _Rename(rng).visit(ast.parse(source))
    tree.body.reverse()
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef):
            fn.body.insert(0, ast.Expr(ast.Constant("My own implementation, written from scratch.")))
    return "# " + "\n# ".join(["I worked on this alone", "see lecture 5"]) + "\n" + ast.unparse(tree)


def make_class(n: int, seed: int = 0) -> tuple[dict[str, dict[str, str]], set[tuple[str, str, str]]]:
    """``{student: {task: source}}`` and the planted ``(task, student_a, student_b)`` triples (a < b)."""
    rng = random.Random(seed)
    students = [f"s{i:04d}" for i in range(n)]
    answers = {s: {t: random_answer(rng, t) for t in TASKS} for s in students}
    planted: set[tuple[str, str, str]] = set()
    pool = students[:]
    rng.shuffle(pool)
    for i in range(min(20, n // 4)):
        a, b = pool[2 * i], pool[2 * i + 1]
        for t in TASKS:
            answers[b][t] = disguise(answers[a][t], rng)
            planted.add((t, *sorted((a, b))))
    start = 2 * min(20, n // 4)
    for i in range(min(10, (n - start) // 2)):
        a, b = pool[start + 2 * i], pool[start + 2 * i + 1]
        t = rng.choice(sorted(TASKS))
        answers[b][t] = disguise(answers[a][t], rng)
        planted.add((t, *sorted((a, b))))
    return answers, planted


def write_class(answers: dict[str, dict[str, str]], release: Path, folder: Path) -> None:
    """Notebooks in nbgrader's ``submitted/<student>/iou_nms/iou_nms.ipynb`` layout."""
    base = nbformat.read(release, as_version=4)
    for student, per in answers.items():
        nb = nbformat.from_dict(base)
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid in per:
                cell.source = per[gid]
        out = folder / student / "iou_nms"
        out.mkdir(parents=True)
        nbformat.write(nb, out / "iou_nms.ipynb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "SIMILARITY_RESULTS.md")
    args = parser.parse_args(argv)
    release_dir = ROOT / "assignments" / "release" / "iou_nms"
    answers, planted = make_class(args.students)
    with tempfile.TemporaryDirectory() as tmp:
        write_class(answers, release_dir / "iou_nms.ipynb", Path(tmp))
        t0 = time.process_time()
        loaded = similarity.load_class(Path(tmp), release_dir, "iou_nms")
        t1 = time.process_time()
        matches, _ = similarity.compare(loaded, similarity.load_templates(release_dir))
        t2 = time.process_time()
    found = {(m.task, m.student_a, m.student_b) for m in matches}
    pairs = args.students * (args.students - 1) // 2
    lines = [
        "# Similarity report on a synthetic class",
        "",
        f"`python benchmarks/similarity.py --students {args.students}` on {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {datetime.date.today()}; CPU seconds (`time.process_time`).",
        "",
        "| students | tasks | pairs per task | read notebooks (CPU s) | compare (CPU s) | planted found | planted missed | other pairs flagged |",
        "|---|---|---|---|---|---|---|---|",
        f"| {args.students} | {len(TASKS)} | {pairs} | {t1 - t0:.1f} | {t2 - t1:.1f} | "
        f"{len(found & planted)} / {len(planted)} | {len(planted - found)} | {len(found - planted)} |",
        "",
        "Defaults: threshold 0.8, min-shared 25, common 0.2, K = 6 tokens per shingle.",
    ]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)
    return 0 if found == planted else 1


if __name__ == "__main__":
    sys.exit(main())
