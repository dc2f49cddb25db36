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
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

TARGET_RATE = 1100.0
TARGET_SECONDS = 6 * 60.0
TARGET_RSS_GIB = 2.0
SAMPLE_EVERY = 0.2
GIB = 1024**3


def tree_rss(process: psutil.Process) -> int:
    """Summed RSS in bytes of `process` and all its descendants (those alive right now)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += member.memory_info().rss
    return total


def run_measured(command: list[str]) -> tuple[int, float, int]:
    """Run `command`, return (exit code, wall seconds, peak summed RSS in bytes)."""
    started = time.perf_counter()
    child = subprocess.Popen(command)
    tracked = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, tree_rss(tracked))
        except psutil.NoSuchProcess:
            break
        time.sleep(SAMPLE_EVERY)
    code = child.wait()
    return code, time.perf_counter() - started, peak


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
    print(
        f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (others' jobs skew timings)"
    )
    print("running:", " ".join(command), flush=True)

    code, seconds, peak = run_measured(command)
    if code != 0:
        print(f"make-dataset failed with exit code {code} after {seconds:.1f} s")
        return 0
    rate = samples / seconds
    peak_gib = peak / GIB
    print(f"samples:       {samples:,}")
    print(f"wall time:     {seconds:.1f} s ({seconds / 60:.2f} min)")
    print(f"rate:          {rate:,.0f} samples/s")
    print(f"peak RSS:      {peak_gib:.2f} GiB (summed over the process tree)")
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
