"""The grading sandbox: a Jupyter kernel that runs student code inside bubblewrap.

``nbgrader autograde`` runs every submitted notebook in a kernel. Out of the box that kernel is an
ordinary Python process of the grader's user: it can read ``source/`` (hidden tests, solutions),
write ``gradebook.db`` and see the grader's processes. The kernelspec installed here
(:data:`KERNEL_NAME`, ``cvcourse-sandbox``) starts the kernel through :func:`main`, which ``exec``s
``bwrap`` (Debian package ``bubblewrap``) with:

* a read-only view of ``/`` and a fresh ``/tmp``, ``/dev`` and ``/proc``;
* ``/root``, ``/home``, ``/work``, ``/mnt``, ``/srv``, ``/media``, ``$HOME``, the nbgrader course
  folder, the source checkout that holds it or an editable ``cvcourse`` (found by its ``.git`` or
  ``pyproject.toml``, wherever it lies on disk) and every path in ``CVCOURSE_SANDBOX_HIDE`` (``os.pathsep``-separated) covered by empty
  tmpfs mounts; then read-only bind mounts bring back only what the kernel needs: the Python
  environment (``sys.prefix``, ``sys.base_prefix``) and the ``cvcourse`` package;
* read-write: only the folder the kernel starts in (:class:`cvcourse.grading.execute.GradingExecute`
  starts it in a scratch copy of the submission's folder, without any notebook) and the kernel's own
  connection folder, a fresh one per kernel start (:class:`SandboxKernelManager`), so nothing one
  kernel leaves there reaches another;
* an unprivileged identity: bubblewrap's user namespace maps the kernel to uid/gid
  :data:`SANDBOX_UID` (65534, ``nobody``); when the grader is root, the kernel also *is* that uid on
  the host (a user namespace alone would keep root's ownership of root's files, ``/etc/shadow``
  included), so it reads only what any user may read and writes only the folders handed to it;
* new network, PID, IPC and UTS namespaces (no network, the grader's processes out of sight), a new
  session, all capabilities dropped, and an environment reduced to a short allow-list
  (``JPY_PARENT_PID`` is not passed, so ipykernel does not watch a parent it cannot see).

Because the network namespace is private, the kernel must talk to nbgrader over Jupyter's ``ipc``
transport (Unix sockets next to the connection file); :func:`configure` (called by the course's
``nbgrader_config.py``) sets ``KernelManager.transport = "ipc"`` and the kernel manager. The launcher
refuses to start (the kernel fails to start, nbgrader reports it) when ``bwrap`` is missing, the
transport is ``tcp`` or the connection folder is not a fresh private one: it never falls back to
running unsandboxed.

Not covered: CPU-time and memory limits (use the per-cell timeout of ``nbgrader_config.py`` and the
machine's own limits), and code that subverts the kernel itself from inside the sandbox (see
``cvcourse.grading.checks`` for what hidden tests detect).

Install once per environment (idempotent)::

    python -m cvcourse.grading install-kernel --sys-prefix
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

#: Name of the sandboxed kernelspec that the course's nbgrader_config.py makes autograde use.
KERNEL_NAME = "cvcourse-sandbox"

#: Folders hidden from student code (each replaced by an empty tmpfs when it exists).
HIDDEN_ROOTS = ("/root", "/home", "/work", "/mnt", "/srv", "/media", "/var/tmp")

#: uid and gid of student code (``nobody``): inside the sandbox always; on the host when the grader is root.
SANDBOX_UID = SANDBOX_GID = 65534

#: Environment variables passed into the sandbox (everything else is dropped).
ENV_ALLOW = (
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ",
    "CVCOURSE_FAST", "NBGRADER_EXECUTION", "MPLBACKEND",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED", "PYTHONWARNINGS",
    "CUDA_VISIBLE_DEVICES",
)


class SandboxError(RuntimeError):
    """The sandbox cannot start; grading must not go on without it."""


def kernel_spec() -> dict:
    """The kernel.json contents of the sandboxed kernel for the running interpreter."""
    return {
        "argv": [sys.executable, "-m", "cvcourse.grading.sandbox", "-f", "{connection_file}"],
        "display_name": "Python 3 (cvcourse grading sandbox)",
        "language": "python",
        "interrupt_mode": "message",  # SIGINT would stop at bwrap; ipykernel interrupts itself on request
        "metadata": {"cvcourse": {"sandbox": "bubblewrap"}},
    }


def kernel_dir(prefix: str | os.PathLike | None = None) -> Path:
    """Folder of the kernelspec under ``prefix`` (default ``sys.prefix``).

    A private folder (``share/cvcourse/kernels``), not Jupyter's ``share/jupyter/kernels``: students' JupyterLab
    never lists the grading kernel; :func:`configure` points nbgrader's kernel lookup at it.
    """
    return Path(prefix or sys.prefix) / "share" / "cvcourse" / "kernels" / KERNEL_NAME


def install_kernel(prefix: str | os.PathLike | None = None) -> Path:
    """Write the sandboxed kernelspec under ``prefix`` (default ``sys.prefix``); idempotent.

    Returns:
        The kernelspec folder.
    """
    folder = kernel_dir(prefix)
    spec = json.dumps(kernel_spec(), indent=1) + "\n"
    path = folder / "kernel.json"
    if not path.exists() or path.read_text() != spec:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".kernel.json.{os.getpid()}"
        tmp.write_text(spec)
        os.replace(tmp, path)  # atomic: parallel graders never read half a file
    return folder


def ensure_kernel() -> Path:
    """Install the kernelspec into ``sys.prefix`` if missing or stale (called by nbgrader_config.py)."""
    return install_kernel(sys.prefix)


def private_runtime_dir() -> str:
    """Create a fresh private folder (mode 0700) under which each kernel gets its own connection folder."""
    return tempfile.mkdtemp(prefix="cvcourse-grading-runtime-")


def hand_to_sandbox(path: str | os.PathLike) -> None:
    """Make ``path`` (a folder the grader just created, and what is in it) writable by the kernel.

    When the grader is root the kernel runs as :data:`SANDBOX_UID` on the host, so its folders are
    given to that uid; otherwise the kernel is the grader's own uid and nothing changes.
    """
    if os.geteuid() != 0:
        return
    for folder, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.chown(os.path.join(folder, name), SANDBOX_UID, SANDBOX_GID, follow_symlinks=False)
    os.chown(path, SANDBOX_UID, SANDBOX_GID, follow_symlinks=False)


class SandboxKernelManager(AsyncKernelManager):
    """Jupyter's kernel manager with a fresh connection folder for every kernel start.

    The folder (connection file and ipc sockets, nothing else) is created just before the kernel
    starts, handed to the kernel's uid, bound read-write into that kernel only, and removed when the
    kernel shuts down: what one submission leaves there never reaches a later kernel.
    """

    _own_folder: str | None = None

    async def _async_pre_start_kernel(self, **kw):
        base = os.environ.get("JUPYTER_RUNTIME_DIR") or None
        if base:
            os.makedirs(base, mode=0o700, exist_ok=True)
        self._own_folder = tempfile.mkdtemp(prefix="kernel-", dir=base)
        self.connection_file = os.path.join(self._own_folder, "kernel.json")
        self.ip = os.path.join(self._own_folder, "kernel")
        self._connection_file_written = False
        self.transport = "ipc"
        result = await super()._async_pre_start_kernel(**kw)
        hand_to_sandbox(self._own_folder)
        return result

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self._own_folder:
            shutil.rmtree(self._own_folder, ignore_errors=True)
            self._own_folder = None


def configure(c) -> None:  # noqa: ANN001  (a traitlets Config)
    """Settings for nbgrader_config.py: sandbox kernel, ipc transport, a fresh connection folder per kernel.

    ``CVCOURSE_GRADING_UNSANDBOXED=1`` keeps nbgrader's ordinary kernel (unsafe; quick local checks).
    """
    if os.environ.get("CVCOURSE_GRADING_UNSANDBOXED", "") == "1":
        return
    ensure_kernel()
    runtime = private_runtime_dir()
    import atexit  # noqa: PLC0415

    atexit.register(shutil.rmtree, runtime, True)  # the grading process's own folder, gone when it ends
    os.environ["JUPYTER_RUNTIME_DIR"] = runtime  # this grader's kernels' folders live under it
    c.Execute.kernel_name = KERNEL_NAME
    private = str(kernel_dir().parent.parent)  # <prefix>/share/cvcourse: its kernels/ holds the sandbox kernel
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (private, os.environ.get("JUPYTER_PATH")) if p)
    c.Execute.kernel_manager_class = SandboxKernelManager  # one fresh connection folder per kernel start
    c.KernelManager.transport = "ipc"  # the sandbox has no network: Unix sockets in that folder


def _course_root(cwd: Path) -> Path | None:
    """nbgrader executes in ``<course>/autograded/<student>/<assignment>``: return ``<course>``."""
    if len(cwd.parents) >= 3 and cwd.parents[1].name == "autograded":
        return cwd.parents[2]
    return None


def _project_root(path: Path) -> Path | None:
    """The nearest folder at or above ``path`` holding ``.git`` or ``pyproject.toml`` (a source checkout)."""
    for folder in (path, *path.parents):
        if folder == Path(folder.anchor):
            return None
        if (folder / ".git").exists() or (folder / "pyproject.toml").is_file():
            return folder
    return None


def bwrap_command(connection_file: str, cwd: str | None = None, env: dict | None = None) -> list[str]:
    """The full ``bwrap`` command line that starts ipykernel for ``connection_file``.

    Raises:
        SandboxError: ``bwrap`` is not installed or the connection does not use the ipc transport.
    """
    env = dict(os.environ if env is None else env)
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError(
            "bubblewrap (bwrap) is not installed, so student code cannot be sandboxed; install it with "
            "`apt-get install bubblewrap` (make setup does), or grade with the explicitly unsafe "
            "--no-sandbox option for a local check"
        )
    conn_path = Path(connection_file).resolve()
    info = json.loads(conn_path.read_text())
    if info.get("transport") != "ipc":
        raise SandboxError(
            f"the sandbox has no network, so the kernel needs the ipc transport, got {info.get('transport')!r}; "
            "set c.KernelManager.transport = 'ipc' (assignments/nbgrader_config.py does)"
        )
    ip = str(info.get("ip", ""))
    if not os.path.isabs(ip):
        raise SandboxError(
            f"the ipc socket path {ip!r} is relative, so the kernel and nbgrader would look in different "
            "folders; set c.KernelManager.ip to an absolute path in a private folder (nbgrader_config.py does)"
        )
    shared = {str(conn_path.parent), str(Path(ip).resolve().parent)}
    for folder in shared:
        if folder in ("/", "/tmp", "/var/tmp") or folder in HIDDEN_ROOTS:
            raise SandboxError(f"the kernel connection folder {folder} must be a private folder, not a shared one")
    if len(shared) != 1:
        raise SandboxError(f"the connection file and the ipc sockets must share one folder, got {sorted(shared)}")
    leftovers = sorted(set(os.listdir(conn_path.parent)) - {conn_path.name})
    if leftovers:
        raise SandboxError(
            f"the kernel connection folder {conn_path.parent} is not fresh (it holds {leftovers[:5]}); each kernel "
            "needs its own new folder (c.Execute.kernel_manager_class = SandboxKernelManager, configure() sets it)")
    cwd_path = Path(cwd or os.getcwd()).resolve()

    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp"]
    hide = [p for p in HIDDEN_ROOTS if os.path.isdir(p)]
    home = env.get("HOME")
    if home and os.path.isdir(home):
        hide.append(home)
    import cvcourse  # noqa: PLC0415  (the package the hidden tests import)

    package_dir = Path(cvcourse.__file__).resolve().parent
    course = _course_root(cwd_path)
    # The course folder, and the source checkout around it or around an editable cvcourse (where
    # source/ and solutions/ live), wherever they are on disk, not only under the usual roots.
    for root in (course, course and _project_root(course), _project_root(package_dir)):
        if root is not None:
            hide.append(str(root))
    hide += [p for p in env.get("CVCOURSE_SANDBOX_HIDE", "").split(os.pathsep) if p and os.path.isdir(p)]
    tmpfs = sorted({str(Path(p).resolve()) for p in hide}, key=len)  # parents before children
    for path in tmpfs:
        args += ["--tmpfs", path]

    readonly = [sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent.parent), str(package_dir)]
    binds = [("--ro-bind", p) for p in dict.fromkeys(str(Path(p).resolve()) for p in readonly) if p != "/"]
    binds += [("--bind", p) for p in dict.fromkeys([str(cwd_path), *sorted(shared)])]
    made = set()
    for _, path in binds:  # folders bwrap must create inside a tmpfs: 0755, so the kernel's uid can pass
        for parent in reversed(Path(path).parents):
            if str(parent) not in made and any(parent.is_relative_to(t) and str(parent) != t for t in ["/tmp", *tmpfs]):
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
    for flag, path in binds:
        args += [flag, path, path]

    args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox",
             "--die-with-parent", "--new-session", "--clearenv"]
    as_root = os.geteuid() == 0
    if as_root:
        # A user namespace would map root to 65534 but keep root's ownership of root's files; instead the
        # first process drops to the unprivileged uid for real (the only capabilities it keeps for that).
        # It also changes into the folder: root without its capabilities may not enter the kernel's 0700 folders.
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--cap-drop", "ALL",
                 "--chdir", str(cwd_path)]
    for name in ENV_ALLOW:
        if name in env:
            args += ["--setenv", name, env[name]]
    args += ["--setenv", "HOME", "/tmp", "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib",
             "--setenv", "CVCOURSE_SANDBOXED", "1", "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    args += ["--"]
    if as_root:
        args += [sys.executable, "-I", "-S", "-c", _DROP_PRIVILEGES, str(cwd_path)]
    args += [sys.executable, "-m", "ipykernel_launcher", "-f", str(conn_path)]
    return args


#: Run first inside the sandbox when the grader is root: become SANDBOX_UID for real (which also
#: clears the two capabilities left), change into the folder given first, then exec the kernel command.
_DROP_PRIVILEGES = (
    "import os, sys; os.setgroups([]); "
    f"os.setresgid({SANDBOX_GID}, {SANDBOX_GID}, {SANDBOX_GID}); os.setresuid({SANDBOX_UID}, {SANDBOX_UID}, {SANDBOX_UID}); "
    "os.chdir(sys.argv[1]); os.execv(sys.argv[2], sys.argv[2:])"
)


def main(argv: list[str] | None = None) -> None:
    """Kernel launcher: ``python -m cvcourse.grading.sandbox -f CONNECTION_FILE`` (from kernel.json)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] != "-f":
        sys.exit("usage: python -m cvcourse.grading.sandbox -f CONNECTION_FILE")
    try:
        cmd = bwrap_command(argv[1])
    except SandboxError as err:
        sys.stderr.write(f"cvcourse-sandbox: refusing to start the kernel: {err}\n")
        sys.exit(3)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
