#!/usr/bin/env bash
# One command for a GPU machine (issue 12): CUDA tests, CUDA benchmarks, full-mode lectures, results under $OUT.
#
#   scripts/gpu_check.sh              # on the GPU machine, from the repository root; about 10 minutes
#   scripts/gpu_check.sh --dry-run    # on any CPU machine: every step, shortened, with what needs CUDA skipped
#
# Python packages the GPU image lacks (nbval, nbclient, ipykernel, nbgrader, the Lite0 weights, ...) travel as
# wheels in .whl/ (made by scripts/gpu_wheels.sh); when .whl/ exists they are installed into /tmp/site first.
# Steps, each with its own time limit, so that one failure does not hide the others:
#   1. benchmarks/ops.py --device cuda  -> $OUT/RESULTS_cuda.md (CUDA rows of benchmarks/RESULTS.md; includes
#      the 20k-box clustered nms / batched_nms cases)
#   2. benchmarks/sift.py (CUDA, and OpenCV on the CPU, in the same run) -> $OUT/SIFT_cuda.md
#   3. at the same time (the benchmarks are done): the suite's CUDA-parametrised tests (pytest -k cuda)
#      -> $OUT/tests.log, and lectures 07 (segmentation), 08 and 09 (detection) in full mode (CVCOURSE_FAST=0)
#      -> $OUT/lecture_NN.txt with the run time and every printed line (their metrics)
# $OUT/gpu_check.log holds each step's exit status and wall time.
set -uo pipefail
cd "$(dirname "$0")/.."

dry=0
if [[ "${1:-}" == "--dry-run" ]]; then dry=1; fi
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [[ -x .venv/bin/python && $dry == 1 ]]; then PY=${PYTHON:-.venv/bin/python}; fi
log="$OUT/gpu_check.log"
: >"$log"
say() { echo "$*" | tee -a "$log"; }

if [[ -d .whl ]]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { say "wheel install failed"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    export PATH=/tmp/site/bin:$PATH
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # cvcourse from this checkout
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg

# step NAME LIMIT_S COMMAND...: run with a time limit, log exit status and wall time.
step() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    say "step $name: exit $rc, $((SECONDS - t0)) s wall (limit $limit s)"
    return 0
}

say "gpu_check $(date -u +%FT%TZ) dry_run=$dry python=$("$PY" -c 'import sys; print(sys.version.split()[0])')"
"$PY" - <<'EOF' 2>&1 | tee -a "$log"
import torch, torchvision
print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
EOF
cuda=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')
if [[ $dry == 0 && $cuda != 1 ]]; then say "no CUDA device: run with --dry-run on a CPU machine"; exit 1; fi

if [[ $dry == 1 ]]; then  # CPU: one tiny case per script, the ops tests, one fast-mode lecture, generous limits
    ops_args=(--device cpu --threads 1 --only '^box_iou$' --reps 1)
    sift_args=(--quick)
    fast=1; lecture_limit=1800; test_limit=1800; bench_limit=1800
    lectures=(07); test_paths=(tests/test_ops_boxes.py tests/test_ops_nms.py tests/test_ops_roi.py tests/test_ops_upsample.py)
else
    ops_args=(--device cuda --reps 15)
    sift_args=()
    fast=0; lecture_limit=360; test_limit=360; bench_limit=150
    lectures=(07 08 09); test_paths=(tests)
fi

# 1-2. Benchmarks first, alone on the machine.
step ops "$bench_limit" "$PY" benchmarks/ops.py "${ops_args[@]}" --out "$OUT/RESULTS_cuda.md" >>"$OUT/bench.log" 2>&1
step sift "$bench_limit" "$PY" benchmarks/sift.py "${sift_args[@]}" --out "$OUT/SIFT_cuda.md" >>"$OUT/bench.log" 2>&1

# 3. Tests and lectures side by side (16 cores, one large GPU).
run_lecture() {  # NN: execute lectures/NN_*.ipynb, write the run time and its printed text to $OUT/lecture_NN.txt
    local nb
    nb=$(ls lectures/"$1"_*.ipynb)
    CVCOURSE_FAST=$fast step "lecture_$1" "$lecture_limit" "$PY" - "$nb" "$OUT/lecture_$1.txt" <<'EOF'
import sys, time

import nbformat
from nbclient import NotebookClient

path, out = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
t0 = time.perf_counter()
error = None
try:
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": "lectures"}}).execute()
except Exception as e:  # report and keep what ran
    error = f"{type(e).__name__}: {str(e)[-2000:]}"
wall = time.perf_counter() - t0
with open(out, "w") as f:
    f.write(f"{path}: {wall:.1f} s wall, {'ERROR ' + error if error else 'all cells ran'}\n")
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            text = o.get("text") or o.get("data", {}).get("text/plain", "")
            if o.get("output_type") == "error":
                text = f"{o.get('ename')}: {o.get('evalue')}"
            if text and not text.startswith("<Figure"):
                f.write(f"[cell {i}] {text.rstrip()[:1500]}\n")
print(open(out).readline().rstrip())
sys.exit(1 if error else 0)
EOF
}
step tests "$test_limit" "$PY" -m pytest "${test_paths[@]}" -k cuda -q -n 4 -p no:cacheprovider -o addopts= --continue-on-collection-errors >"$OUT/tests.log" 2>&1 &
for nn in "${lectures[@]}"; do
    run_lecture "$nn" >>"$OUT/bench.log" 2>&1 &
done
wait
say "pytest summary: $(grep -E "passed|failed|no tests ran|error" "$OUT/tests.log" | grep -v "^step" | tail -n 1)"
for nn in "${lectures[@]}"; do say "$(head -n 1 "$OUT/lecture_$nn.txt" 2>/dev/null || echo "lecture $nn: no result")"; done
say "files: $(cd "$OUT" && ls | tr '\n' ' ')"
