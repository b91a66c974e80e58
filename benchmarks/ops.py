"""Time cvcourse.ops against torchvision.ops / torch.nn.functional in the same run, write RESULTS.md.

    OMP_NUM_THREADS=1 python benchmarks/ops.py --threads 1   # CPU (and CUDA when present), 7 pairs per case
    python benchmarks/ops.py --quick                         # 3 pairs per case, for a loaded or slow machine
    python benchmarks/ops.py --device cuda --out X.md        # one device only
    python benchmarks/ops.py --only 'nms|roi' --reps 15      # a subset of the cases, more pairs

Each case: one warm-up call of each side, then ``reps`` *pairs* of calls, ours and the reference in turn
(the order alternates from pair to pair), so that both sides see the same machine load. On the CPU each
call is timed in CPU seconds of this process (``time.process_time``): on a shared machine the wall clock
also counts the time other processes held the core. With one torch thread that is the work done. On CUDA
each call is timed on the wall clock with ``torch.cuda.synchronize`` around it. Reported: the median time
of each side and the median of the per-pair ratios (ours / reference, so below 1 means ours is faster),
with the spread of those ratios (min-max). Targets from the ops spec: on CUDA every op within 1.5x of
torchvision and box_iou / batched_nms no slower (1.0x); on CPU every op within 2x. Data are realistic:
boxes jittered around ~100 objects with random scores, RoIs of 32-490 pixels on a stride-16 map of an
800 x 1088 image.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision
import torchvision.ops as tvo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cvcourse.ops as ops  # noqa: E402

HERE = Path(__file__).resolve().parent


def clustered_boxes(n: int, device: torch.device, objects: int = 100, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(Tensor[n, 4], Tensor[n]): detector-like boxes jittered around ``objects`` objects, random scores."""
    g = torch.Generator().manual_seed(seed + n)
    centres = torch.rand(objects, 2, generator=g) * torch.tensor([1088.0, 800.0])
    sizes = 20 + torch.rand(objects, 2, generator=g) * 200
    k = torch.randint(0, objects, (n,), generator=g)
    ctr = centres[k] + torch.randn(n, 2, generator=g) * sizes[k] * 0.15
    wh = sizes[k] * (1 + 0.15 * torch.randn(n, 2, generator=g)).clamp(min=0.3)
    boxes = torch.cat([ctr - wh / 2, ctr + wh / 2], dim=1)
    return boxes.to(device), torch.rand(n, generator=g).to(device)


def detection_rois(k: int, device: torch.device) -> torch.Tensor:
    """Tensor[k, 5]: RoIs (batch 0) of 32-490 px on an 800 x 1088 image."""
    g = torch.Generator().manual_seed(1)
    ctr = torch.rand(k, 2, generator=g) * torch.tensor([1088.0, 800.0])
    wh = torch.exp(3.4 + torch.rand(k, 2, generator=g) * 2.8)
    b = torch.cat([ctr - wh / 2, ctr + wh / 2], dim=1)
    b = torch.minimum(b.clamp(min=0), torch.tensor([1088.0, 800.0, 1088.0, 800.0]))
    return torch.cat([torch.zeros(k, 1), b], dim=1).to(device)


def time_pair(ours: Callable[[], object], ref: Callable[[], object], device: torch.device, reps: int) -> tuple[float, float, list[float]]:
    """Median ms of each side and the per-pair ratios, over ``reps`` interleaved pairs after one warm-up each."""
    cuda = device.type == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def once(fn: Callable[[], object]) -> float:
        sync()
        t0 = clock()
        fn()
        sync()
        return clock() - t0

    once(ours)
    once(ref)
    t_ours, t_ref = [], []
    for r in range(reps):
        if r % 2 == 0:
            t_ours.append(once(ours))
            t_ref.append(once(ref))
        else:
            t_ref.append(once(ref))
            t_ours.append(once(ours))
    ratios = [a / b if b > 0 else float("inf") for a, b in zip(t_ours, t_ref)]
    return statistics.median(t_ours) * 1e3, statistics.median(t_ref) * 1e3, ratios


