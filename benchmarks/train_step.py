"""Training throughput of every registered network: images/s of forward + loss + backward +
AdamW step on random bg/fg_bg pairs, at each size, in one run, with parameters and GFLOPs per
sample (one forward, torch's flop counter) beside them, and each rate as a ratio to the default
model's (the first listed, fgbg_net by default) at the same size, and each step's time as a ratio to
`--baseline`'s step (fgbg_net at 96 px, the CPU recipe's last size), all measured in the same run.
Every configuration is timed `--rounds` times, interleaved, and its fastest round counts: on a
shared machine the slowest rounds measure the neighbours.

Synthetic inputs isolate the network from the data pipeline (the loop's own timing table in
`timing.json` shows the data share). fg_bg differs from bg only in a pasted square, as in the
dataset, so near-zero differences (denormals) are exercised as in training; the run flushes
denormals like `fgbg_utils.train` does.

    python benchmarks/train_step.py --sizes 96 224 --models fgbg_net seed004_dilated
    python benchmarks/train_step.py --models fgbg_net fgbg_net_refined --sizes 224 --batch-size 32
"""

from __future__ import annotations

import argparse
import time

import torch

from fgbg_utils.losses import FgBgLoss
from fgbg_utils.models import MODELS, build_model, count_parameters
from fgbg_utils.models.costs import flops_per_sample
from fgbg_utils.runtime import default_device, describe_runtime


def synthetic_batch(batch_size: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """bg, an fg_bg equal to it outside a pasted square, its mask and a depth map."""
    bg = torch.rand(batch_size, 3, size, size, device=device)
    fg_bg = bg.clone()
    mask = torch.zeros(batch_size, 1, size, size, device=device)
    lo, hi = size // 3, 2 * size // 3
    fg_bg[..., lo:hi, lo:hi] = torch.rand(batch_size, 3, hi - lo, hi - lo, device=device)
    mask[..., lo:hi, lo:hi] = 1.0
    return {"bg": bg, "fg_bg": fg_bg, "mask": mask, "depth": torch.rand(batch_size, 1, size, size, device=device)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(name: str, size: int, batch_size: int, warmup: int, steps: int, device: torch.device) -> float:
    """Mean training rate over `steps` timed steps after `warmup` untimed ones."""
    torch.manual_seed(0)
    model = build_model(name).to(device).train()
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


def parse_baseline(text: str) -> tuple[str, int]:
    name, _, size = text.partition("@")
    if name not in MODELS or not size.isdigit():
        raise argparse.ArgumentTypeError(f"expected MODEL@SIZE with MODEL one of {', '.join(MODELS)}, got {text!r}")
    return name, int(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="the first is the baseline"
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[96, 224])
    parser.add_argument("--baseline", type=parse_baseline, default=("fgbg_net", 96), help="MODEL@SIZE")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = torch.device(args.device or default_device())
    torch.set_flush_denormal(True)
    print(describe_runtime())
    print(
        f"batch {args.batch_size}, {args.warmup} warm-up + {args.steps} timed steps, forward+loss+backward+AdamW, "
        f"fastest of {args.rounds} interleaved rounds"
    )
    configs = [args.baseline] + [(name, size) for name in args.models for size in args.sizes]
    rates: dict[tuple[str, int], float] = {}
    for _ in range(args.rounds):
        for config in dict.fromkeys(configs):
            rate = images_per_second(*config, args.batch_size, args.warmup, args.steps, device)
            rates[config] = max(rate, rates.get(config, 0.0))
    baseline_step = 1000 * args.batch_size / rates[args.baseline]
    print(f"baseline: {args.baseline[0]} at {args.baseline[1]} px, {baseline_step:.1f} ms/step")
    print(
        f"{'model':<22} {'params':>11} {'size':>5} {'GFLOPs/sample':>14} {'images/s':>9} {'ms/step':>9} "
        f"{'x first':>8} {'step / baseline':>16}"
    )
    first = {size: rates[(args.models[0], size)] for size in args.sizes}
    for name in args.models:
        parameters = count_parameters(build_model(name))
        for size in args.sizes:
            gflops = flops_per_sample(build_model(name), size) / 1e9
            rate = rates[(name, size)]
            step_ms = 1000 * args.batch_size / rate
            print(
                f"{name:<22} {parameters:>11,} {size:>5} {gflops:>14.3f} {rate:>9.1f} {step_ms:>9.1f} "
                f"{rate / first[size]:>8.3f} {step_ms / baseline_step:>16.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
