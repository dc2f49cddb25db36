"""Training throughput of `fgbg_net` at several width multipliers: parameters, GFLOPs per sample
(one forward) and images/s of forward + loss + backward + AdamW step on synthetic pairs, with
each rate as a ratio to width 1's at the same size, measured in the same run.

What it cannot say is which width scores best: that needs the full recipe trained on a GPU.

    python benchmarks/fgbg_net_widths.py --widths 1 2 3 --sizes 96 224
"""

from __future__ import annotations

import argparse
import time

import torch
from train_step import synchronize, synthetic_batch

from fgbg_utils.losses import FgBgLoss
from fgbg_utils.models import count_parameters
from fgbg_utils.models.costs import flops_per_sample
from fgbg_utils.models.fgbg_net import FgBgNet
from fgbg_utils.runtime import default_device, describe_runtime


def images_per_second(width: float, size: int, batch_size: int, warmup: int, steps: int, device) -> float:
    """Mean training rate over `steps` timed steps after `warmup` untimed ones."""
    torch.manual_seed(0)
    model = FgBgNet(width=width).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = FgBgLoss()
    batch = synthetic_batch(batch_size, size, device)
    for step in range(warmup + steps):
        if step == warmup:
            synchronize(device)
            started = time.perf_counter()
        total, _ = loss(model(batch["bg"], batch["fg_bg"]), batch)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", nargs="+", type=float, default=[1.0, 2.0, 3.0], help="the first is the baseline")
    parser.add_argument("--sizes", nargs="+", type=int, default=[96, 224], help="square input sizes in pixels")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when there is a GPU)")
    args = parser.parse_args()
    device = torch.device(args.device or default_device())
    torch.set_flush_denormal(True)
    print(describe_runtime())
    print(f"batch {args.batch_size}, {args.warmup} warm-up + {args.steps} timed steps, forward+loss+backward+AdamW")
    print(f"{'width':>6} {'params':>11} {'size':>5} {'GFLOPs/sample':>14} {'images/s':>9} {'x first':>8}")
    baseline: dict[int, float] = {}
    for width in args.widths:
        parameters = count_parameters(FgBgNet(width=width))
        for size in args.sizes:
            gflops = flops_per_sample(FgBgNet(width=width), size) / 1e9
            rate = images_per_second(width, size, args.batch_size, args.warmup, args.steps, device)
            ratio = rate / baseline.setdefault(size, rate)
            print(f"{width:>6g} {parameters:>11,} {size:>5} {gflops:>14.3f} {rate:>9.1f} {ratio:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
