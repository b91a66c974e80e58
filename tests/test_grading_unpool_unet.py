"""The unpool_unet assignment graded with the real ``nbgrader autograde`` on sample submissions.

Every sample in ``tests/submissions/unpool_unet/`` is autograded once (module fixture, both cores);
each test then checks one submission's per-cell scores: correct solutions get full marks, every bug
and every cheat loses the points of the cells that test what it gets wrong, and keeps the others.
Only the two correct submissions (and the wrong-size and head-less U-Nets, which fail fast) reach the U-Net
training test, so the file stays within a few minutes on a 2-core CPU.
"""

from __future__ import annotations

import nbformat
import pytest
from grading_harness import ASSIGNMENTS, autograde, submission_files

pytestmark = pytest.mark.slow

ASSIGNMENT = "unpool_unet"

NEAREST = ["test_nearest_visible", "test_nearest_hidden"]
MAXUNPOOL = ["test_max_unpool_visible", "test_max_unpool_hidden", "test_max_unpool_odd"]
CONVT = ["test_conv_t_visible", "test_conv_t_stride1", "test_conv_t_stride", "test_conv_t_padding", "test_conv_t_bias"]
UNET = ["test_unet_visible", "test_unet_shapes", "test_unet_grads", "test_unet_learns"]
UNPOOL = NEAREST + MAXUNPOOL + CONVT

# submission -> cells that must score zero; every other cell of UNPOOL must score full marks.
# Submissions with an unfinished U-Net ("UNet stub") lose the U-Net cells too; that is checked separately.
EXPECTED_LOST = {
    "bed_of_nails": NEAREST,
    "maxunpool_no_offset": ["test_max_unpool_hidden", "test_max_unpool_odd"],
    "maxunpool_swapped": MAXUNPOOL,
    "maxunpool_ignores_output_size": ["test_max_unpool_hidden", "test_max_unpool_odd"],
    "convt_no_flip": ["test_conv_t_stride1", "test_conv_t_stride", "test_conv_t_padding", "test_conv_t_bias"],
    "convt_no_padding": ["test_conv_t_visible", "test_conv_t_padding", "test_conv_t_bias"],  # the visible test checks a padding=1 shape
    "convt_no_bias": ["test_conv_t_bias"],
    "cheat_library": ["test_nearest_hidden", "test_max_unpool_hidden", "test_max_unpool_odd", "test_conv_t_stride1",
                      "test_conv_t_stride", "test_conv_t_padding", "test_conv_t_bias"],
    "cheat_aliased": ["test_nearest_hidden", "test_max_unpool_hidden", "test_max_unpool_odd", "test_conv_t_stride1",
                      "test_conv_t_stride", "test_conv_t_padding", "test_conv_t_bias"],
    "tamper_equal": [g for g in UNPOOL if not g.endswith("_visible")],
    "unet_wrong_size": ["test_unet_visible", "test_unet_shapes", "test_unet_learns"],
    # issue 15: no final 1x1 convolution; the learning test rejects it before training (output channels)
    "unet_no_head": ["test_unet_visible", "test_unet_shapes", "test_unet_learns"],
    # issue 14: inputs keep the stated rules, so validating them costs nothing (UNet stub: unpooling cells only)
    "correct_validating": [],
    # issue 14: shortcuts around the dispatch-level guard (torch.nn.grad.conv2d_input, _DisableTorchDispatch,
    # leaving the mode with _pop_mode) and a fake sys.modules entry for the class the U-Net test compares with
    "cheat_dispatch_escape": ["test_nearest_hidden", "test_max_unpool_hidden", "test_max_unpool_odd",
                              "test_conv_t_stride1", "test_conv_t_stride", "test_conv_t_padding", "test_conv_t_bias"],
    "cheat_unet_sys_modules": ["test_unet_shapes"],
}
CORRECT = ["correct_vectorised", "correct_loops"]


@pytest.fixture(scope="module")
def results():
    return autograde(ASSIGNMENT, submission_files(ASSIGNMENT), jobs=2)


def _cells_with_points() -> dict[str, float]:
    nb = nbformat.read(ASSIGNMENTS / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    meta = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    return {m["grade_id"]: float(m.get("points", 0)) for m in meta if m.get("grade")}


def test_every_sample_is_listed():
    assert set(submission_files(ASSIGNMENT)) == set(EXPECTED_LOST) | set(CORRECT)


def test_points_layout_hidden_tests_weigh_most():
    points = _cells_with_points()
    assert set(UNPOOL + UNET) <= set(points)
    visible = sum(points[g] for g in points if g.endswith("_visible"))
    assert visible < 0.25 * sum(points.values())


@pytest.mark.parametrize("name", CORRECT)
def test_correct_submissions_get_full_marks(results, name):
    res = results[name]
    assert not res.flags, res.flags
    assert res.total == res.max_total, {g: s for g, s in res.scores.items() if s[0] != s[1]} | {"errors": res.errors}


@pytest.mark.parametrize("name", sorted(EXPECTED_LOST))
def test_buggy_submission_loses_exactly_the_intended_cells(results, name):
    res = results[name]
    lost = EXPECTED_LOST[name]
    for gid in lost:
        assert res.scores[gid][0] == 0, f"{name} should lose {gid}: {res.scores[gid]}"
    cells = UNPOOL + (UNET if name.startswith("unet_") else [])
    for gid in cells:
        if gid not in lost:
            score, max_score = res.scores[gid]
            assert score == max_score, f"{name} should keep {gid}: got {score}/{max_score} ({res.errors.get(gid)})"
    assert res.total < res.max_total


def test_unfinished_unet_scores_zero_on_unet_cells(results):
    res = results["bed_of_nails"]
    assert all(res.scores[g][0] == 0 for g in UNET)


def test_a_faked_module_entry_does_not_hide_the_course_unet(results):
    # the fake sys.modules entry is tampering in itself (entries present at capture are pinned), and the
    # shapes test's class check would catch the course UNet even without that
    res = results["cheat_unet_sys_modules"]
    error = res.errors["test_unet_shapes"]
    assert "sys.modules['cvcourse.models.segmentation']" in error, error
    assert res.scores["test_unet_shapes"][0] == 0 and res.scores["test_unet_learns"][0] == 0, res.scores


def test_tampering_is_reported(results):
    errors = " ".join(str(e) for e in results["tamper_equal"].errors.values())
    assert "torch.equal" in errors and "tamper" in errors.lower(), errors


@pytest.mark.parametrize("name,needle", [("cheat_library", "interpolate"), ("cheat_aliased", "interpolate"),
                                         ("cheat_library", "conv_transpose2d"), ("cheat_aliased", "max_unpool2d"),
                                         ("cheat_dispatch_escape", "torch.nn.grad.conv2d_input"),
                                         ("cheat_dispatch_escape", "_DisableTorchDispatch"),
                                         ("cheat_dispatch_escape", "_pop_mode")])
def test_cheating_is_reported_with_the_reason(results, name, needle):
    errors = " ".join(str(e) for e in results[name].errors.values())
    assert "library version" in errors and needle in errors, errors
