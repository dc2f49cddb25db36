"""Loader throughput at 224 px, batch 64, 2 workers: the zip-backed loader, the virtual loader on
the CPU, and the naive per-file PIL loader of the course notebooks, on the same samples.

(a) FgBgDataset + make_loader (eval transform, output="uint8": uint8 tensors, normalised later
    on the device by `prepare_batch`), 2 workers.
(b) VirtualFgBgDataset(info, output="uint8") on the CPU through make_loader, 2 workers: a
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
Then the training loaders, at 96 and 224 px with 2 workers, uint8 output as training uses
it: samples/s of the fastest of `--rounds` epochs of persistent workers after the first (which
starts them, printed beside it; on a shared machine the slow epochs measure the neighbours)
with the training augmentation (flips, shift, colour) of `make_transforms`
(resize, then whole-pixel moves at the output size) against today's former path, rebuilt here
as the baseline (`WarpThenResize`: albumentations' affine shift of the stored 224 px images,
then the resize), each over the zip shards (FgBgDataset, what `train` reads) and over the
virtual dataset on the CPU; ratios against the baseline on the same dataset (target >= 4x at
96 px); then `train --virtual`'s loader (whole batches composed and resized by the virtual dataset,
augmented by `BatchAugmentation`, through `SeededBatches`) with 2 workers and in-process,
against the zip shards' warp-then-resize loader; and, to read them by, the CPU time per sample,
in this process, of reading a sample from the zip and of each transform. One run; the loaders run
one after another on the same machine (`--training-only`: the training loaders alone).
"""

from __future__ import annotations

import argparse
import time
import zipfile
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import psutil
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import ToTensor

from fgbg_utils.batch_augment import BatchAugmentation
from fgbg_utils.build import BuildConfig, make_dataset
from fgbg_utils.data import FgBgDataset
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.loaders import make_loader, whole_batches
from fgbg_utils.manifest import read_manifest
from fgbg_utils.schedule import EpochBatches, SeededBatches
from fgbg_utils.store import MANIFEST_NAME, member_names, shard_name
from fgbg_utils.transforms import BatchNormaliser, make_transforms, prepare_batch, uint8_tensors
from fgbg_utils.virtual_dataset import VirtualFgBgDataset

BATCH = 64
WORKERS = 2
TRAINING_SIZES = (96, 224)


