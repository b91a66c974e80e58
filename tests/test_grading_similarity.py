"""The similarity report (cvcourse.grading.similarity): disguised copies are flagged, independent
solutions and the untouched release are not, and the report is escaped, offline HTML."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nbformat
import pytest

from cvcourse.grading import similarity
from cvcourse.grading.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "assignments" / "release" / "iou_nms"
SAMPLES = ROOT / "tests" / "submissions" / "iou_nms"
CORRECT = ["correct_loops", "correct_numpy", "correct_vectorised", "correct_while"]

# correct_loops with every name changed, the two functions of box_iou in the other order, other
# comments, a docstring, literals changed (0 -> 0.0) and the keep list built by a different name.
DISGUISED_COPY = '''# My own work.

# -- cell: box_area --
def box_area(b):
    """Areas."""
    out = []
    for p, q, r, s in b.tolist():  # corners
        out.append((r - p) * (s - q))
    return torch.tensor(out, dtype=b.dtype)

# -- cell: box_iou --
def box_iou(first, second):
    # one row per box of the first set
    table = [[overlap(u, v) for v in second.tolist()] for u in first.tolist()]
    return torch.tensor(table, dtype=torch.float64).reshape(len(first), len(second))


def overlap(u, v):
    """IoU of two boxes given as lists."""
    ww = min(u[2], v[2]) - max(u[0], v[0])
    hh = min(u[3], v[3]) - max(u[1], v[1])
    common = max(ww, 0.0) * max(hh, 0.0)
    total = (u[2] - u[0]) * (u[3] - u[1]) + (v[2] - v[0]) * (v[3] - v[1]) - common
    return common / total if total > 0.0 else 0.0

# -- cell: nms --
def nms(bb, ss, t):
    L = bb.tolist()
    ranking = sorted(range(len(L)), key=lambda z: -float(ss[z]))
    chosen = []
    for z in ranking:
        # keep it if it overlaps no chosen box too much
        if all(overlap(L[z], L[c]) <= t for c in chosen):
            chosen.append(z)
    return torch.tensor(chosen, dtype=torch.long)

# -- cell: batched_nms --
def batched_nms(bb, ss, cls, t):
    result = []
    for label in sorted(set(cls.tolist())):
        group = [n for n, g in enumerate(cls.tolist()) if g == label]
        inner = nms(bb[group], ss[group], t).tolist()
        result += [group[j] for j in inner]
    result.sort(key=lambda n: -float(ss[n]))
    return torch.tensor(result, dtype=torch.int64)
'''


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory) -> Path:
    """Four independent correct samples, one disguised copy of correct_loops, two untouched releases."""
    folder = tmp_path_factory.mktemp("submitted")
    for name in CORRECT:
        shutil.copy(SAMPLES / f"{name}.py", folder / f"{name}.py")
    (folder / "copier.py").write_text(DISGUISED_COPY)
    for name in ("untouched_a", "untouched_b"):  # nbgrader layout: <student>/<assignment>/<nb>
        (folder / name / "iou_nms").mkdir(parents=True)
        shutil.copy(RELEASE / "iou_nms.ipynb", folder / name / "iou_nms" / "iou_nms.ipynb")
    return folder


@pytest.fixture(scope="module")
def report(class_folder):
    answers = similarity.load_class(class_folder, RELEASE, "iou_nms")
    matches, prints = similarity.compare(answers, similarity.load_templates(RELEASE))
    return answers, matches, prints


def test_normalisation_ignores_names_literals_comments_docstrings_and_function_order():
    a = "def f(x, y):\n    # sum\n    return g(x) + y * 2\n\n\ndef g(z):\n    return z.clamp(min=0)\n"
    b = ('def g(q):\n    """doc"""\n    return q.clamp(min=1.5)  # other comment\n\n\n'
         'def h(u, v):\n    return g(u) + v * 7\n')
    assert similarity.fingerprint(a).shingles == similarity.fingerprint(b).shingles
    # ... but not what the code does: another attribute, another operator, another builtin
    for changed in (a.replace("clamp", "clip"), a.replace("y * 2", "y - 2"), a.replace("g(x)", "abs(x)")):
        assert similarity.fingerprint(changed).shingles != similarity.fingerprint(a).shingles


def test_disguised_copy_is_flagged_on_every_task(report):
    _, matches, _ = report
    flagged = {(m.task, m.student_a, m.student_b) for m in matches}
    for task in ("box_area", "box_iou", "nms", "batched_nms"):
        assert (task, "copier", "correct_loops") in flagged, task
    assert all(m.similarity >= 0.8 for m in matches)


def test_independent_solutions_and_the_release_are_not_flagged(report):
    answers, matches, prints = report
    pairs = {(m.task, m.student_a, m.student_b) for m in matches}
    # correct_numpy and correct_while share one cell verbatim (the samples' author reused it): a real
    # copy, rightly flagged. No other pair of the independent samples is.
    assert answers["correct_numpy"]["batched_nms"] == answers["correct_while"]["batched_nms"]
    expected = {(t, "copier", "correct_loops") for t in ("box_area", "box_iou", "nms", "batched_nms")}
    assert pairs == expected | {("batched_nms", "correct_numpy", "correct_while")}
    # correct_vectorised and correct_while write box_area identically (the one-liner everyone writes):
    # too short to count as evidence (fewer shared shingles than min_shared).
    assert answers["correct_vectorised"]["box_area"] == answers["correct_while"]["box_area"]
    shared = prints["box_area"]["correct_vectorised"].shingles & prints["box_area"]["correct_while"].shingles
    assert 0 < len(shared) < 25
    # the untouched release copies: nothing left once the template is removed
    for task in prints:
        assert prints[task]["untouched_a"].shingles == set()
        assert not any("untouched" in m.student_a + m.student_b for m in matches)


def test_template_code_does_not_count(class_folder):
    """Without removing the template, two untouched copies would be identical; with it, empty."""
    answers = similarity.load_class(class_folder, RELEASE, "iou_nms")
    only = {s: answers[s] for s in ("untouched_a", "untouched_b")}
    flagged, _ = similarity.compare(only, None, min_shared=1)
    assert flagged, "the release's own code should match itself when no template is given"
    assert similarity.compare(only, similarity.load_templates(RELEASE), min_shared=1)[0] == []


def test_inserted_cells_count_towards_the_answer_before_them():
    release = nbformat.read(RELEASE / "iou_nms.ipynb", as_version=4)
    nb = nbformat.from_dict(release)
    i = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "nms")
    nb.cells.insert(i + 1, nbformat.v4.new_code_cell("def helper(z):\n    return z * 2"))
    answers = similarity.answers_of(nb, release)
    assert "def helper" in answers["nms"] and "def helper" not in answers["box_iou"]


def test_html_report_is_escaped_and_offline(tmp_path):
    evil = "def box_iou(a, b):\n    s = '</pre><script>alert(1)</script>'\n" + "\n".join(
        f"    a{i} = torch.maximum(a[:, {i}], b[:, {i}]).clamp(min=0) * (a[:, {i}] - b[:, {i}])" for i in range(6))
    answers = {"<b>eve</b>": {"box_iou": evil}, "mallory": {"box_iou": evil.replace("a0", "zz")}}
    matches, prints = similarity.compare(answers)
    assert len(matches) == 1
    out = tmp_path / "report.html"
    similarity.write_html(matches, prints, out, "t")
    text = out.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text and "&lt;b&gt;eve&lt;/b&gt;" in text
    assert "http" not in text and "<link" not in text and "src=" not in text
    assert text.count('class="hit"') >= 12  # the shared lines of both sides are highlighted


def test_command_writes_csv_and_html_and_exits_1_when_flagged(class_folder, tmp_path, capsys):
    rc = main(["similarity", "iou_nms", str(class_folder), "--release", str(RELEASE),
               "--csv", str(tmp_path / "pairs.csv"), "--html", str(tmp_path / "pairs.html")])
    assert rc == 1
    rows = list(csv.DictReader(open(tmp_path / "pairs.csv")))
    assert {(r["task"], r["student_a"], r["student_b"]) for r in rows} >= {("nms", "copier", "correct_loops")}
    assert len(rows) == 5
    out = capsys.readouterr().out
    assert "5 near-copy answer(s) in 2 pair(s) of students" in out
    assert "copier ~ correct_loops: 4/4 tasks" in out
    assert "copier" in (tmp_path / "pairs.html").read_text()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="threshold"):
        similarity.compare({}, threshold=1.5)
    with pytest.raises(ValueError, match="min_shared"):
        similarity.compare({}, min_shared=0)
    with pytest.raises(TypeError, match="source must be a str"):
        similarity.normalise(None)
    with pytest.raises(FileNotFoundError, match="no release notebook"):
        similarity.load_class(ROOT, ROOT / "nowhere")


def test_a_file_that_is_not_a_notebook_is_skipped_not_fatal(tmp_path, caplog):
    (tmp_path / "forger.ipynb").write_text("{not json")
    shutil.copy(SAMPLES / "correct_loops.py", tmp_path / "correct_loops.py")
    answers = similarity.load_class(tmp_path, RELEASE, "iou_nms")
    assert list(answers) == ["correct_loops"]
    assert "skipped" in caplog.text and "forger.ipynb" in caplog.text
