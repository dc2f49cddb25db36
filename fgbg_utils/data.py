"""The stored samples as a torch Dataset (`FgBgDataset`, read from the zip shards), and the sample
format it shares with `virtual_dataset.VirtualFgBgDataset`; `loaders.make_loader` loads either.

Sample format (both datasets): a dict with ``bg`` and ``fg_bg`` (3xHxW float32), ``mask``
(1xHxW float32 in {0, 1}), ``depth`` (1xHxW float32 in [0, 1], 1 = near) and the int ids
``sample``, ``bg_id``, ``fg_id``, ``flip``. Without a transform the images are the files' values
/ 255; with one (``fgbg_utils.transforms.make_transforms``) the transform gets the uint8 arrays
``bg``, ``fg_bg`` (HxWx3), ``mask`` (HxW, 0/1) and ``depth`` (HxW) and returns the tensors.

uint8 transport: ``output="uint8"`` (either dataset) gives the same images as uint8 tensors
instead (bg, fg_bg 3xHxW; mask 1xHxW 0/1; depth 1xHxW 0..255; with a transform: its
augmentation without the normalisation), a quarter of the bytes a worker ships and no per-sample
float work. ``fgbg_utils.transforms.prepare_batch`` moves such a batch to the device and converts
it there to the float format (equal to the float path's values).

``FgBgDataset`` reads the stored members straight from the zip shards: one ZipFile handle per
shard per process, opened lazily and reopened after a fork (the handles never travel in a
pickle), and a small per-process cache of decoded backgrounds.

Backgrounds as the codec saw them. The builder saves each fg_bg as a JPEG and each bg as a PNG,
so ``fg_bg - bg`` carries JPEG noise over the whole frame (strongest on fine texture), which a
model must learn to ignore and the difference baseline cannot. JPEG works on fixed 8x8 / 16x16
blocks, so the same encoder at the same quality turns every block the object does not touch
into the same bytes in both images. `FgBgDataset` therefore gives, for a dataset the builder
made, the background passed through the builder's own `encode_jpeg` at the build's quality:
``fg_bg - bg`` is then exactly 0 outside the object's blocks. Imported datasets (no ``jpeg_quality`` in their generation
parameters; their JPEGs came from another encoder) get the stored background as it is.
"""

from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from .dataset_info import DatasetInfo
from .store import (
    decode_image,
    encode_jpeg,
    member_names,
    read_png,
    shard_name,
)
from .transforms import OUTPUTS, uint8_tensors

# --- shared sample helpers ----------------------------------------------------------------


