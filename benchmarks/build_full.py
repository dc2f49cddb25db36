"""Measure the whole builder as a user runs it: `python -m fgbg_utils make-dataset` end to end.

The command runs as a subprocess so the wall time includes everything a user waits for (asset
preparation, shards, manifest, index) and so the peak memory is that of the real process tree:
the summed RSS of the command and all its children (forkserver and workers), sampled every 0.2 s.

Targets for the full dataset (100 bg x 100 fg x 2 flips x 20 placements = 400,000 samples at
224 px): >= 1,100 samples/s, <= 6 minutes, peak RSS <= 2 GiB. The script always exits 0: it
measures, it does not gate.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

TARGET_RATE = 1100.0
TARGET_SECONDS = 6 * 60.0
TARGET_RSS_GIB = 2.0
SAMPLE_EVERY = 0.2
GIB = 1024**3


@dataclass
class Run:
    code: int
    seconds: float
    peak_rss: int
    """Largest summed RSS of the process tree seen at one sampling instant, bytes."""
    own_cpu: float
    """CPU seconds of the process tree (each process as last sampled: its final 0.2 s is missed)."""
    machine_cpu: float
    """CPU seconds used on the whole machine during the run: the rest is other people's jobs."""


def run_measured(command: list[str]) -> Run:
    """Run `command`, sampling the RSS and CPU time of it and all its descendants."""
    machine_before = busy_seconds()
    started = time.perf_counter()
    child = subprocess.Popen(command)
    tracked = psutil.Process(child.pid)
    peak, cpu = 0, {}
    while child.poll() is None:
        with contextlib.suppress(psutil.NoSuchProcess):
            rss = 0
            for member in [tracked, *tracked.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied), member.oneshot():
                    rss += member.memory_info().rss
                    times = member.cpu_times()
                    cpu[member.pid] = times.user + times.system
            peak = max(peak, rss)
        time.sleep(SAMPLE_EVERY)
    code = child.wait()
    seconds = time.perf_counter() - started
    return Run(code, seconds, peak, sum(cpu.values()), busy_seconds() - machine_before)


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent running code since boot."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq


def folder_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-bg", type=int, default=100)
    parser.add_argument("--n-fg", type=int, default=100)
    parser.add_argument("--placements", type=int, default=20)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=None, help="builder processes (default: all cores)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/full"))
    parser.add_argument("--keep", action="store_true", help="keep OUT (a resumed build measures less work)")
    parser.add_argument("--save-manifest", type=Path, default=None, help="copy OUT/data_manifest.json here")
    args = parser.parse_args()

    if args.out.exists() and not args.keep:
        shutil.rmtree(args.out)
    samples = args.n_bg * args.n_fg * 2 * args.placements
    command = [sys.executable, "-m", "fgbg_utils", "make-dataset", "--out", str(args.out), "--seed", "0"]
    command += ["--n-bg", str(args.n_bg), "--n-fg", str(args.n_fg), "--placements", str(args.placements)]
    command += ["--size", str(args.size)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    print("running:", " ".join(command), flush=True)

    run = run_measured(command)
    seconds = run.seconds
    if run.code != 0:
        print(f"make-dataset failed with exit code {run.code} after {seconds:.1f} s")
        return 0
    rate = samples / seconds
    peak_gib = run.peak_rss / GIB
    others = max(0.0, run.machine_cpu - run.own_cpu)
    print(f"samples:       {samples:,}")
    print(f"wall time:     {seconds:.1f} s ({seconds / 60:.2f} min)")
    print(f"rate:          {rate:,.0f} samples/s")
    print(f"peak RSS:      {peak_gib:.2f} GiB (summed over the process tree)")
    print(
        f"CPU:           build {run.own_cpu:.0f} s, other jobs {others:.0f} s "
        f"of {seconds * psutil.cpu_count():.0f} core-seconds available"
    )
    print(f"size on disk:  {folder_bytes(args.out) / 1e9:.2f} GB ({args.out})")
    print(f"target rate >= {TARGET_RATE:,.0f} samples/s: {verdict(rate >= TARGET_RATE)}")
    full = (args.n_bg, args.n_fg, args.placements, args.size) == (100, 100, 20, 224)
    if full:
        print(f"target full build <= {TARGET_SECONDS / 60:.0f} min: {verdict(seconds <= TARGET_SECONDS)}")
    else:
        estimate = 400_000 / rate
        print(
            f"target full build <= {TARGET_SECONDS / 60:.0f} min: {verdict(estimate <= TARGET_SECONDS)} "
            f"(estimated {estimate / 60:.1f} min at this rate; not the full dataset)"
        )
    print(f"target peak RSS <= {TARGET_RSS_GIB:.0f} GiB: {verdict(peak_gib <= TARGET_RSS_GIB)}")
    if args.save_manifest:
        shutil.copyfile(args.out / "data_manifest.json", args.save_manifest)
        print(f"manifest copied to {args.save_manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
