"""`make lab`'s launcher (cvcourse.lab): a free local port, a token, --allow-root as root."""

import os

import pytest

from cvcourse import lab


def test_lab_command_serves_locally_with_a_token(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    cmd = lab.lab_command(tmp_path, 8765, "secret")
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--ServerApp.port=8765" in cmd
    assert "--IdentityProvider.token=secret" in cmd and f"--ServerApp.root_dir={tmp_path.resolve()}" in cmd
    assert "--allow-root" in cmd  # Jupyter refuses to run as root without it (containers, CI)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--allow-root" not in lab.lab_command(tmp_path, 8765, "secret")
    with pytest.raises(ValueError, match="token"):
        lab.lab_command(tmp_path, 8765, "")


def test_free_port_is_bindable():
    import socket

    port = lab.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_grading_kernel_is_hidden_from_students_and_found_by_grading(tmp_path, monkeypatch):
    """The sandbox kernel lives in a private folder: JupyterLab's kernel list lacks it, nbgrader's config finds it."""
    from jupyter_client.kernelspec import KernelSpecManager
    from traitlets.config import Config

    from cvcourse.grading import sandbox

    monkeypatch.setattr(sandbox.sys, "prefix", str(tmp_path))
    monkeypatch.setenv("JUPYTER_PATH", "")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # configure() changes both: restored after
    sandbox.ensure_kernel()
    assert sandbox.KERNEL_NAME not in KernelSpecManager().find_kernel_specs()  # what the Launcher lists
    monkeypatch.delenv("CVCOURSE_GRADING_UNSANDBOXED", raising=False)
    c = Config()
    sandbox.configure(c)
    assert c.Execute.kernel_name == sandbox.KERNEL_NAME
    assert sandbox.KERNEL_NAME in KernelSpecManager().find_kernel_specs()