def to_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The default conversion: uint8 bg/fg_bg (HxWx3), mask (HxW, 0/1), depth (HxW) to float32
    CxHxW tensors, images and depth / 255, mask as 0/1."""
    return {
        "bg": torch.from_numpy(np.ascontiguousarray(arrays["bg"].transpose(2, 0, 1))).float().div_(255.0),
        "fg_bg": torch.from_numpy(np.ascontiguousarray(arrays["fg_bg"].transpose(2, 0, 1))).float().div_(255.0),
        "mask": torch.from_numpy(arrays["mask"])[None].float(),
        "depth": torch.from_numpy(arrays["depth"])[None].float().div_(255.0),
    }


def sample_tensors(arrays: dict[str, np.ndarray], transform, output: str = "float") -> dict[str, torch.Tensor]:
    """One sample's uint8 arrays as tensors: through `transform` if any, else `to_tensors`; with
    ``output="uint8"`` uint8 tensors (a transform's augmentation only, no normalisation)."""
    if transform is None:
        return to_tensors(arrays) if output == "float" else uint8_tensors(arrays)
    if output == "uint8" and getattr(transform, "output", "float") != "uint8":
        if not hasattr(transform, "augment"):
            raise ValueError("output='uint8' needs a transform with an augment() method or output='uint8'")
        return uint8_tensors(transform.augment(**arrays))
    return transform(**arrays)


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    return output


def _ids(index: dict[str, np.ndarray], position: int) -> dict[str, int]:
    return {
        "sample": int(index["sample"][position]),
        "bg_id": int(index["bg"][position]),
        "fg_id": int(index["fg"][position]),
        "flip": int(index["flip"][position]),
    }


def verify_shards(root: Path, progress: bool = False) -> list[str]:
    """Problems with the dataset's files (missing, sha256 differing from the manifest, wrong
    member or row counts), one sentence each; empty when all is well
    (`fgbg_utils.checks.verify_dataset`)."""
    from .checks import verify_dataset

    return verify_dataset(Path(root), progress=progress)


# --- the zip-backed dataset ---------------------------------------------------------------


def evenly_spaced_positions(count: int, limit: int | None) -> list[int]:
    """`limit` positions spread evenly over 0..count-1 (both ends included), or all of them: a
    subset that covers every background and foreground of the split, the same on every call."""
    if limit is None or limit >= count:
        return list(range(count))
    if limit < 1:
        raise ValueError(f"limit must be at least 1 sample, got {limit}")
    return np.linspace(0, count - 1, limit).astype(int).tolist()


def evenly_spaced(dataset: FgBgDataset, limit: int | None) -> Dataset:
    """`dataset`, or its `limit` evenly spaced samples (`evenly_spaced_positions`)."""
    positions = evenly_spaced_positions(len(dataset), limit)
    return dataset if len(positions) == len(dataset) else Subset(dataset, positions)


class FgBgDataset(Dataset):
    """The stored samples of a split, read from the zip shards.

    `on_error="raise"` stops at a missing shard, a missing member or an image that does not
    decode, naming the shard and member; `on_error="skip"` replaces such a sample by the next
    good one and counts it in `skipped` (per process: each DataLoader worker counts its own) and
    `errors` (the messages). `verify=True` checks every file's sha256 against the manifest first.
    `output="uint8"` gives uint8 tensors (see the module's doc), for `prepare_batch` on the device.
    """

    def __init__(
        self,
        info: DatasetInfo,
        split: str | Sequence[int] = "all",
        transform=None,
        on_error: str = "raise",
        verify: bool = False,
        bg_cache: int = 128,
        output: str = "float",
    ):
        self.output = _check_output(output)
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.info, self.root = info, info.root
        if verify:
            problems = verify_shards(self.root)
            if problems:
                raise ValueError(f"{self.root}: dataset does not match its manifest:\n  " + "\n  ".join(problems))
        self.size = info.size
        self.bg_files = [background["file"] for background in info.backgrounds]
        self.bg_quality = info.jpeg_quality
        self.index = info.index
        self.split_name, self.samples = info.split(split)
        self.positions = info.positions(self.samples)
        self.transform = transform
        self.on_error = on_error
        self.bg_cache = bg_cache
        self.skipped = 0
        self.errors: list[str] = []
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._zips: dict[int, zipfile.ZipFile] = {}
        self._bgs: OrderedDict[int, np.ndarray] = OrderedDict()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_zips"], state["_bgs"], state["_pid"] = {}, OrderedDict(), None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def close(self) -> None:
        """Close this process's shard handles (they reopen on the next read)."""
        if self._pid == os.getpid():
            for handle in self._zips.values():
                handle.close()
        self._reset()

    def __len__(self) -> int:
        return len(self.positions)

    def _zip(self, bg: int) -> zipfile.ZipFile:
        if self._pid != os.getpid():  # a forked worker: the parent's handles share its file offsets
            self._reset()
        handle = self._zips.get(bg)
        if handle is None:
            path = self.root / shard_name(bg)
            if not path.exists():
                raise FileNotFoundError(f"{path}: missing shard (background {bg})")
            try:
                handle = zipfile.ZipFile(path)
            except zipfile.BadZipFile as error:
                raise ValueError(f"{path}: not a readable zip shard ({error})") from error
            self._zips[bg] = handle
        return handle

    def background(self, bg: int) -> np.ndarray:
        """Background `bg` as uint8 RGB, as the fg_bg codec sees it (see the module's doc), made
        once per process (an LRU cache of `bg_cache` backgrounds: 128 hold the course's 100, 15 MB at 224 px)."""
        if self._pid != os.getpid():
            self._reset()
        image = self._bgs.get(bg)
        if image is None:
            path = self.root / self.bg_files[bg]
            image = read_png(path)
            if self.bg_quality is not None:
                image = decode_image(encode_jpeg(image, self.bg_quality), str(path), 3)
            self._bgs[bg] = image
            while len(self._bgs) > self.bg_cache:
                self._bgs.popitem(last=False)
        else:
            self._bgs.move_to_end(bg)
        return image

    def _member(self, archive: zipfile.ZipFile, bg: int, name: str, channels: int) -> np.ndarray:
        where = f"{self.root / shard_name(bg)}:{name}"
        try:
            data = archive.read(name)
        except KeyError as error:
            raise ValueError(f"{where}: missing member") from error
        except (zipfile.BadZipFile, OSError, EOFError) as error:  # bad CRC, truncated shard
            raise ValueError(f"{where}: unreadable ({error})") from error
        if name.endswith(".jpg") and not (data[:2] == b"\xff\xd8" and data.rstrip(b"\x00")[-2:] == b"\xff\xd9"):
            raise ValueError(f"{where}: corrupt or truncated JPEG (no start or end marker)")
        image = decode_image(data, where, channels)
        if image.shape[:2] != (self.size, self.size):
            raise ValueError(f"{where}: decodes to {image.shape[:2]}, expected {self.size}x{self.size}")
        return image

    def load_arrays(self, i: int) -> dict[str, np.ndarray]:
        """Sample i's uint8 arrays: bg, fg_bg (HxWx3), mask (HxW, 0/1), depth (HxW)."""
        position = self.positions[i]
        sample, bg = int(self.index["sample"][position]), int(self.index["bg"][position])
        archive = self._zip(bg)
        fg_bg_name, mask_name, depth_name = member_names(sample)
        mask = self._member(archive, bg, mask_name, 1)
        if np.count_nonzero(mask - (mask > 127).view(np.uint8) * np.uint8(255)):  # values other than 0, 255
            raise ValueError(f"{self.root / shard_name(bg)}:{mask_name}: mask values other than 0 and 255")
        return {
            "bg": self.background(bg),
            "fg_bg": self._member(archive, bg, fg_bg_name, 3),
            "mask": (mask > 0).view(np.uint8),
            "depth": self._member(archive, bg, depth_name, 1),
        }

    def _get(self, i: int) -> dict:
        arrays = self.load_arrays(i)
        out = sample_tensors(arrays, self.transform, self.output)
        out.update(_ids(self.index, self.positions[i]))
        return out

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        if self.on_error == "raise":
            return self._get(i)
        for attempt in range(len(self)):
            try:
                return self._get((i + attempt) % len(self))
            except (ValueError, FileNotFoundError) as error:
                self.skipped += 1
                self.errors.append(str(error))
        raise ValueError(f"{self.root}: no readable sample in split {self.split_name!r} ({self.errors[-1]})")
