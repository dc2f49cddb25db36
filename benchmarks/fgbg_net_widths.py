"""Training throughput of `fgbg_net` at several width multipliers: parameters, GFLOPs per pair
(one forward) and images/s of forward + loss + backward + AdamW step on synthetic pairs, with
each rate as a ratio to the first width's at the same size, measured in the same run.

The widths take turns, one timed step each per round, and each rate is the median over the
rounds: on a machine shared with other jobs, a load that comes and goes then slows every width
alike instead of whichever happened to be timed then.

What it cannot say is which width scores best: that needs the full recipe trained on a GPU.

    python benchmarks/fgbg_net_widths.py --widths 1 2 3 --sizes 96 224
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from train_step import synchronize, synthetic_batch

from fgbg_utils.losses import FgBgLoss
from fgbg_utils.models import count_parameters
from fgbg_utils.models.costs import flops_per_sample
from fgbg_utils.models.fgbg_net import FgBgNet
from fgbg_utils.runtime import default_device, describe_runtime


class Trainer:
    """One width's model, optimizer and batch: `step()` trains once and returns its seconds."""

    def __init__(self, width: float, size: int, batch_size: int, device: torch.device):
        torch.manual_seed(0)
        self.model = FgBgNet(width=width).to(device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.loss = FgBgLoss()
        self.batch = synthetic_batch(batch_size, size, device)
        self.device = device

    def step(self) -> float:
        synchronize(self.device)
        started = time.perf_counter()
        total, _ = self.loss(self.model(self.batch["bg"], self.batch["fg_bg"]), self.batch)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        synchronize(self.device)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", nargs="+", type=float, default=[1.0, 2.0, 3.0], help="the first is the baseline")
    parser.add_argument("--sizes", nargs="+", type=int, default=[96, 224], help="square input sizes in pixels")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (one step of each width per round)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when there is a GPU)")
    args = parser.parse_args()
    device = torch.device(args.device or default_device())
    torch.set_flush_denormal(True)
    print(describe_runtime())
    print(
        f"batch {args.batch_size}, {args.warmup} warm-up + {args.rounds} timed rounds of one step per width "
        "(median), forward+loss+backward+AdamW"
    )
    print(f"{'width':>6} {'params':>11} {'size':>5} {'GFLOPs/pair':>12} {'images/s':>9} {'x first':>8}")
    for size in args.sizes:
        trainers = [Trainer(width, size, args.batch_size, device) for width in args.widths]
        seconds: list[list[float]] = [[] for _ in trainers]
        for round_ in range(args.warmup + args.rounds):
            for times, trainer in zip(seconds, trainers, strict=True):
                step = trainer.step()
                if round_ >= args.warmup:
                    times.append(step)
        rates = [args.batch_size / statistics.median(times) for times in seconds]
        for width, trainer, rate in zip(args.widths, trainers, rates, strict=True):
            parameters = count_parameters(trainer.model)
            gflops = flops_per_sample(FgBgNet(width=width), size) / 1e9
            print(f"{width:>6g} {parameters:>11,} {size:>5} {gflops:>12.3f} {rate:>9.1f} {rate / rates[0]:>8.3f}")
        print(flush=True)


if __name__ == "__main__":
    main()
