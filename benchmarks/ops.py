"""Time cvcourse.ops against torchvision.ops / torch.nn.functional in the same run, write RESULTS.md.

    python benchmarks/ops.py                 # full: 7 timed repetitions per case
    python benchmarks/ops.py --quick         # 3 repetitions, for a loaded or slow machine
    python benchmarks/ops.py --threads 1     # pin torch's CPU threads (both sides get the same)

Each case: one warm-up call, then the median of the timed repetitions (``torch.cuda.synchronize`` around
each on CUDA). Ratio = ours / reference, so below 1 means ours is faster. Targets from the ops spec:
on CUDA every op within 1.5x of torchvision and box_iou / batched_nms no slower (1.0x); on CPU every op
within 2x. Data are realistic: boxes jittered around ~100 objects with random scores, RoIs of 32-490
pixels on a stride-16 map of an 800 x 1088 image.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
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


def timeit(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    """Median milliseconds of ``reps`` calls after one warm-up call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


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
    parser.add_argument("--quick", action="store_true", help="3 timed repetitions instead of 7")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the CPU runs")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--note", default="", help="a line added to the report (e.g. about machine load)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 3 if args.quick else 7
    load_before = os.getloadavg()
    rows = []
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        for op, size, mode, ours, ref, target in cases(device):
            t_ours = timeit(ours, device, reps)
            t_ref = timeit(ref, device, reps)
            ratio = t_ours / t_ref
            rows.append((op, size, device.type.upper(), mode, t_ours, t_ref, ratio, target))
            print(f"{op:36s} {size:32s} {device.type:4s} {mode:8s} ours {t_ours:9.2f} ms  ref {t_ref:9.2f} ms  {ratio:5.2f}x", flush=True)
    load_after = os.getloadavg()

    command = "python benchmarks/ops.py" + (" --quick" if args.quick else "") + (f" --threads {args.threads}" if args.threads else "")
    lines = [
        "# cvcourse.ops benchmark",
        "",
        f"Written by `benchmarks/ops.py` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"Command: `{command}` ({reps} timed repetitions per case after one warm-up; median reported).",
        "",
        *machine_info(torch.get_num_threads()),
        f"- Load average (1, 5, 15 min) before: {load_before[0]:.1f}, {load_before[1]:.1f}, {load_before[2]:.1f}; "
        f"after: {load_after[0]:.1f}, {load_after[1]:.1f}, {load_after[2]:.1f}",
        "",
    ]
    if args.note:
        lines += [args.note, ""]
    if not torch.cuda.is_available():
        lines += ["**CUDA was not measured**: no GPU on this machine. Run the same command on a GPU machine to fill in the CUDA rows.", ""]
    lines += [
        "Reference: torchvision.ops for boxes, NMS and RoI ops; torch.nn.functional for upsampling. "
        "Ratio = ours / reference (below 1: ours is faster). Target: the ratio to stay at or below.",
        "",
        "| op | size | device | mode | ours ms | reference ms | ratio | target | met? |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for op, size, dev, mode, t_ours, t_ref, ratio, target in rows:
        met = "yes" if ratio <= target else "**no**"
        lines.append(f"| {op} | {size} | {dev} | {mode} | {t_ours:.2f} | {t_ref:.2f} | {ratio:.2f} | {target:.1f}x | {met} |")
    if not torch.cuda.is_available():
        lines.append("| all ops | as above | CUDA | fwd, fwd+bwd | not measured | not measured | - | 1.5x (box_iou, batched_nms: 1.0x) | not measured |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
