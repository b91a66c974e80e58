"""The iou_nms assignment, graded for real: sample submissions through ``nbgrader autograde`` in the sandbox.

All samples are graded in ONE batch (module fixture, both cores). Correct ones, written in different
styles, must get full marks; every buggy, cheating or tampering one must lose the points of the
cells its mistake concerns (and keep the others, where the mistake is local); the sandbox attacks
must fail; a crashing and a looping submission are graded without stalling the batch.
"""

from __future__ import annotations

import subprocess

import pytest

from cvcourse.grading.course import nbgrader_cmd, nbgrader_env
from grading_harness import autograde, submission_files

pytestmark = pytest.mark.slow

ALL = {"test_box_area", "test_box_iou", "test_box_iou_edges", "test_box_iou_degenerate", "test_nms",
       "test_nms_threshold", "test_nms_chain", "test_nms_edges", "test_batched_nms"}
IOU = {"test_box_iou", "test_box_iou_edges", "test_box_iou_degenerate"}
NMS = {"test_nms", "test_nms_threshold", "test_nms_chain", "test_nms_edges", "test_batched_nms"}

CORRECT = ["correct_vectorised", "correct_loops", "correct_numpy", "correct_while", "correct_validating"]
BOX_AREA_AND_NMS = {"test_box_area", "test_nms", "test_nms_threshold", "test_nms_chain", "test_nms_edges",
                    "test_batched_nms"}

