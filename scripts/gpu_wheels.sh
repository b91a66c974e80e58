#!/usr/bin/env bash
# Download, on a machine that reaches PyPI, the wheels that scripts/gpu_check.sh installs on the GPU machine
# (Python 3.12, x86-64): the packages of our .venv that its image lacks, pinned in scripts/gpu_wheels.txt, less
# the Jupyter front ends (jupyterlab, notebook, jupyter-server, ...), which nothing there runs: about 52 MB, so
# that wheels and checkout stay within the 64 MiB a device call carries.
#   scripts/gpu_wheels.sh [DIR]      # -> DIR, default .whl/ in the repository root; keep it out of git first:
#                                    #    echo /.whl/ >> .git/info/exclude
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.whl}
mkdir -p "$dest"
py=${PYTHON:-.venv/bin/python}
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
    -d "$dest" -r scripts/gpu_wheels.txt
du -sh "$dest"