class WarpThenResize:
    """The former training transform (uint8 output), the baseline: flip and an affine shift of up
    to 6 % at the stored size, then the resize and the colour changes, in albumentations."""

    output = "uint8"

    def __init__(self, size: int):
        linear = cv2.INTER_LINEAR
        steps = [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                translate_percent=(-0.06, 0.06),
                interpolation=linear,
                mask_interpolation=cv2.INTER_NEAREST,
                fill=0,
                fill_mask=0,
                border_mode=cv2.BORDER_CONSTANT,
                p=0.7,
            ),
            A.Resize(size, size, interpolation=linear, mask_interpolation=cv2.INTER_NEAREST_EXACT),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.HueSaturationValue(hue_shift_limit=5, sat_shift_limit=15, val_shift_limit=0, p=0.5),
            A.GaussNoise(std_range=(0.01, 0.03), p=0.3),
        ]
        self.pipeline = A.Compose(steps, additional_targets={"bg": "image", "depth": "mask"}, seed=0)

    def augment(self, bg: np.ndarray, fg_bg: np.ndarray, mask: np.ndarray, depth: np.ndarray) -> dict:
        out = self.pipeline(image=fg_bg, bg=bg, mask=mask, depth=depth)
        return {"bg": out["bg"], "fg_bg": out["image"], "mask": out["mask"], "depth": out["depth"]}

    def __call__(self, bg: np.ndarray, fg_bg: np.ndarray, mask: np.ndarray, depth: np.ndarray) -> dict:
        return uint8_tensors(self.augment(bg, fg_bg, mask, depth))


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
    """The samples (the dataset's first N) as one file per image, the notebooks' layout (untimed);
    a folder that already holds at least as many is kept."""
    done = out / "done"
    if done.exists() and done.read_text().strip().isdigit() and int(done.read_text()) >= len(samples):
        return
    for folder in ("fg_bg", "mask", "depth", "bg"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    index = DatasetInfo.open(root).index
    for bg in np.unique(index["bg"][samples]):
        (out / "bg" / f"bg_{bg:03d}.png").write_bytes((root / "bg" / f"bg_{bg:03d}.png").read_bytes())
        with zipfile.ZipFile(root / shard_name(int(bg))) as archive:
            for sample in np.asarray(samples)[index["bg"][samples] == bg]:
                for name in member_names(int(sample)):
                    (out / name).write_bytes(archive.read(name))
    done.write_text(f"{len(samples)}\n")


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
    parser.add_argument("--training-samples", type=int, default=2000, help="samples per training loader")
    parser.add_argument("--training-only", action="store_true", help="only the training loaders' section")
    parser.add_argument(
        "--rounds", type=int, default=3, help="epochs timed per training loader after the first; the fastest counts"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # the workers do the work; the main process only waits
    if not (args.root / MANIFEST_NAME).exists():
        print(f"building {args.root} (4 bg x 100 fg x 2 x 5 = 4,000 samples at 224 px) ...")
        make_dataset(args.root, BuildConfig(n_bg=4, n_fg=100, placements=5), workers=WORKERS, progress=False)
    manifest = read_manifest(args.root)
    size = manifest["generation"]["parameters"]["size"]
    samples = list(range(min(args.samples, manifest["counts"]["samples"])))
    if args.training_only:
        training_loaders(args.root, manifest, samples[: args.training_samples], args.rounds)
        return
    n = len(samples)
    naive_folder = args.root.parent / f"{args.root.name}_files"
    extract(args.root, naive_folder, samples)
    print(f"{args.root}: {n} samples at {size} px, batch {BATCH}, {WORKERS} workers, {psutil.cpu_count()} cores")

    transform = make_transforms(size, train=False, stats=manifest, output="uint8")
    stored = FgBgDataset(DatasetInfo.open(args.root), split=samples, transform=transform)
    a = run(make_loader(stored, BATCH, workers=WORKERS, device="cpu", persistent_workers=False), n, True)
    virtual = VirtualFgBgDataset(DatasetInfo.open(args.root), split=samples, output="uint8")
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
    training_loaders(args.root, manifest, samples[: args.training_samples], args.rounds)


def training_loaders(root: Path, manifest: dict, samples: list[int], rounds: int) -> None:
    """Training-augmented samples/s, today's former path against the new one (see the module's doc)."""
    n = len(samples)
    stored = FgBgDataset(DatasetInfo.open(root), split=samples[:300])
    started = time.process_time()
    arrays = [stored.load_arrays(i) for i in range(len(stored))]
    costs = [f"reading a sample from the zip {(time.process_time() - started) / len(arrays) * 1e3:.2f}"]
    for size in TRAINING_SIZES:
        for name, transform in (
            ("former", WarpThenResize(size)),
            ("new", make_transforms(size, train=True, stats=manifest, seed=0, output="uint8")),
        ):
            started = time.process_time()
            for sample in arrays:
                transform(**sample)
            costs.append(f"{name} at {size} px {(time.process_time() - started) / len(arrays) * 1e3:.2f}")
    print(f"CPU ms per sample in this process ({len(arrays)} samples): {', '.join(costs)}")
    print(
        f"training augmentation, {n} samples, batch {BATCH}, {WORKERS} workers, uint8 output, "
        f"the fastest of {rounds} epochs after the one that starts the workers:"
    )
    for size in TRAINING_SIZES:
        transforms = {
            "warp then resize (former)": WarpThenResize(size),
            "resize then move (new)": make_transforms(size, train=True, stats=manifest, seed=0, output="uint8"),
        }
        for source in ("zip", "virtual"):
            rates = {}
            for name, transform in transforms.items():
                if source == "zip":
                    dataset = FgBgDataset(DatasetInfo.open(root), split=samples, transform=transform)
                else:
                    dataset = VirtualFgBgDataset(
                        DatasetInfo.open(root), split=samples, transform=transform, output="uint8"
                    )
                loader = make_loader(dataset, BATCH, workers=WORKERS, device="cpu", persistent_workers=True)
                first = run(loader, n)["rate"]  # includes starting the workers
                rates[name] = max(run(loader, n)["rate"] for _ in range(rounds))  # the same workers, later epochs
                print(
                    f"  {size:3d} px {source:7s} {name:26s} {rates[name]:8.0f} samples/s "
                    f"(first epoch, starting the workers: {first:.0f})"
                )
                del loader  # ends its workers
            former, new = rates.values()
            print(f"  {size:3d} px {source:7s} new / former = {new / former:.1f}x")
            if source == "zip":
                baseline = former
        for workers in (WORKERS, 0):
            rate, first = batch_augmented(root, samples, size, workers, rounds)
            where = f"{workers} workers" if workers else "in-process"
            print(
                f"  {size:3d} px virtual + BatchAugmentation ({where}) {rate:8.0f} samples/s "
                f"(first epoch: {first:.0f}); / zip warp then resize = {rate / baseline:.1f}x"
                + (" (target >= 4x)" if size == 96 else "")
            )


def batch_augmented(root: Path, samples: list[int], size: int, workers: int, rounds: int) -> tuple[float, float]:
    """samples/s of `train --virtual`'s training loader on the CPU (the fastest of `rounds` epochs after
    the first, then the first): whole
    batches composed and resized by VirtualFgBgDataset and augmented by `BatchAugmentation`
    (`SeededBatches`), in `workers` worker processes or in this one."""
    dataset = VirtualFgBgDataset(DatasetInfo.open(root), split=samples, size=size, output="uint8")
    sampler = EpochBatches(len(dataset), BATCH, seed=0, epoch=0)
    loader = make_loader(
        SeededBatches(dataset, BatchAugmentation()),
        batch_size=1,
        workers=workers,
        device="cpu",
        persistent_workers=workers > 0,
        batch_sampler=sampler,
        collate_fn=whole_batches,
        pin_memory=False,
    )
    n = len(sampler) * BATCH
    first = run(loader, n)["rate"]
    rates = []
    for epoch in range(1, rounds + 1):
        sampler.epoch = epoch
        rates.append(run(loader, n)["rate"])
    return max(rates), first


if __name__ == "__main__":
    main()
