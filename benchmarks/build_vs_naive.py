"""Compare the builder with the naive pipeline of the course notebooks, on the same samples.

The builder writes a subset (default 10 bg x 100 fg x 2 flips x 20 placements = 40,000 samples:
ten whole shards, as in the real build) with 2 workers, timed over the whole call, drawing the
demo assets included. On a few thousand samples that fixed cost dominates and the comparison
says nothing about building a dataset. The naive pipeline then redoes every row of the builder's index.csv the way the
course notebooks did: one process, PIL flip, LANCZOS resize and paste, a thresholded-alpha mask,
the foot-row geometric depth, and one JPEG/PNG file per image. It starts from the normalised
assets the builder wrote, so both produce the same samples and only the pipeline differs; a mask
agreement check on a few samples confirms that. Both timings come from this one run.

Target: builder >= 3x the naive rate.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from fgbg_utils.build import BuildConfig, make_dataset
from fgbg_utils.depth import GroundCamera, encode_depth
from fgbg_utils.manifest import read_manifest
from fgbg_utils.store import INDEX_NAME, read_index, read_sample

TARGET_RATIO = 3.0
CHECKED_SAMPLES = 8


def naive_build(root: Path, out: Path) -> int:
    """The notebooks' loop over the builder's index.csv; returns the number of samples written."""
    manifest = read_manifest(root)
    size = manifest["generation"]["parameters"]["size"]
    cameras = [GroundCamera(**info["camera"]) for info in manifest["backgrounds"]]
    for folder in ("fg_bg", "mask", "depth"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    rows = read_index(root / INDEX_NAME)
    pair = None
    for row in rows:
        if (row["bg"], row["fg"]) != pair:  # a student opens each (bg, fg) pair's files once
            pair = (row["bg"], row["fg"])
            bg = Image.open(root / "bg" / f"bg_{row['bg']:03d}.png").convert("RGB")
            bg_depth = Image.open(root / "bg" / f"bg_{row['bg']:03d}_depth.png").convert("L")
            fg = Image.open(root / "fg" / f"fg_{row['fg']:03d}.png").convert("RGBA")
        x, y, w, h = row["x"], row["y"], row["w"], row["h"]
        pasted = fg.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if row["flip"] else fg
        pasted = pasted.resize((w, h), Image.Resampling.LANCZOS)
        fg_bg = bg.copy()
        fg_bg.paste(pasted, (x, y), pasted)
        mask = Image.new("L", (size, size), 0)
        mask.paste(pasted.getchannel("A").point(lambda a: 255 if a >= 128 else 0), (x, y))
        depth = bg_depth.copy()
        foot_value = int(encode_depth(cameras[row["bg"]].row_depth(y + h - 1, size)))
        depth.paste(foot_value, (0, 0, size, size), mask)
        stem = f"{row['sample']:07d}"
        fg_bg.save(out / "fg_bg" / f"{stem}.jpg", quality=90)
        mask.save(out / "mask" / f"{stem}.png")
        depth.save(out / "depth" / f"{stem}.png")
    return len(rows)


def mask_agreement(root: Path, naive: Path, count: int) -> tuple[float, float]:
    """(pixel agreement, foreground IoU) of naive vs builder masks over `count` spread-out samples.

    Pixel agreement is what the brief asks for; IoU is also shown because background pixels
    make agreement high even for poorly matching masks.
    """
    rows = read_index(root / INDEX_NAME)
    picked = [rows[i] for i in np.linspace(0, len(rows) - 1, count).astype(int)]
    same = total = inter = union = 0
    for row in picked:
        built = read_sample(root, row)["mask"] > 0
        redone = np.asarray(Image.open(naive / "mask" / f"{row['sample']:07d}.png")) > 0
        same += int(np.count_nonzero(built == redone))
        total += built.size
        inter += int(np.count_nonzero(built & redone))
        union += int(np.count_nonzero(built | redone))
    return same / total, inter / max(union, 1)


def disk_bytes(paths: list[Path]) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of the files under `paths`: small files waste blocks."""
    files = [p for path in paths for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()]
    return sum(p.stat().st_size for p in files), sum(p.stat().st_blocks * 512 for p in files)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-bg", type=int, default=10)
    parser.add_argument("--n-fg", type=int, default=100)
    parser.add_argument("--placements", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="builder processes")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/vs_naive"), help="deleted first")
    args = parser.parse_args()

    shutil.rmtree(args.out, ignore_errors=True)
    root, naive = args.out / "builder", args.out / "naive"
    config = BuildConfig(n_bg=args.n_bg, n_fg=args.n_fg, placements=args.placements)

    psutil.cpu_percent()  # machine-wide CPU use per phase shows whether other jobs shared the cores
    started = time.perf_counter()
    result = make_dataset(root, config, workers=args.workers, progress=False)
    builder_seconds, builder_busy = time.perf_counter() - started, psutil.cpu_percent()
    started = time.perf_counter()
    naive_samples = naive_build(root, naive)
    naive_seconds, naive_busy = time.perf_counter() - started, psutil.cpu_percent()

    builder_rate = result.samples_built / builder_seconds
    naive_rate = naive_samples / naive_seconds
    ratio = builder_rate / naive_rate
    agreement, iou = mask_agreement(root, naive, CHECKED_SAMPLES)
    shards = sorted(root.glob("shard_*.zip"))
    builder_bytes, builder_blocks = disk_bytes(shards)
    naive_bytes, naive_blocks = disk_bytes([naive])

    print(f"samples:   builder {result.samples_built:,}, naive {naive_samples:,} (same index.csv rows)")
    print(f"builder:   {builder_seconds:.1f} s = {builder_rate:,.0f} samples/s ({args.workers} workers, whole call)")
    print(f"naive:     {naive_seconds:.1f} s = {naive_rate:,.0f} samples/s (1 process)")
    print(
        f"CPU busy:  builder phase {builder_busy:.0f}%, naive phase {naive_busy:.0f}% of the machine "
        f"(naive alone: {100 / psutil.cpu_count():.0f}%; more means other jobs shared the cores)"
    )
    print(f"ratio:     {ratio:.2f}x  target >= {TARGET_RATIO:.0f}x: {'PASS' if ratio >= TARGET_RATIO else 'FAIL'}")
    print(f"masks:     {agreement:.2%} of pixels agree, foreground IoU {iou:.3f} ({CHECKED_SAMPLES} samples)")
    print(
        f"on disk:   builder {builder_bytes / 1e6:.1f} MB in {len(shards)} shards "
        f"({builder_blocks / 1e6:.1f} MB allocated)"
    )
    print(
        f"           naive {naive_bytes / 1e6:.1f} MB in {3 * naive_samples:,} files "
        f"({naive_blocks / 1e6:.1f} MB allocated)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
