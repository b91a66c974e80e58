"""Lecture 2's ReLU-versus-tanh experiment over more settings than the notebook can afford.

AlexNet's Figure 1: a four-layer CNN on CIFAR-10 reached 25% training error about six times sooner with ReLU
than with tanh, each with its own fastest learning rate. This script repeats that protocol on the course's
offline data: for every setting and activation it tries a grid of learning rates (SGD, momentum 0.9, batch 32,
two seeds) and counts the rounds of 128 random training images until a round's running accuracy reaches the
setting's target (75%, the paper's 25% error, or a harder one). The best learning rate per activation (fewest
rounds, averaged over the seeds; a run that never gets there counts as the budget + 1) is compared. It prints
one JSON line per setting.

The "2012" settings use the paper's set-up: weights from N(0, 0.01), biases 1 in the hidden layers
(``alexnet_init_``), no normalisation layer, and a learning-rate grid that reaches higher (small weights need
larger steps).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/relu_vs_tanh.py              # every setting
    OMP_NUM_THREADS=1 .venv/bin/python scripts/relu_vs_tanh.py --only 2012  # settings whose name contains "2012"
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from cvcourse.data import DigitsDataset, PhotoPatches
from cvcourse.models.classic import SmallAlexNet, alexnet_init_

LRS = (0.001, 0.003, 0.01, 0.03, 0.1)
LRS_2012 = (0.003, 0.01, 0.03, 0.1, 0.3)


def plain_cnn(activation: type[nn.Module], depth: int) -> nn.Module:
    """``depth`` 3x3 convolutions of 16 channels (two 2x2 max-pools), He-normal weights, for 16x16 inputs."""
    layers: list[nn.Module] = []
    channels = 3
    for i in range(depth):
        layers += [nn.Conv2d(channels, 16, 3, padding=1), activation()]
        channels = 16
        if (i + 1) % (depth // 2) == 0:
            layers.append(nn.MaxPool2d(2))
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def small_alexnet(activation: type[nn.Module], num_classes: int, weight_scale: float = 1.0,
                  paper_init: bool = False) -> nn.Module:
    net = SmallAlexNet(num_classes=num_classes, widths=(16, 32, 64), hidden=64, activation=activation, dropout=0.0)
    if paper_init:
        alexnet_init_(net)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(weight_scale)
    return net


def rounds_to(build, x, y, lr, seed, rounds, per_round=128, batch=32, threshold=0.75) -> int:
    torch.manual_seed(seed)
    model = build()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    for r in range(rounds):
        idx = torch.randint(len(x), (per_round,), generator=g)
        correct = 0
        for b in range(0, per_round, batch):
            xb, yb = x[idx[b : b + batch]], y[idx[b : b + batch]]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            correct += (out.argmax(1) == yb).sum().item()
        if correct / per_round >= threshold:
            return r + 1
    return rounds + 1  # never: counted as one more round than the budget


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40, help="budget for the 75%% settings")
    ap.add_argument("--hard-rounds", type=int, default=100, help="budget for the settings with a harder target")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--only", default="", help="run only the settings whose name contains this text")
    args = ap.parse_args()

    digits = DigitsDataset(train=True, image_size=16)
    dx, dy = digits.images, digits.labels
    patches = PhotoPatches(2000, patch_size=32)
    px = torch.stack([patches[i][0] for i in range(len(patches))])
    py = torch.tensor([int(patches[i][1]) for i in range(len(patches))])
    px = (px - px.mean((0, 2, 3), keepdim=True)) / px.std((0, 2, 3), keepdim=True)  # per-channel standardised
    k = len(patches.classes)
    he = (LRS, 0.75)
    settings = {  # name: (builder, inputs, labels, (learning rates, target training accuracy))
        "SmallAlexNet, digits 16 px (the notebook's setting)": (lambda a: small_alexnet(a, 10), dx, dy, he),
        "SmallAlexNet, weights x3 (towards saturation)": (lambda a: small_alexnet(a, 10, 3.0), dx, dy, he),
        "SmallAlexNet, inputs x10 (towards saturation)": (lambda a: small_alexnet(a, 10), dx * 10, dy, he),
        "plain CNN, 8 conv layers, digits": (lambda a: plain_cnn(a, 8), dx, dy, he),
        "plain CNN, 12 conv layers, digits": (lambda a: plain_cnn(a, 12), dx, dy, he),
        f"SmallAlexNet, photo patches 32 px ({k} classes)": (lambda a: small_alexnet(a, k), px, py, he),
        "SmallAlexNet, He init, digits, target 95%": (lambda a: small_alexnet(a, 10), dx, dy, (LRS, 0.95)),
        "SmallAlexNet, 2012 init, digits, target 75%": (lambda a: small_alexnet(a, 10, paper_init=True), dx, dy,
                                                         (LRS_2012, 0.75)),
        "SmallAlexNet, 2012 init, digits, target 95%": (lambda a: small_alexnet(a, 10, paper_init=True), dx, dy,
                                                         (LRS_2012, 0.95)),
        f"SmallAlexNet, 2012 init, photo patches ({k} classes), target 90%": (
            lambda a: small_alexnet(a, k, paper_init=True), px, py, (LRS_2012, 0.90)),
    }
    for name, (build, x, y, (lrs, target)) in settings.items():
        if args.only not in name:
            continue
        rounds = args.rounds if target <= 0.75 else args.hard_rounds
        start = time.perf_counter()
        best = {}
        for act in (nn.ReLU, nn.Tanh):
            per_lr = {lr: [rounds_to(lambda: build(act), x, y, lr, s, rounds, threshold=target) for s in args.seeds]
                      for lr in lrs}
            lr, runs = min(per_lr.items(), key=lambda kv: sum(kv[1]))
            best[act.__name__] = {"lr": lr, "rounds": runs}
        mean = {a: sum(v["rounds"]) / len(v["rounds"]) for a, v in best.items()}
        print(json.dumps({"setting": name, "target": target, "budget": rounds, **best,
                          "tanh_over_relu": round(mean["Tanh"] / mean["ReLU"], 2),
                          "seconds": round(time.perf_counter() - start)}), flush=True)


if __name__ == "__main__":
    main()