def backward_of(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], None]:
    """A closure running forward + backward of ``f`` at a fresh leaf copy of ``x``."""
    leaf = x.detach().clone().requires_grad_(True)

    def run() -> None:
        leaf.grad = None
        f(leaf).sum().backward()

    return run


def cases(device: torch.device):
    """Yield (op, size, mode, ours, reference, target) for one device."""
    cuda = device.type == "cuda"
    for n in (1000, 5000):
        a, _ = clustered_boxes(n, device, seed=1)
        b, _ = clustered_boxes(n, device, seed=2)
        yield "box_iou", f"{n}x{n}", "fwd", lambda a=a, b=b: ops.box_iou(a, b), lambda a=a, b=b: tvo.box_iou(a, b), 1.0 if cuda else 2.0
    a, _ = clustered_boxes(1000, device, seed=1)
    b, _ = clustered_boxes(1000, device, seed=2)
    yield "generalized_box_iou", "1000x1000", "fwd", lambda: ops.generalized_box_iou(a, b), lambda: tvo.generalized_box_iou(a, b), 1.5 if cuda else 2.0
    for n in (1000, 5000, 20000):
        boxes, scores = clustered_boxes(n, device)
        yield "nms", f"{n} boxes", "fwd", lambda b=boxes, s=scores: ops.nms(b, s, 0.5), lambda b=boxes, s=scores: tvo.nms(b, s, 0.5), 1.5 if cuda else 2.0
    for n in (1000, 5000, 20000):
        boxes, scores = clustered_boxes(n, device)
        idxs = torch.randint(0, 80, (n,), generator=torch.Generator().manual_seed(3)).to(device)
        yield (
            "batched_nms", f"{n} boxes, 80 classes", "fwd",
            lambda b=boxes, s=scores, i=idxs: ops.batched_nms(b, s, i, 0.5),
            lambda b=boxes, s=scores, i=idxs: tvo.batched_nms(b, s, i, 0.5),
            1.0 if cuda else 2.0,
        )
    feat = torch.randn(1, 256, 50, 68, generator=torch.Generator().manual_seed(4)).to(device)
    rois = detection_rois(1000, device)
    size = "1000 RoIs, 1x256x50x68 -> 7x7"
    for name, ours, ref in (
        ("roi_align (sr=2, aligned)", lambda x: ops.roi_align(x, rois, 7, 1 / 16, 2, True), lambda x: tvo.roi_align(x, rois, 7, 1 / 16, 2, True)),
        ("roi_align (sr=-1)", lambda x: ops.roi_align(x, rois, 7, 1 / 16, -1, False), lambda x: tvo.roi_align(x, rois, 7, 1 / 16, -1, False)),
        ("roi_pool", lambda x: ops.roi_pool(x, rois, 7, 1 / 16), lambda x: tvo.roi_pool(x, rois, 7, 1 / 16)),
    ):
        yield name, size, "fwd", lambda o=ours: o(feat), lambda r=ref: r(feat), 1.5 if cuda else 2.0
        yield name, size, "fwd+bwd", backward_of(ours, feat), backward_of(ref, feat), 1.5 if cuda else 2.0
    x = torch.randn(8, 64, 64, 64, generator=torch.Generator().manual_seed(5)).to(device)
    up = "8x64x64x64, x2"
    nearest = (lambda t: ops.nearest_unpool2d(t, 2), lambda t: F.interpolate(t, scale_factor=2, mode="nearest"))
    pooled, idx = F.max_pool2d(torch.randn(8, 64, 128, 128, generator=torch.Generator().manual_seed(6)).to(device), 2, return_indices=True)
    unpool = (lambda t: ops.max_unpool2d(t, idx, (128, 128)), lambda t: F.max_unpool2d(t, idx, 2, output_size=(128, 128)))
    w = torch.randn(64, 32, 4, 4, generator=torch.Generator().manual_seed(7)).to(device)
    convt = (lambda t: ops.conv_transpose2d(t, w, stride=2, padding=1), lambda t: F.conv_transpose2d(t, w, stride=2, padding=1))
    for name, inp, (ours, ref), size in (
        ("nearest_unpool2d vs F.interpolate", x, nearest, up),
        ("max_unpool2d vs F.max_unpool2d", pooled, unpool, up),
        ("conv_transpose2d", x, convt, "8x64x64x64 -> 32 ch, k4 s2 p1"),
    ):
        yield name, size, "fwd", lambda o=ours, i=inp: o(i), lambda r=ref, i=inp: r(i), 1.5 if cuda else 2.0
        yield name, size, "fwd+bwd", backward_of(ours, inp), backward_of(ref, inp), 1.5 if cuda else 2.0


