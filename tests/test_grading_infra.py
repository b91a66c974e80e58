"""Unit tests of the grading infrastructure that need no nbgrader run: sandbox command line, the sandboxed
kernel itself, feedback stripping, submission files, and the hidden-test checks (tampering, forbidden calls)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch

from cvcourse.grading import feedback, sandbox, submissions

ROOT = Path(__file__).resolve().parents[1]


def _conn(tmp_path: Path, transport="ipc", ip=None) -> Path:
    path = tmp_path / "rt" / "kernel.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"transport": transport, "ip": ip or str(path.parent / "kernel")}))
    return path


def test_sandbox_command_hides_the_course_and_drops_the_network(tmp_path):
    course = tmp_path / "course"
    cwd = course / "autograded" / "alice" / "iou_nms"
    cwd.mkdir(parents=True)
    cmd = sandbox.bwrap_command(str(_conn(tmp_path)), cwd=str(cwd), env={"HOME": "/root", "PATH": "/usr/bin",
                                                                          "JPY_PARENT_PID": "1", "SECRET": "x"})
    joined = " ".join(cmd)
    for flag in ("--unshare-net", "--unshare-pid", "--die-with-parent", "--clearenv"):
        assert flag in cmd
    pairs = list(zip(cmd, cmd[1:]))
    assert ("--tmpfs", str(course.resolve())) in pairs and ("--tmpfs", "/root") in pairs
    assert ("--bind", str(cwd.resolve())) in pairs
    assert ("--ro-bind", str(Path(sys.prefix).resolve())) in pairs
    assert "JPY_PARENT_PID" not in joined and "SECRET" not in joined
    # hidden folders come before the binds that re-expose parts of them
    last_tmpfs = max(i for i, a in enumerate(cmd) if a == "--tmpfs")
    first_bind = min(i for i, a in enumerate(cmd) if a in ("--bind", "--ro-bind") and i > 4)
    assert last_tmpfs < first_bind


def test_sandbox_command_hides_source_checkouts_wherever_they_are(tmp_path):
    """A course repo cloned outside the usual roots (CI clones to /check/...) is hidden, and so is
    the checkout of an editable cvcourse, while the package itself stays readable."""
    repo = tmp_path / "elsewhere" / "repo"
    cwd = repo / "assignments" / "autograded" / "alice" / "iou_nms"
    cwd.mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\n")
    cmd = sandbox.bwrap_command(str(_conn(tmp_path)), cwd=str(cwd), env={"PATH": "/usr/bin"})
    pairs = list(zip(cmd, cmd[1:]))
    assert ("--tmpfs", str(repo.resolve())) in pairs
    assert ("--tmpfs", str((repo / "assignments").resolve())) in pairs
    if (ROOT / "pyproject.toml").is_file() and (ROOT / "cvcourse").is_dir():  # an editable install
        assert ("--tmpfs", str(ROOT)) in pairs
    import cvcourse

    package = str(Path(cvcourse.__file__).resolve().parent)
    assert ("--ro-bind", package) in pairs
    assert cmd.index(package) > max(i for i, a in enumerate(cmd) if a == "--tmpfs")


def test_project_root_is_the_nearest_checkout(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / ".git").mkdir()
    assert sandbox._project_root(tmp_path / "a" / "b") == tmp_path / "a"


@pytest.mark.parametrize("transport, ip, match", [("tcp", "127.0.0.1", "ipc transport"),
                                                   ("ipc", "kernel", "relative"),
                                                   ("ipc", "/tmp/kernel", "private folder")])
def test_sandbox_refuses_to_start_unsafely(tmp_path, transport, ip, match):
    with pytest.raises(sandbox.SandboxError, match=match):
        sandbox.bwrap_command(str(_conn(tmp_path, transport, ip)), cwd=str(tmp_path))


def test_sandbox_refuses_without_bwrap(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxError, match="bubblewrap"):
        sandbox.bwrap_command(str(_conn(tmp_path)), cwd=str(tmp_path))


def test_install_kernel_is_idempotent(tmp_path):
    first = sandbox.install_kernel(tmp_path)
    spec = json.loads((first / "kernel.json").read_text())
    assert spec["argv"][1:4] == ["-m", "cvcourse.grading.sandbox", "-f"]
    assert spec["interrupt_mode"] == "message"
    assert sandbox.install_kernel(tmp_path) == first


@pytest.mark.slow
def test_sandboxed_kernel_sees_only_its_folder(tmp_path):
    """Start the real sandboxed kernel the way nbgrader does and probe what student code can reach."""
    pytest.importorskip("jupyter_client")
    if not sandbox.shutil.which("bwrap"):
        pytest.skip("bubblewrap not installed")
    sandbox.ensure_kernel()
    work = tmp_path / "course" / "autograded" / "alice" / "a"
    work.mkdir(parents=True)
    sandbox.hand_to_sandbox(work)
    (tmp_path / "course" / "gradebook.db").write_text("secret")
    probe = textwrap.dedent(f"""
        import json, os, pathlib, socket, sys
        r = {{}}
        r["gradebook"] = os.path.exists({str(tmp_path / 'course' / 'gradebook.db')!r})
        r["repo_source"] = os.path.exists({str(ROOT / 'assignments' / 'source')!r})
        r["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        r["cwd_writable"] = os.access(os.getcwd(), os.W_OK)
        r["venv_writable"] = os.access({str(Path(sys.prefix) / 'bin')!r}, os.W_OK)
        r["env_secret"] = "CVCOURSE_TEST_SECRET" in os.environ
        r["uid"], r["gid"] = os.getuid(), os.getgid()
        try:
            open("/etc/shadow").read(1); r["shadow"] = True
        except OSError:
            r["shadow"] = False
        open("written_by_kernel.txt", "w").write("ok")
        conn = sys.argv[sys.argv.index("-f") + 1]
        r["conn_dir"] = os.path.dirname(conn)
        r["runtime_siblings"] = os.listdir(os.path.dirname(os.path.dirname(conn)))
        try:
            socket.create_connection(("1.1.1.1", 53), timeout=2); r["net"] = True
        except OSError:
            r["net"] = False
        import cvcourse.grading.checks
        print(json.dumps(r))
    """)
    code = textwrap.dedent(f"""
        import json, os, sys
        from jupyter_client.manager import KernelManager
        from traitlets.config import Config
        from cvcourse.grading.sandbox import configure
        import asyncio
        c = Config(); configure(c)
        async def run():
            out = []
            km = c.Execute.kernel_manager_class(kernel_name=c.Execute.kernel_name, config=c)
            await km.start_kernel(cwd={str(work)!r})
            kc = km.client(); kc.start_channels()
            try:
                await kc.wait_for_ready(timeout=120)
                await kc.execute_interactive({probe!r}, timeout=120,
                                             output_hook=lambda m: out.append(m["content"].get("text", "")))
            finally:
                await km.shutdown_kernel(now=True)
            return "".join(out)
        first = json.loads(asyncio.run(run()))
        second = json.loads(asyncio.run(run()))
        first["conn_dir_removed"] = not os.path.exists(first["conn_dir"])
        first["second_conn_dir"] = second["conn_dir"]
        print("RESULT" + json.dumps(first))
    """)
    env = {**os.environ, "CVCOURSE_TEST_SECRET": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    r = json.loads(line[0][len("RESULT"):])
    assert r == {**r, "gradebook": False, "repo_source": False, "cwd_writable": True, "venv_writable": False,
                 "env_secret": False, "net": False, "uid": 65534, "gid": 65534, "shadow": False}, r
    assert (work / "written_by_kernel.txt").read_text() == "ok"
    # each kernel start: its own fresh folder, removed afterwards, and no other kernel's folder in sight
    assert r["conn_dir_removed"] and r["second_conn_dir"] != r["conn_dir"], r
    assert r["runtime_siblings"] == [os.path.basename(r["conn_dir"])], r
    assert max(r["pids"]) < 10, f"the kernel sees other processes: {r['pids']}"


def test_feedback_strips_hidden_tests_and_tracebacks():
    cell = nbformat.v4.new_code_cell("a = 1\n### BEGIN HIDDEN TESTS\nassert secret()\n### END HIDDEN TESTS\nb = 2")
    cell.outputs = [nbformat.v4.new_output("error", ename="GradingFailure", evalue="nms: wrong",
                                           traceback=["----> 3 assert secret()", "GradingFailure: nms: wrong"])]
    out, _ = feedback.HideHiddenTests().preprocess_cell(cell, {}, 0)
    assert "secret" not in out.source and "a = 1" in out.source and "b = 2" in out.source
    assert out.outputs[0]["traceback"] == ["GradingFailure: nms: wrong"]


def test_submission_files_replace_delete_and_insert(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("stub"), nbformat.v4.new_code_cell("test")])
    nb.cells[0].metadata["nbgrader"] = {"grade_id": "answer"}
    nb.cells[1].metadata["nbgrader"] = {"grade_id": "test_answer"}
    (tmp_path / "release").mkdir()
    nbformat.write(nb, tmp_path / "release" / "a.ipynb")
    sub = tmp_path / "s.py"
    sub.write_text("# comment\n# -- cell: answer --\ndef f():\n    return 1\n\n# -- insert-after: answer --\nx = 2\n"
                   "# -- delete: test_answer --\n")
    out = submissions.build_submission(tmp_path / "release", sub)["a.ipynb"]
    assert [c.source for c in out.cells] == ["def f():\n    return 1", "x = 2"]
    bad = tmp_path / "bad.py"
    bad.write_text("# -- delete: answer --\nx = 1\n")
    with pytest.raises(ValueError, match="must be empty"):
        submissions.build_submission(tmp_path / "release", bad)
    missing = tmp_path / "missing.py"
    missing.write_text("# -- cell: nope --\nx = 1\n")
    with pytest.raises(KeyError, match="nope"):
        submissions.build_submission(tmp_path / "release", missing)


CHECKS_SCRIPT = textwrap.dedent('''
    # One interpreter imports torch once, then forks a fresh child per case, so tampering never leaks.
    import json, os, sys, builtins, torch, torch.testing, torchvision
    torch.set_num_threads(1)
    from cvcourse.grading import checks
    checks.capture()
    results = []
    for code in json.loads(sys.argv[1]):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                ns = {"__name__": "__main__", "torch": torch, "torchvision": torchvision, "builtins": builtins,
                      "checks": checks}
                exec(code, ns)
                b = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 4.0]])
                out = checks.call(ns["student"], b, what="box_area")
                checks.assert_close(out, torchvision.ops.box_area(b), "box_area")
                verdict = ["pass", ""]
            except checks.GradingFailure as err:
                verdict = [type(err).__name__, str(err)]
            except BaseException as err:
                verdict = ["crash", repr(err)]
            os.write(w, json.dumps(verdict).encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as fh:
            results.append(json.loads(fh.read()))
        os.waitpid(pid, 0)
    print(json.dumps(results))
''')

GOOD = "def student(b):\n    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])\n"
WRONG = "def student(b):\n    return torch.zeros(len(b))\n"

CASES = [
    (GOOD, "pass", ""),
    (WRONG, "GradingFailure", "values are wrong"),
    (WRONG + "torch.equal = lambda *a: True", "TamperingError", "torch.equal"),
    (WRONG + "torch.allclose = lambda *a, **k: True", "TamperingError", "torch.allclose"),
    (WRONG + "torch.testing.assert_close = lambda *a, **k: None", "TamperingError", "assert_close"),
    (WRONG + "builtins.abs = lambda x: 0", "TamperingError", "builtins.abs"),
    (WRONG + "torch.testing.assert_close.__code__ = (lambda *a, **k: None).__code__", "TamperingError",
     "assert_close"),
    (WRONG + "checks.assert_close.__code__ = (lambda *a, **k: None).__code__", "TamperingError", "checks.assert_close"),
    ("def student(b):\n    return torchvision.ops.box_area(b)\n", "ForbiddenCallError", "torchvision.ops.box_area"),
    ("from torchvision.ops import box_area as ba\ndef student(b):\n    return ba(b)\n", "ForbiddenCallError",
     "as `ba`"),
    ("import cvcourse.ops\ndef student(b):\n    return cvcourse.ops.box_area(b)\n", "ForbiddenCallError",
     "cvcourse.ops.box_area"),
    ("def student(b):\n    try:\n        return torchvision.ops.box_area(b)\n    except Exception:\n"
     "        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])\n", "ForbiddenCallError", "caught inside your code"),
    ("def student(b):\n    b[:, 0] = 0\n    return b[:, 2] * b[:, 3]\n", "GradingFailure", "modified its input"),
    # a fake sys.modules entry that a later hidden-test import (e.g. of cvcourse.grading.budgets) would pick up
    (WRONG + "import sys, types\nsys.modules['cvcourse.grading'] = types.ModuleType('cvcourse.grading')",
     "TamperingError", "sys.modules['cvcourse.grading']"),
    (WRONG + "import sys\nsys.modules = dict(sys.modules)", "TamperingError", "sys.modules (rebound)"),
]


@pytest.fixture(scope="module")
def checks_verdicts():
    proc = subprocess.run([sys.executable, "-c", CHECKS_SCRIPT, json.dumps([c for c, _, _ in CASES])],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(CASES)))
def test_checks_catch_tampering_and_library_calls(checks_verdicts, case):
    _, verdict, message = CASES[case]
    got, text = checks_verdicts[case]
    assert got == verdict, text
    assert message in text


def test_forbidden_functions_are_restored_after_the_call():
    import torch.nn.functional as F
    import torchvision

    from cvcourse.grading import checks

    checks.capture()
    before = (torchvision.ops.nms, F.interpolate, torch.nn.ConvTranspose2d.forward, torch.ops.torchvision.nms)
    checks.call(lambda x: x + 1, torch.zeros(2))
    with pytest.raises(checks.ForbiddenCallError, match="interpolate"):
        checks.call(lambda x: F.interpolate(x, scale_factor=2), torch.zeros(1, 1, 2, 2))
    assert (torchvision.ops.nms, F.interpolate, torch.nn.ConvTranspose2d.forward, torch.ops.torchvision.nms) == before


def test_dispatcher_level_calls_are_refused_and_plain_convolution_is_not():
    """``torch.ops.aten.*`` reaches the kernels without passing any Python name that forbid_library patches."""
    import torch.nn.functional as F

    from cvcourse.grading import checks

    checks.capture()
    x = torch.randn(1, 1, 4, 4)
    pooled, idx = F.max_pool2d(x, 2, return_indices=True)
    weight = torch.randn(1, 1, 3, 3)
    bypasses = {
        "aten::max_unpool2d": lambda: torch.ops.aten.max_unpool2d(pooled, idx, [4, 4]),
        "aten::upsample_nearest2d": lambda: torch.ops.aten.upsample_nearest2d.vec(pooled, None, [2.0, 2.0]),
        "aten::convolution (transposed)": lambda: torch.ops.aten.convolution(
            pooled, weight, None, [2, 2], [0, 0], [1, 1], True, [0, 0], 1),
    }
    for label, bypass in bypasses.items():
        with pytest.raises(checks.ForbiddenCallError, match=label.replace("(", r"\(").replace(")", r"\)")):
            checks.call(bypass)

    def swallowed():
        try:
            torch.ops.aten.max_unpool2d(pooled, idx, [4, 4])
        except Exception:
            pass
        return pooled

    with pytest.raises(checks.ForbiddenCallError, match="max_unpool2d"):
        checks.call(swallowed)
    # allowed building blocks still work inside the guard, and the guard is gone afterwards
    out = checks.call(lambda a: F.conv2d(a, weight, padding=1), x)
    torch.testing.assert_close(out, F.conv2d(x, weight, padding=1))
    torch.testing.assert_close(torch.ops.aten.max_unpool2d(pooled, idx, [4, 4]), F.max_unpool2d(pooled, idx, 2, output_size=(4, 4)))


# ---------------------------------------------------------------------------------------------------
# Isolation of the host, of other students and of the hidden tests (issue 14, section 1), and scores
# that come only from whether a test cell raised (section 2 and 4).
# ---------------------------------------------------------------------------------------------------

from cvcourse.grading import course, execute  # noqa: E402


def test_copy_back_takes_only_regular_files_and_never_follows_a_link(tmp_path):
    scratch, dest, outside = tmp_path / "scratch", tmp_path / "dest", tmp_path / "outside.txt"
    scratch.mkdir()
    dest.mkdir()
    outside.write_text("host")
    (scratch / "result.txt").write_text("mine")
    (scratch / "sub").mkdir()
    (scratch / "sub" / "deep.txt").write_text("deep")
    (scratch / "link").symlink_to(outside)
    (scratch / "dirlink").symlink_to(tmp_path)
    (scratch / "a").write_text("x")
    os.link(scratch / "a", scratch / "b")
    os.mkfifo(scratch / "pipe")
    (scratch / "forged.ipynb").write_text("{}")
    (dest / "planted").symlink_to(outside)  # a link already in the destination is never written through
    (scratch / "planted").write_text("overwrite?")
    refused = execute.copy_back(scratch, dest)
    assert (dest / "result.txt").read_text() == "mine" and (dest / "sub" / "deep.txt").read_text() == "deep"
    assert outside.read_text() == "host"
    for name in ("link", "dirlink", "a", "b", "pipe", "forged.ipynb"):
        assert not os.path.lexists(dest / name), name
    text = "\n".join(refused)
    for what in ("link: a symbolic link", "dirlink: a symbolic link", "a: a hard link", "b: a hard link",
                 "pipe: a fifo", "forged.ipynb: a notebook", "planted: the submission folder has a non-file"):
        assert what in text, (what, refused)


def test_scratch_copy_has_no_notebook_and_no_links(tmp_path):
    folder = tmp_path / "autograded" / "alice" / "a"
    folder.mkdir(parents=True)
    (folder / "a.ipynb").write_text("### BEGIN HIDDEN TESTS")
    (folder / "data.csv").write_text("1,2")
    (folder / "link").symlink_to("/etc/passwd")
    scratch = execute.make_scratch(folder)
    try:
        assert sorted(os.listdir(scratch)) == ["data.csv"]
    finally:
        import shutil

        shutil.rmtree(scratch)


def _hidden_nb():
    test = nbformat.v4.new_code_cell("assert f(1) == 1\n### BEGIN HIDDEN TESTS\nassert f(12345) == 'secret-answer'\n"
                                     "### END HIDDEN TESTS")
    test.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": 1, "locked": True}
    answer = nbformat.v4.new_code_cell("def f(x):\n    return x")
    answer.metadata["nbgrader"] = {"solution": True, "grade_id": "f"}
    return nbformat.v4.new_notebook(cells=[answer, test])


def test_outputs_quoting_hidden_tests_are_redacted_wherever_they_are():
    nb = _hidden_nb()
    secrets = execute.hidden_test_lines(nb)
    assert secrets == {"assertf(12345)==secret-answer"}  # the visible line is no secret
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="ok\n"),
                           nbformat.v4.new_output("display_data", data={"text/plain": repr(nb.cells[1].source)})]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=json.dumps(nb.cells[1].source)),
                           nbformat.v4.new_output("error", ename="AssertionError", evalue="",
                                                  traceback=["----> 3 assert f(12345) == 'secret-answer'"])]
    messages = execute.redact_outputs(nb, secrets)
    assert nb.cells[0].outputs[0].text == "ok\n"
    assert execute.REDACTED in nb.cells[0].outputs[1].text
    assert execute.REDACTED in nb.cells[1].outputs[0].text
    assert nb.cells[1].outputs[1].traceback == ["AssertionError: "]  # its own traceback: cut, not flagged
    assert nb.cells[1].outputs[1].output_type == "error"
    assert [m.split(":")[0] for m in messages] == ["f", "t"]


def test_sandbox_maps_the_kernel_to_an_unprivileged_uid(tmp_path):
    cmd = sandbox.bwrap_command(str(_conn(tmp_path)), cwd=str(tmp_path), env={"PATH": "/usr/bin"})
    if os.geteuid() == 0:  # root drops to 65534 for real inside; a user namespace would keep root's files root's
        drop = cmd[cmd.index("-c") + 1]
        assert "setresuid(65534, 65534, 65534)" in drop and "setgroups([])" in drop
        assert cmd[cmd.index("--cap-drop") + 1:cmd.index("--cap-drop") + 5] == [
            "ALL", "--cap-add", "CAP_SETUID", "--cap-add"]
    else:
        pairs = list(zip(cmd, cmd[1:]))
        assert "--unshare-user" in cmd and ("--uid", "65534") in pairs and ("--gid", "65534") in pairs


def test_sandbox_refuses_a_connection_folder_that_is_not_fresh(tmp_path):
    conn = _conn(tmp_path)
    (conn.parent / "planted").mkdir()
    with pytest.raises(sandbox.SandboxError, match="not fresh"):
        sandbox.bwrap_command(str(conn), cwd=str(tmp_path))


def test_repo_root_needs_no_editable_install(tmp_path, monkeypatch):
    checkout = tmp_path / "course"
    (checkout / "assignments").mkdir(parents=True)
    (checkout / "assignments" / "nbgrader_config.py").write_text("")
    monkeypatch.delenv(course.ROOT_ENV, raising=False)
    assert course.repo_root(checkout) == checkout.resolve()
    assert course.repo_root(checkout / "assignments") == checkout.resolve()
    monkeypatch.setenv(course.ROOT_ENV, str(checkout))
    assert course.repo_root() == checkout.resolve()
    monkeypatch.delenv(course.ROOT_ENV)
    monkeypatch.chdir(checkout / "assignments")
    assert course.repo_root() == checkout.resolve()
    # an installed package (no checkout around it) outside any checkout: a clear error
    monkeypatch.setattr(course, "__file__", str(tmp_path / "site-packages" / "cvcourse" / "grading" / "course.py"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(course.CourseNotFoundError, match="--course"):
        course.repo_root()
    with pytest.raises(course.CourseNotFoundError, match="holds no assignments"):
        course.repo_root(tmp_path)


def test_command_line_reports_a_missing_course(tmp_path, capsys, monkeypatch):
    from cvcourse.grading.__main__ import main

    monkeypatch.delenv(course.ROOT_ENV, raising=False)
    assert main(["generate", "--course", str(tmp_path)]) == 2
    assert "holds no assignments/nbgrader_config.py" in capsys.readouterr().err


# --- The same, end to end: the attack samples graded with the real `nbgrader autograde` in the sandbox ---

ATTACKS = ["attack_hidden_leak", "attack_links", "attack_runtime", "forge_execute_result", "correct_stderr"]
VICTIMS = ["bug_nms_ge", "correct_vectorised"]  # graded after the attacks, in the same worker
HOST_FILE = Path("/tmp/cvcourse-attack-host-file")  # attack_links links to it


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """One worker (so every attack runs before the victims, in the same grading process) with and
    without the attack samples."""
    import sys as _sys

    _sys.path.insert(0, str(ROOT / "tests"))
    from grading_harness import autograde, submission_files

    HOST_FILE.write_text("host secret")
    HOST_FILE.chmod(0o600)
    keep = tmp_path_factory.mktemp("attacked")
    with_attacks = autograde("iou_nms", submission_files("iou_nms", ATTACKS + VICTIMS), jobs=1, timeout=40, keep=keep)
    host_after = (HOST_FILE.read_text(), HOST_FILE.stat().st_mode & 0o777)
    without = autograde("iou_nms", submission_files("iou_nms", VICTIMS), jobs=1, timeout=40)
    return with_attacks, without, keep, host_after  # keep: one course folder, one gradebook


@pytest.mark.slow
def test_a_batch_with_attacks_grades_everyone_else_as_without_them(attacked):
    with_attacks, without, _, _ = attacked
    for name in VICTIMS:
        a, b = with_attacks[name], without[name]
        assert (a.scores, a.errors, a.flags) == (b.scores, b.errors, b.flags), name
    assert with_attacks["correct_vectorised"].total == 18 and with_attacks["bug_nms_ge"].total < 18
    # the runtime attack itself is graded (its code is right) and stopped no later kernel
    assert with_attacks["attack_runtime"].total == with_attacks["attack_runtime"].max_total


@pytest.mark.slow
def test_links_out_of_the_submission_folder_reach_nothing(attacked):
    with_attacks, _, worker, host_after = attacked
    assert host_after == ("host secret", 0o600)  # not written, not chmod-ed through host_link
    victim = (worker / "submitted" / "correct_vectorised" / "iou_nms" / "iou_nms.ipynb").read_text()
    assert "_victim" not in victim  # not overwritten by the attacker's graded notebook
    graded = worker / "autograded" / "attack_links" / "iou_nms"
    for folder, dirs, files in os.walk(graded):
        for name in dirs + files:
            st = os.lstat(os.path.join(folder, name))
            assert stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_nlink == 1), name
    assert (graded / "notes.txt").read_text() == "an ordinary file the student wrote"  # regular files come back
    flags = "\n".join(with_attacks["attack_links"].flags)
    for what in ("iou_nms.ipynb: a symbolic link", "host_link: a symbolic link", "etc_link: a symbolic link",
                 "hard_a: a hard link", "pipe: a fifo"):
        assert what in flags, flags
    assert with_attacks["attack_links"].total == 18


@pytest.mark.slow
def test_hidden_tests_never_reach_the_feedback(attacked):
    from cvcourse.grading.course import nbgrader_cmd, nbgrader_env
    import html as html_lib
    import re

    with_attacks, _, worker, _ = attacked
    res = with_attacks["attack_hidden_leak"]
    assert res.total == res.max_total, res.errors  # correct code: redaction never costs points
    assert any("quoted hidden-test code" in f for f in res.flags), res.flags
    proc = subprocess.run(nbgrader_cmd() + ["generate_feedback", "iou_nms", "--student=attack_hidden_leak", "--force"],
                          cwd=worker, capture_output=True, text=True, env=nbgrader_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (worker / "feedback" / "attack_hidden_leak" / "iou_nms" / "iou_nms.html").read_text()
    text = execute._squash(re.sub(r"<[^>]*>", "", html_lib.unescape(page)))
    secrets = execute.hidden_test_lines(nbformat.read(ROOT / "assignments" / "source" / "iou_nms" / "iou_nms.ipynb",
                                                      as_version=4))
    assert len(secrets) > 50
    leaked = [s for s in secrets if "<" not in s and ">" not in s and s in text]
    assert not leaked, leaked[:5]
    assert execute.REDACTED in page


@pytest.mark.slow
def test_scores_come_only_from_whether_the_test_raised(attacked):
    with_attacks, _, _, _ = attacked
    forged = with_attacks["forge_execute_result"]
    assert forged.scores["test_box_area"][0] == 0, forged.scores  # its execute_result of 100 does not count
    assert all(score == top for gid, (score, top) in forged.scores.items() if gid != "test_box_area"), forged.scores
    chatty = with_attacks["correct_stderr"]
    assert chatty.total == chatty.max_total and not chatty.flags, (chatty.errors, chatty.flags)
