"""``make lab``: start JupyterLab on the course, printing its address and the fast/full mode it runs in.

``python -m cvcourse.lab [FOLDER]`` picks a free port on 127.0.0.1 and a random token, prints the URL and
:func:`cvcourse.config.describe_mode` (the kernels this server starts inherit the same environment, so they make
the same choice), then replaces itself with ``jupyter lab``. As root (containers, CI) it passes ``--allow-root``,
without which Jupyter refuses to start. The browser test (``tests/test_browser.py``) starts its server with
:func:`lab_command` too.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def lab_command(root: str | os.PathLike, port: int, token: str, *, browser: bool = True) -> list[str]:
    """The ``jupyter lab`` command line serving ``root`` on ``127.0.0.1:port`` with ``token``."""
    if not token:
        raise ValueError("token must be a non-empty string: a token-less server accepts anyone on this machine")
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(root).resolve()}",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}"]
    if not browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # Jupyter refuses root otherwise; containers and CI run as root
    return cmd


def main(argv: list[str] | None = None) -> int:
    """Print the URL and the mode, then exec JupyterLab on ``argv[0]`` (default: the current folder)."""
    from cvcourse.config import describe_mode  # noqa: PLC0415  (imports torch: only when launching)

    args = sys.argv[1:] if argv is None else argv
    root = args[0] if args else "."
    port, token = free_port(), secrets.token_urlsafe(24)
    print(f"cvcourse: notebooks run in {describe_mode()}; set CVCOURSE_FAST=0 or 1 to choose.", flush=True)
    print(f"cvcourse: open http://127.0.0.1:{port}/lab?token={token}", flush=True)
    cmd = lab_command(root, port, token)
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