def machine_info(threads: int) -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; torch CPU threads used: {threads}",
        f"- GPU: {gpu}",
        f"- Python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, {platform.system()} {platform.release()}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 timed pairs instead of 7")
    parser.add_argument("--reps", type=int, default=None, help="timed pairs per case (overrides --quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the CPU runs")
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all", help="which devices to time")
    parser.add_argument("--only", default=None, help="regular expression: time only the ops whose name matches")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--note", default="", help="a line added to the report (e.g. about machine load)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = args.reps or (3 if args.quick else 7)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    load_before = os.getloadavg()
    rows = []
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if args.device != "all":
        devices = [torch.device(args.device)]
    for device in devices:
        for op, size, mode, ours, ref, target in cases(device):
            if args.only and not re.search(args.only, op):
                continue
            t_ours, t_ref, ratios = time_pair(ours, ref, device, reps)
            ratio = statistics.median(ratios)
            rows.append((op, size, device.type.upper(), mode, t_ours, t_ref, ratio, min(ratios), max(ratios), target))
            print(f"{op:36s} {size:32s} {device.type:4s} {mode:8s} ours {t_ours:9.2f} ms  ref {t_ref:9.2f} ms  "
                  f"{ratio:5.2f}x ({min(ratios):.2f}-{max(ratios):.2f})", flush=True)
    load_after = os.getloadavg()

    command = ("python benchmarks/ops.py" + (f" --reps {args.reps}" if args.reps else " --quick" if args.quick else "")
               + (f" --threads {args.threads}" if args.threads else "") + (f" --device {args.device}" if args.device != "all" else "")
               + (f" --only '{args.only}'" if args.only else ""))
    clock = "CPU time of this process (time.process_time)" if any(d.type == "cpu" for d in devices) else ""
    if any(d.type == "cuda" for d in devices):
        clock = (clock + "; " if clock else "") + "wall clock with torch.cuda.synchronize on CUDA"
    lines = [
        "# cvcourse.ops benchmark",
        "",
        f"Written by `benchmarks/ops.py` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"Command: `{command}` (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; {reps} timed pairs per case, "
        f"ours and reference interleaved, after one warm-up each; clock: {clock}; median reported).",
        "",
        *machine_info(torch.get_num_threads()),
        f"- Load average (1, 5, 15 min) before: {load_before[0]:.1f}, {load_before[1]:.1f}, {load_before[2]:.1f}; "
        f"after: {load_after[0]:.1f}, {load_after[1]:.1f}, {load_after[2]:.1f}",
        "",
    ]
    if args.note:
        lines += [args.note, ""]
    cuda_timed = any(d.type == "cuda" for d in devices)
    if not cuda_timed:
        lines += ["**CUDA was not measured** in this run. Run `benchmarks/ops.py --device cuda` on a GPU machine to fill in the CUDA rows.", ""]
    lines += [
        "Reference: torchvision.ops for boxes, NMS and RoI ops; torch.nn.functional for upsampling. "
        "Ratio = median over the pairs of ours / reference (below 1: ours is faster); spread = min-max of the "
        "per-pair ratios. Target: the ratio to stay at or below.",
        "",
        "| op | size | device | mode | ours ms | reference ms | ratio | spread | target | met? |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for op, size, dev, mode, t_ours, t_ref, ratio, lo, hi, target in rows:
        met = "yes" if ratio <= target else "**no**"
        lines.append(f"| {op} | {size} | {dev} | {mode} | {t_ours:.2f} | {t_ref:.2f} | {ratio:.2f} | {lo:.2f}-{hi:.2f} | {target:.1f}x | {met} |")
    if not cuda_timed:
        lines.append("| all ops | as above | CUDA | fwd, fwd+bwd | not measured | not measured | - | - | 1.5x (box_iou, batched_nms: 1.0x) | not measured |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
