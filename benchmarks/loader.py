"""Loader throughput at 224 px, batch 64, 2 workers: the zip-backed loader, the virtual loader on
the CPU, and the naive per-file PIL loader of the course notebooks, on the same samples.

(a) FgBgDataset + make_loader (eval transform, output="uint8": uint8 tensors, normalised later
    on the device by `prepare_batch`), 2 workers.
(b) VirtualFgBgDataset(output="uint8") on the CPU through make_loader, 2 workers: a
    `VirtualBatchLoader`, whose workers blend each batch's object boxes with NumPy/OpenCV and
    send only those; the main process pastes them into the backgrounds it holds (timed too).
(c) the notebooks' loader: the same samples extracted (untimed) to fg_bg/, mask/, depth/ and
    bg/ folders; a Dataset opening four files per sample with PIL and torchvision's ToTensor,
    the background found as `index // samples_per_background`; DataLoader with 2 workers.

Prints samples/s, ratios a/c and b/c (targets >= 3 and >= 10), the time to the first batch of
each (target <= 2 s), for information (b') = (b) with workers=0 (all composed in-process)
and the RSS of (a)'s process tree at the start and end of an epoch (flat),
and, for information, what `prepare_batch` (uint8 -> normalised float32) costs per batch when
the device is this CPU (on a GPU it runs there, after a 4x smaller copy).
One run; the three loaders run one after another on the same machine.
"""

from __future__ import annotations

import argparse
import time
import zipfile
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import ToTensor

from fgbg_utils.build import BuildConfig, make_dataset
from fgbg_utils.data import FgBgDataset, VirtualFgBgDataset, make_loader, read_index_arrays
from fgbg_utils.manifest import read_manifest
from fgbg_utils.store import MANIFEST_NAME, member_names, shard_name
from fgbg_utils.transforms import BatchNormaliser, make_transforms, prepare_batch

BATCH = 64
WORKERS = 2


class NaiveDataset(Dataset):
    """Four PIL opens per sample, ToTensor each, as the course notebooks did."""

    def __init__(self, folder: Path, samples: list[int], per_background: int):
        self.folder, self.samples, self.per_background = folder, samples, per_background
        self.to_tensor = ToTensor()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        sample = self.samples[i]
        stem = f"{sample:07d}"
        bg = sample // self.per_background
        return {
            "bg": self.to_tensor(Image.open(self.folder / "bg" / f"bg_{bg:03d}.png").convert("RGB")),
            "fg_bg": self.to_tensor(Image.open(self.folder / "fg_bg" / f"{stem}.jpg").convert("RGB")),
            "mask": self.to_tensor(Image.open(self.folder / "mask" / f"{stem}.png")),
            "depth": self.to_tensor(Image.open(self.folder / "depth" / f"{stem}.png")),
        }


def extract(root: Path, out: Path, samples: list[int]) -> None:
    """The samples as one file per image, the notebooks' layout (untimed)."""
    if (out / "done").exists():
        return
    for folder in ("fg_bg", "mask", "depth", "bg"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    index = read_index_arrays(root)
    for bg in np.unique(index["bg"][samples]):
        (out / "bg" / f"bg_{bg:03d}.png").write_bytes((root / "bg" / f"bg_{bg:03d}.png").read_bytes())
        with zipfile.ZipFile(root / shard_name(int(bg))) as archive:
            for sample in np.asarray(samples)[index["bg"][samples] == bg]:
                for name in member_names(int(sample)):
                    (out / name).write_bytes(archive.read(name))
    (out / "done").touch()


def tree_rss() -> float:
    """MB resident in this process and its children (the workers)."""
    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 1e6


def run(loader, n: int, watch_memory: bool = False) -> dict:
    started = time.perf_counter()
    first = None
    seen = 0
    rss = []
    for batch in loader:
        if first is None:
            first = time.perf_counter() - started
        seen += len(batch["fg_bg"])
        if watch_memory and (len(rss) == 0 or seen == n):  # at the first and at the last batch
            rss.append(tree_rss())
    seconds = time.perf_counter() - started
    assert seen == n, (seen, n)
    return {"rate": n / seconds, "first": first, "seconds": seconds, "rss": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("runs/bench/loader"))
    parser.add_argument("--samples", type=int, default=4000, help="samples per loader (the first N of the dataset)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the workers do the work; the main process only waits
    if not (args.root / MANIFEST_NAME).exists():
        print(f"building {args.root} (4 bg x 100 fg x 2 x 5 = 4,000 samples at 224 px) ...")
        make_dataset(args.root, BuildConfig(n_bg=4, n_fg=100, placements=5), workers=WORKERS, progress=False)
    manifest = read_manifest(args.root)
    size = manifest["generation"]["parameters"]["size"]
    samples = list(range(min(args.samples, manifest["counts"]["samples"])))
    n = len(samples)
    naive_folder = args.root.parent / f"{args.root.name}_files"
    extract(args.root, naive_folder, samples)
    print(f"{args.root}: {n} samples at {size} px, batch {BATCH}, {WORKERS} workers, {psutil.cpu_count()} cores")

    transform = make_transforms(size, train=False, stats=manifest, output="uint8")
    stored = FgBgDataset(args.root, split=samples, transform=transform)
    a = run(make_loader(stored, BATCH, workers=WORKERS, device="cpu", persistent_workers=False), n, True)
    virtual = VirtualFgBgDataset(args.root, split=samples, output="uint8")
    b = run(make_loader(virtual, BATCH, workers=WORKERS, device="cpu", persistent_workers=False), n)
    b0 = run(make_loader(virtual, BATCH, workers=0, device="cpu"), n)
    naive = NaiveDataset(naive_folder, samples, manifest["counts"]["samples_per_background"])
    c = run(DataLoader(naive, batch_size=BATCH, num_workers=WORKERS), n)

    rows = [
        ("(a) zip shards, FgBgDataset", a),
        ("(b) virtual, CPU, 2 workers", b),
        ("(b') virtual, CPU, in-process", b0),
        ("(c) naive per-file PIL", c),
    ]
    for name, result in rows:
        print(f"{name:32s} {result['rate']:8.0f} samples/s   first batch {result['first']:5.2f} s")
    print(f"a/c = {a['rate'] / c['rate']:.1f}x (target >= 3x)   b/c = {b['rate'] / c['rate']:.1f}x (target >= 10x)")
    print(f"RSS of (a) incl. workers: {a['rss'][0]:.0f} MB after the first batch, {a['rss'][1]:.0f} MB at the end")
    batch = virtual.batch(np.arange(BATCH))
    normaliser = BatchNormaliser(manifest)
    prepare_batch(batch, "cpu", normaliser)
    started = time.perf_counter()
    for _ in range(5):
        prepare_batch(batch, "cpu", normaliser)
    per_batch = (time.perf_counter() - started) / 5
    print(
        f"prepare_batch on this CPU (1 thread): {per_batch * 1e3:.0f} ms per batch of {BATCH} (not in the rates above)"
    )


if __name__ == "__main__":
    main()
