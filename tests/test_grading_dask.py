"""Grading on a real Dask cluster on 127.0.0.1 (issue 11): same grades as the local pool, nothing lost.

One batch of three iou_nms submissions (a correct one, one that edits locked test cells, and the
untouched release copy) is graded twice, by the local pool and by a ``LocalCluster`` of two
worker processes; during the cluster batch one worker is killed while it grades, and the
scheduler is set to give up on a task at the first death (``allowed-failures: 0``), so the
submission comes back only because the instructor's side sends it once more. Cost: six autogrades
of a torch notebook, about 60-90 CPU-s. The retry-then-report path is tested with a cheap task.

The U-Net assignment, whose notebook trains a U-Net at grading, is graded the same way on one sample
(the local pool and a fresh two-worker cluster at the same time, so the two cores are both busy):
same per-cell scores and flags, and full marks, which this correct sample gets in
tests/test_grading_unpool_unet.py too.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
import time
from pathlib import Path

import nbformat
import pytest

distributed = pytest.importorskip("distributed")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grading_harness import ASSIGNMENTS, build_submission, submission_files  # noqa: E402

from cvcourse.grading import cluster  # noqa: E402
from cvcourse.grading.autograde import grade_batch  # noqa: E402
from cvcourse.grading.sandbox import ensure_kernel  # noqa: E402
from cvcourse.grading.table import format_progress, format_table, tasks_of  # noqa: E402

pytestmark = pytest.mark.slow

RELEASE = ASSIGNMENTS / "release" / "iou_nms"


def _cpu() -> float:  # this process and its finished descendants (nbgrader, kernels, Dask workers)
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _cluster(**config):
    import dask  # noqa: PLC0415

    with dask.config.set({"distributed.scheduler.allowed-failures": 0, **config}):
        return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        dashboard_address=None, silence_logs=40)


@pytest.fixture(scope="module")
def notebooks():
    nbs = {n: build_submission(RELEASE, p) for n, p in
           submission_files("iou_nms", ["correct_vectorised", "edit_tests"]).items()}
    nbs["untouched"] = {"iou_nms.ipynb": nbformat.read(RELEASE / "iou_nms.ipynb", as_version=4)}
    return nbs


@pytest.fixture(scope="module")
def local(notebooks, tmp_path_factory):
    ensure_kernel()
    lines = []
    cpu = _cpu()
    results, logs = grade_batch("iou_nms", notebooks, assignments_dir=ASSIGNMENTS, jobs=2,
                                progress=lambda d, n, g: lines.append(format_progress(d, n, g)))
    print(f"\nlocal pool, 2 workers: {_cpu() - cpu:.1f} CPU-s for {len(notebooks)} submissions")
    return results, dict(zip(sorted(notebooks), logs)), lines


@pytest.fixture(scope="module")
def on_cluster(notebooks, tmp_path_factory):
    ensure_kernel()
    keep = tmp_path_factory.mktemp("dask_keep")
    lines, notes, killed = [], [], []
    cpu = _cpu()
    with _cluster() as lc, distributed.Client(lc) as client:
        def kill_one_busy_worker():  # a worker that is grading (its nbgrader has started) dies
            deadline = time.monotonic() + 1800  # on a loaded CI box generating the course alone takes minutes
            while time.monotonic() < deadline and not killed:
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy:
                    time.sleep(4)
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(busy[0])
                time.sleep(0.2)

        killer = threading.Thread(target=kill_one_busy_worker, daemon=True)
        killer.start()
        results, logs = grade_batch("iou_nms", notebooks, assignments_dir=ASSIGNMENTS,
                                    scheduler=lc.scheduler_address, keep=keep,
                                    progress=lambda d, n, g: lines.append(format_progress(d, n, g)),
                                    notify=notes.append)
        killer.join(5)
    print(f"\nLocalCluster, 2 workers, one killed: {_cpu() - cpu:.1f} CPU-s for {len(notebooks)} submissions")
    return results, lines, notes, killed, keep


def test_cluster_grades_equal_local_grades_although_a_worker_died(local, on_cluster, notebooks):
    results, lines, notes, killed, _ = on_cluster
    assert killed, "the test never caught a worker grading"
    assert sorted(results) == sorted(notebooks)  # no submission lost
    assert any("attempt 1 failed" in n and "KilledWorker" in n for n in notes), notes
    for name, res in local[0].items():
        assert (results[name].scores, results[name].flags) == (res.scores, res.flags), name
    assert format_table(results, tasks_of(RELEASE)) == format_table(local[0], tasks_of(RELEASE))
    assert results["correct_vectorised"].total == results["correct_vectorised"].max_total == 18
    assert results["untouched"].total == 0 and results["untouched"].max_total == 18


def test_progress_is_one_line_per_submission(local, on_cluster):
    for lines in (local[2], on_cluster[1]):
        assert len(lines) == 3, lines
        assert [ln.split("]")[0] for ln in lines] == ["[1/3", "[2/3", "[3/3"]
        assert any("correct_vectorised  18/18" in ln for ln in lines), lines
    assert any("after 1 failed attempt" in ln for ln in on_cluster[1]), on_cluster[1]


def test_release_copy_autogrades_without_warnings_and_edits_still_warn(local):
    logs = local[1]
    assert "WARNING" not in logs["untouched"], [ln for ln in logs["untouched"].splitlines() if "WARNING" in ln]
    assert "has changed!" not in logs["correct_vectorised"]
    assert "Attribute 'checksum' for cell test_box_area has changed!" in logs["edit_tests"]  # it emptied that cell


def test_keep_is_one_course_with_one_merged_gradebook(on_cluster, notebooks):
    from nbgrader.api import Gradebook

    results, _, _, _, keep = on_cluster
    assert not list(keep.glob("worker*"))
    with Gradebook(f"sqlite:///{keep / 'gradebook.db'}") as gb:
        for name in notebooks:
            sub = gb.find_submission("iou_nms", name)
            assert sub.score == results[name].total, name
        assert sorted(s.id for s in gb.students) == sorted(notebooks)
    for name in notebooks:
        assert (keep / "autograded" / name / "iou_nms" / "iou_nms.ipynb").is_file()
        assert (keep / "submitted" / name / "iou_nms" / "iou_nms.ipynb").is_file()


def test_a_task_that_keeps_failing_is_reported_not_lost(notebooks, monkeypatch):
    monkeypatch.setattr(cluster, "grade_task", lambda *args: os._exit(3))  # a lambda travels by value
    done, notes = [], []
    with _cluster() as lc:
        cluster.grade_on_cluster(lc.scheduler_address, ASSIGNMENTS, "iou_nms",
                                 {"correct_vectorised": notebooks["correct_vectorised"]}, [], sandbox=True,
                                 collect=False, limit=60, done=done.append, notify=notes.append)
    assert len(done) == 1 and len(notes) == 1, (done, notes)
    flags = done[0].result.flags
    assert len(flags) == 1 and flags[0].startswith("not graded: 2 attempts failed"), flags
    assert flags[0].count("KilledWorker: ") >= 2, flags
    assert done[0].result.scores == {}


def test_a_timeout_on_the_worker_is_retried_elsewhere_then_reported(notebooks):
    done, notes = [], []
    with _cluster() as lc:
        cluster.grade_on_cluster(lc.scheduler_address, ASSIGNMENTS, "iou_nms",
                                 {"correct_vectorised": notebooks["correct_vectorised"]}, [], sandbox=True,
                                 collect=False, limit=0.5, done=done.append, notify=notes.append)
    flags = done[0].result.flags
    assert flags[0].startswith("not graded: 2 attempts failed") and flags[0].count("ran longer than 0.5 s") == 2, flags
    workers = [part.rsplit("(on ", 1)[1].rstrip(")| ") for part in flags[0].split(" | ")]
    assert len(set(workers)) == 2, workers  # the second attempt went to the other worker


UNET_RELEASE = ASSIGNMENTS / "release" / "unpool_unet"
UNET_SAMPLES = ["correct_vectorised"]


@pytest.fixture(scope="module")
def unet():
    ensure_kernel()
    nbs = {n: build_submission(UNET_RELEASE, p) for n, p in submission_files("unpool_unet", UNET_SAMPLES).items()}
    cpu, where = _cpu(), {}
    with ThreadPoolExecutor(1) as pool:
        local = pool.submit(grade_batch, "unpool_unet", nbs, assignments_dir=ASSIGNMENTS, jobs=1)
        with _cluster() as lc:
            on_cluster, _ = grade_batch("unpool_unet", nbs, assignments_dir=ASSIGNMENTS, scheduler=lc.scheduler_address,
                                        progress=lambda d, n, g: where.update({g.result.student: g.where}))
        local, _ = local.result()
    print(f"\nunpool_unet, local pool and LocalCluster: {_cpu() - cpu:.1f} CPU-s for {len(nbs)} submission(s) each")
    return local, on_cluster, where


def test_unet_assignment_grades_on_the_cluster_as_on_the_local_pool(unet):
    local, on_cluster, where = unet
    assert sorted(local) == sorted(on_cluster) == UNET_SAMPLES
    for name in UNET_SAMPLES:
        assert (on_cluster[name].scores, on_cluster[name].flags) == (local[name].scores, local[name].flags), name
        assert where[name].startswith("tcp://127.0.0.1:"), where  # graded by a Dask worker, not locally
    res = on_cluster["correct_vectorised"]
    assert res.flags == [] and res.total == res.max_total > 0, (res.scores, res.flags)
    score, points = res.scores["test_unet_learns"]  # the cell that trains the U-Net in the notebook
    assert points > 0 and score == points