#: submission -> (cells that must score 0, cells that must keep full marks, text one of the errors must show)
WRONG: dict[str, tuple[set[str], set[str], str]] = {
    "bug_area_plus_one": ({"test_box_area", "test_box_iou", "test_box_iou_edges"}, set(), "values are wrong"),
    "bug_iou_unclamped": ({"test_box_iou_edges"}, {"test_box_area"}, "disjoint"),
    "bug_iou_clamp_product": ({"test_box_iou_edges"}, {"test_box_area"}, "disjoint along both"),
    "bug_iou_transposed": ({"test_box_iou", "test_box_iou_edges"}, {"test_box_area"}, "returned shape"),
    "bug_iou_nan": ({"test_box_iou_degenerate"}, ALL - {"test_box_iou_degenerate"}, "zero-area"),
    "bug_nms_index_order": ({"test_nms", "test_nms_edges"}, IOU | {"test_box_area"}, "nms"),
    "bug_nms_ge": ({"test_nms_threshold"}, IOU | {"test_box_area", "test_nms_chain"}, "exactly at the threshold"),
    "bug_nms_transitive": ({"test_nms_chain"}, IOU | {"test_box_area", "test_nms_threshold"}, "chain"),
    "bug_nms_sorted_positions": ({"test_nms"}, IOU | {"test_box_area"}, "nms of"),
    "bug_nms_empty_float": ({"test_nms_edges"}, ALL - {"test_nms_edges", "test_batched_nms"}, "dtype"),
    "bug_nms_mutates": ({"test_nms"}, IOU | {"test_box_area"}, "modified its input"),
    "bug_batched_ignores_classes": ({"test_batched_nms"}, ALL - {"test_batched_nms"}, "class"),
    "bug_batched_unsorted": ({"test_batched_nms"}, ALL - {"test_batched_nms"}, "batched_nms"),
    "cheat_torchvision": (ALL, set(), "ForbiddenCallError"),
    "cheat_alias": (IOU | NMS, {"test_box_area"}, "as `_fast_iou`"),
    "cheat_cvcourse": ({"test_box_area"} | IOU, set(), "cvcourse.ops"),
    "tamper_comparisons": (ALL, set(), "tampering detected"),
    "tamper_builtins": (ALL, set(), "tampering detected"),
    "edit_tests": ({"test_box_area", "test_nms"}, set(), ""),
    # negative coordinates and classes one offset apart (issue 14: these used to get full marks)
    "bug_iou_clamp_zero": ({"test_box_area", "test_box_iou", "test_box_iou_edges"}, {"test_box_iou_degenerate"},
                           "negative"),
    "bug_batched_fixed_offset": ({"test_batched_nms"}, ALL - {"test_batched_nms"}, "large coordinates"),
    "bug_batched_max_offset": ({"test_batched_nms"}, ALL - {"test_batched_nms"}, "negative"),
    # objects and names the student controls (issue 14): a lying Tensor subclass, a rebound `checks`,
    # an input transformer that blanks later cells
    "tamper_tensor_subclass": (BOX_AREA_AND_NMS, set(), "exactly torch.Tensor"),  # box_iou uses the lying box_area
    "tamper_rebind_checks": ({"test_box_iou_degenerate", "test_nms_threshold"},
                             {"test_box_area", "test_box_iou", "test_nms_chain"}, "zero-area"),
    "tamper_input_transformer": (ALL, set(), ""),
    # library shortcuts the old checks missed (issue 14)
    "cheat_containers": (ALL, set(), "as `_TOOLS`"),
    "cheat_private_helpers": ({"test_box_area"} | IOU | NMS - {"test_batched_nms"}, set(), "a copy of its code"),
    "attack_sandbox": (ALL - {"test_box_iou_degenerate"}, set(), ""),  # all-zero IoU is right there
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    keep = tmp_path_factory.mktemp("iou_nms_graded")
    results = autograde("iou_nms", submission_files("iou_nms"), jobs=2, timeout=40, keep=keep)
    return results, keep


def test_every_sample_submission_is_graded(graded):
    results, _ = graded
    assert set(results) == set(submission_files("iou_nms"))
    for name, res in results.items():
        assert set(res.scores) == ALL, f"{name}: graded cells {sorted(res.scores)}"
        assert res.max_total == 18, f"{name}: max total {res.max_total}"


@pytest.mark.parametrize("name", CORRECT)
def test_correct_submissions_get_full_marks(graded, name):
    res = graded[0][name]
    assert res.total == res.max_total, f"{name} lost points: {res.errors}"
    assert not res.flags


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_submissions_lose_the_right_points(graded, name):
    res = graded[0][name]
    zero, full, message = WRONG[name]
    lost = {gid for gid, (score, _) in res.scores.items() if score == 0}
    kept = {gid for gid, (score, top) in res.scores.items() if score == top}
    assert zero <= lost, f"{name} should score 0 on {sorted(zero - lost)}: {res.scores}"
    assert full <= kept, f"{name} should keep {sorted(full - kept)}: {res.errors}"
    assert res.total < res.max_total
    if message:
        assert any(message in err for err in res.errors.values()), f"{name}: no error mentions {message!r}: {res.errors}"


def test_tampering_is_named_in_the_message(graded):
    for name in ("tamper_comparisons", "tamper_builtins"):
        errs = graded[0][name].errors
        assert any("TamperingError" in e and "tampering detected" in e for e in errs.values()), errs
    assert "torch.equal" in graded[0]["tamper_comparisons"].errors["test_box_area"]
    named = " ".join(graded[0]["tamper_builtins"].errors.values())
    assert "torch.testing.assert_close" in named and "builtins.abs" in named, named


def test_an_input_transformer_is_undone_and_reported(graded):
    errs = " ".join(graded[0]["tamper_input_transformer"].errors.values())
    assert "input_transformers_post" in errs, errs


def test_private_helpers_and_held_references_are_named(graded):
    errs = " ".join(graded[0]["cheat_private_helpers"].errors.values())
    assert "cvcourse.ops.boxes._inter_union" in errs and "cvcourse.ops.nms._" in errs, errs
    errs = " ".join(graded[0]["cheat_containers"].errors.values())
    assert "as `_BY_NAME`" in errs and "as `_fast_nms`" in errs and "_toolbox.run" in errs, errs


def test_deleted_and_edited_test_cells_are_restored_and_run(graded):
    res = graded[0]["edit_tests"]
    assert "test_nms" in res.scores and "test_box_area" in res.errors and "test_nms" in res.errors


def test_a_crashing_kernel_costs_only_the_affected_cells(graded):
    res = graded[0]["kill_kernel"]
    for gid in {"test_box_area"} | IOU:
        assert res.scores[gid][0] == res.scores[gid][1], res.errors
    for gid in NMS:
        assert res.scores[gid][0] == 0
    assert any("KernelDied" in f for f in res.flags), res.flags


def test_an_endless_loop_times_out_one_cell_and_the_rest_is_graded(graded):
    res = graded[0]["infinite_loop"]
    assert res.scores["test_nms_edges"][0] == 0
    for gid in ALL - {"test_nms_edges"}:
        assert res.scores[gid][0] == res.scores[gid][1], res.errors
    assert any("CellTimeoutError" in f for f in res.flags), res.flags


def test_the_sandbox_attacks_work_without_the_sandbox():
    """Control for attack_sandbox: unsandboxed, the same notebook reads the hidden tests, writes the
    gradebook and sees the grader, so the zero scores in the sandbox come from the sandbox."""
    res = autograde("iou_nms", submission_files("iou_nms", ["attack_sandbox"]), jobs=1, timeout=40,
                    sandbox=False)["attack_sandbox"]
    for gid in ("test_box_area", "test_box_iou", "test_nms"):  # (the gradebook attack even sets scores to 100)
        assert res.scores[gid][0] >= res.scores[gid][1], res.errors


def test_feedback_hides_hidden_tests(graded):
    _, keep = graded
    worker = keep  # one course folder with one gradebook for the whole batch
    assert (worker / "autograded" / "bug_nms_ge").is_dir()
    proc = subprocess.run(nbgrader_cmd() + ["generate_feedback", "iou_nms", "--student=bug_nms_ge", "--force"],
                          cwd=worker, capture_output=True, text=True, env=nbgrader_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (worker / "feedback" / "bug_nms_ge" / "iou_nms" / "iou_nms.html").read_text()
    assert "_hidden_nms_threshold" not in html and "checks.reference" not in html
    assert "hidden tests: not shown in feedback" in html
    assert "exactly at the threshold" in html  # the student still reads what failed
