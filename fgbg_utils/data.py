"""Loading the dataset for training: the index as NumPy columns, splits, a zip-backed Dataset,
an on-the-fly (virtual) Dataset that composes batches on the device, and a tuned DataLoader.

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
``fg_bg - bg`` is then exactly 0 outside the object's blocks (measured on the demo dataset: 6 in
a million such pixels differ). Imported datasets (no ``jpeg_quality`` in their generation
parameters; their JPEGs came from another encoder) get the stored background as it is.

``VirtualFgBgDataset`` needs no shards: it recomposes fg_bg, mask and depth from index.csv,
``bg/`` and ``fg/`` in batches on the device, equal to the stored samples (mask and depth
exactly, fg_bg up to the JPEG error the stored files carry). Through `make_loader` with workers
on the CPU (`VirtualBatchLoader`) the workers blend only the object boxes and the main process
pastes them into the backgrounds it holds: the full frames never cross a process boundary.
"""

from __future__ import annotations

import os
import random
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset, get_worker_info

from .compose import MASK_THRESHOLD, prepare_foreground
from .dataset_info import NUMERIC_COLUMNS, DatasetInfo
from .depth import GroundCamera, encode_depth
from .store import (
    decode_image,
    encode_jpeg,
    member_names,
    read_png,
    shard_name,
)
from .transforms import OUTPUTS, resize_nearest, uint8_tensors

FIXUP_BAND = 1e-4
"""Alpha values this close to MASK_THRESHOLD are recomputed with OpenCV (see VirtualFgBgDataset)."""


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


# --- the virtual dataset ------------------------------------------------------------------


class BoxParts(NamedTuple):
    """What a `VirtualBatchLoader` worker sends for a batch: the split positions and, packed one
    sample after the other in one uint8 array, each sample's blended fg_bg box (3 x h x w)
    followed by its mask box (h x w, 0/1). About 1 MB per batch of 64 at 224 px (the frames:
    26 MB), so it travels pickled through the worker's pipe: no fresh shared memory either."""

    rows: np.ndarray
    packed: np.ndarray


class VirtualFgBgDataset(Dataset):
    """Samples composed on the fly from index.csv, bg/ and fg/, a batch at a time on `device`.

    Backgrounds, background depths and the foreground pyramid levels the split uses
    (`fgbg_utils.compose.prepare_foreground`, plain and mirrored) are held on the device once
    (on the CPU the levels as the builder's HxWx4 arrays only).

    On a CPU device each sample is composed box-locally with NumPy/OpenCV, the builder's own
    arithmetic (`fgbg_utils.compose.compose` and `fgbg_utils.depth.paste_depth`), in two steps:
    `_box_parts` resizes the pyramid level with cv2 (`resize_premultiplied`) and blends it with
    the background inside the box only, packing each box's fg_bg and mask (`BoxParts`); then
    `_assemble` gathers the backgrounds and their depths into a new uint8 batch and pastes each
    box's fg_bg, mask and depth. fg_bg then equals `compose` exactly, mask and depth the stored
    files. A `VirtualBatchLoader` (`make_loader` with workers) runs the first step in its workers
    and the second in the main process.

    On other devices (CUDA) a batch costs, per sample, one bilinear `F.interpolate` of the pyramid level that
    `resize_premultiplied` would pick (its 4 channels: premultiplied colour and alpha) pasted
    into full-frame colour and alpha canvases; then one batched blend
    ``floor(bg * (1 - a) + c + 0.5)``, mask ``a >= 0.5`` and depth = the background's depth
    with the mask's pixels at the foot row's encoded depth.

    Exactness. torch's bilinear resize uses the same sampling positions as cv2.INTER_LINEAR
    but computes its weights in float32 differently, so about a sixth of the resized values
    differ from OpenCV's in the last bits (a few 1e-6 relative; up to 1.4e-5 in alpha measured
    at 224 px, an order of magnitude inside FIXUP_BAND). Alpha is often exactly 0.5 (antialiased
    edges, averaged by the pyramid), so without the fix-up some masks would lose or gain pixels.
    Alpha values within FIXUP_BAND of the threshold are therefore recomputed with cv2.resize on
    the same level (one small 1-channel resize, rare), which makes the mask, and with it the
    depth, bit-identical to the builder's. fg_bg may differ from `compose` by one level in a
    few pixels where the last bits decide the rounding; the stored JPEGs differ far more.

    `size` (None = the build's size) resizes the composed batch: bilinear for images (torch's,
    with antialiasing: when it shrinks it averages area, unlike the kit's transforms, which read
    each output pixel's centre; torch's plain bilinear rounds differently in a worker process than
    in the main one, so batches would differ between loaders), nearest for mask and depth. For
    training images resized as evaluation resizes them, pass `transform` instead: it is applied
    per sample on the CPU to the uint8 arrays, like `FgBgDataset`'s (e.g. `make_transforms`).
    `output="uint8"` returns uint8 batches (see the module's doc; with `size` != the build's size
    the images are resized as uint8 on the CPU, by torch's uint8 antialiased bilinear, within one level
    of the float resize rounded, which other devices do).
    `batch(positions)` gives a batched dict;
    `__getitem__` and `__getitems__` make it usable with a DataLoader too (`make_loader`).
    """

    def __init__(
        self,
        info: DatasetInfo,
        split: str | Sequence[int] = "all",
        size: int | None = None,
        device: str | torch.device = "cpu",
        transform=None,
        output: str = "float",
    ):
        self.output = _check_output(output)
        self.info, self.root = info, info.root
        self.device = torch.device(device)
        if info.is_import:
            raise ValueError(
                f"{self.root}: imported from the course layout, with no foregrounds to compose from; "
                "read it with FgBgDataset"
            )
        self.build_size = info.size
        self.size = size or self.build_size
        self.transform = transform
        self.index = info.index
        self.split_name, self.samples = info.split(split)
        self.positions = info.positions(self.samples)
        self._send_parts = False  # set in the workers of a VirtualBatchLoader
        self.fixed_up = 0
        """Alpha patches recomputed with OpenCV because a value lay within FIXUP_BAND of 0.5."""

        backgrounds = info.backgrounds
        self.bg_rgb = torch.from_numpy(np.stack([read_png(self.root / b["file"]) for b in backgrounds]))
        self.bg_rgb = self.bg_rgb.permute(0, 3, 1, 2).contiguous().to(self.device)
        self._resized_backgrounds: tuple[int | None, torch.Tensor | None] = (None, None)
        self.bg_depth = torch.from_numpy(np.stack([read_png(self.root / b["depth_file"]) for b in backgrounds]))
        self.bg_depth = self.bg_depth[:, None].contiguous().to(self.device)

        ix = {k: self.index[k][self.positions] for k in NUMERIC_COLUMNS}
        foot = np.zeros(len(self.positions), dtype=np.uint8)
        for bg, camera in enumerate(info.cameras):
            rows = ix["bg"] == bg
            if rows.any():
                camera = GroundCamera(**camera)
                foot[rows] = encode_depth(camera.row_depth(ix["y"][rows] + ix["h"][rows] - 1, self.build_size))
        self.foot_value = foot

        # the pyramid level resize_premultiplied picks for each row, and only the levels used
        self.level = np.zeros(len(self.positions), dtype=np.int8)
        self._levels: dict[tuple[int, int, int], np.ndarray] = {}
        self.levels: dict[tuple[int, int, int], torch.Tensor] = {}  # CxHxW, for the batched path only
        for fg in np.unique(ix["fg"]):
            rgba = read_png(self.root / info.foregrounds[fg]["file"])
            for flip in (0, 1):
                rows = np.flatnonzero((ix["fg"] == fg) & (ix["flip"] == flip))
                if not len(rows):
                    continue
                pyramid = prepare_foreground(rgba, flip=bool(flip))
                heights = np.array([level.shape[0] for level in pyramid])
                widths = np.array([level.shape[1] for level in pyramid])
                fits = (heights[None, 1:] >= ix["h"][rows, None]) & (widths[None, 1:] >= ix["w"][rows, None])
                chosen = np.zeros(len(rows), dtype=np.int64)
                if fits.shape[1]:  # the last level that fits (levels shrink), else level 0
                    chosen = np.where(fits.any(1), fits.shape[1] - np.argmax(fits[:, ::-1], axis=1), 0)
                self.level[rows] = chosen
                for k in np.unique(chosen):
                    key = (int(fg), flip, int(k))
                    self._levels[key] = pyramid[k]
                    if self.device.type != "cpu":
                        self.levels[key] = torch.from_numpy(pyramid[k]).permute(2, 0, 1).contiguous().to(self.device)
        self._ix = ix

    def __len__(self) -> int:
        return len(self.positions)

    def __getstate__(self) -> dict:  # tensors pickle by value; nothing process-bound to drop
        return self.__dict__.copy()

    def compose_batch(self, positions: Sequence[int]) -> dict[str, torch.Tensor]:
        """uint8 tensors on the device for split positions: bg, fg_bg (Bx3xSxS), mask (Bx1xSxS,
        0/1) and depth (Bx1xSxS), at the build's size."""
        if self.device.type == "cpu":
            return self._compose_cpu(positions)
        return self._compose_torch(positions)

    def _compose_cpu(self, positions: Sequence[int]) -> dict[str, torch.Tensor]:
        """Box-local composition: the box parts (`_box_parts`) pasted into the backgrounds
        (`_assemble`); the same float32 operations, in the same order, as `compose` (fg_bg, mask)
        and `paste_depth` (depth)."""
        rows = np.asarray(positions, dtype=np.int64)
        return self._assemble(rows, self._box_parts(rows))

    def _boxes(self, rows: np.ndarray) -> tuple[list[list[int]], list[int]]:
        """The boxes (x, y, w, h) of `rows` and where each sample's parts start in a packed buffer
        (one more entry: the buffer's length)."""
        boxes = np.stack([self._ix[k][rows] for k in ("x", "y", "w", "h")], axis=1).astype(np.int64)
        starts = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(4 * boxes[:, 2] * boxes[:, 3], out=starts[1:])
        return boxes.tolist(), starts.tolist()

    def _box_parts(self, rows: np.ndarray) -> np.ndarray:
        """Each sample's fg_bg box blended as `compose` does (float32 ``bg * (1 - a) + c + 0.5``
        truncated to uint8) and its mask box (``a >= 0.5``), packed as `BoxParts` describes."""
        boxes, starts = self._boxes(rows)
        flat, bg_rgb = np.empty(starts[-1], dtype=np.uint8), self.bg_rgb.numpy()
        fgs, flips, levels = (column[rows].tolist() for column in (self._ix["fg"], self._ix["flip"], self.level))
        keys = zip(fgs, flips, levels, strict=True)
        for (x, y, w, h), start, bg_id, key in zip(
            boxes, starts[:-1], self._ix["bg"][rows].tolist(), keys, strict=True
        ):
            patch = cv2.resize(self._levels[key], (w, h), interpolation=cv2.INTER_LINEAR)  # = resize_premultiplied
            planes = np.ascontiguousarray(patch.transpose(2, 0, 1))  # planar: NumPy is faster on contiguous rows
            alpha = planes[3]
            region = bg_rgb[bg_id, :, y : y + h, x : x + w].astype(np.float32)
            region *= 1.0 - alpha
            region += planes[:3]
            region += 0.5
            middle = start + 3 * w * h
            np.copyto(flat[start:middle].reshape(3, h, w), region, casting="unsafe")  # truncation, as astype
            np.greater_equal(alpha, MASK_THRESHOLD, out=flat[middle : middle + w * h].reshape(h, w).view(np.bool_))
        return flat

    def _assemble(self, rows: np.ndarray, flat: np.ndarray) -> dict[str, torch.Tensor]:
        """The full-frame uint8 batch from `_box_parts`: the backgrounds and their depths gathered
        (`index_select`: a third faster than NumPy here), each box's fg_bg and mask pasted, and
        the depth inside the mask set to the foot row's encoded depth."""
        n, s = len(rows), self.build_size
        boxes, starts = self._boxes(rows)
        bg_ids = torch.from_numpy(self._ix["bg"][rows].astype(np.int64))
        out = {
            "bg": self.bg_rgb.index_select(0, bg_ids),
            "fg_bg": self.bg_rgb.index_select(0, bg_ids),
            "mask": torch.zeros((n, 1, s, s), dtype=torch.uint8),
            "depth": self.bg_depth.index_select(0, bg_ids),
        }
        fg_bg, mask, depth = (out[k].numpy() for k in ("fg_bg", "mask", "depth"))
        for b, ((x, y, w, h), start, foot) in enumerate(
            zip(boxes, starts[:-1], self.foot_value[rows].tolist(), strict=True)
        ):
            middle = start + 3 * w * h
            inside = flat[middle : middle + w * h].reshape(h, w).view(np.bool_)
            fg_bg[b, :, y : y + h, x : x + w] = flat[start:middle].reshape(3, h, w)
            mask[b, 0, y : y + h, x : x + w] = inside
            np.copyto(depth[b, 0, y : y + h, x : x + w], foot, where=inside)
        return out

    def _compose_torch(self, positions: Sequence[int]) -> dict[str, torch.Tensor]:
        """Full-frame batched composition on the device (see the class doc)."""
        rows = np.asarray(positions, dtype=np.int64)
        ix = {k: v[rows] for k, v in self._ix.items()}
        bg_ids = torch.from_numpy(ix["bg"].astype(np.int64)).to(self.device)
        n, s = len(rows), self.build_size
        colour = torch.zeros((n, 3, s, s), dtype=torch.float32, device=self.device)
        alpha = torch.zeros((n, 1, s, s), dtype=torch.float32, device=self.device)
        for b, row in enumerate(rows):
            x, y, w, h = (int(ix[k][b]) for k in ("x", "y", "w", "h"))
            key = (int(ix["fg"][b]), int(ix["flip"][b]), int(self.level[row]))
            patch = F.interpolate(
                self.levels[key][None], size=(h, w), mode="bilinear", align_corners=False, antialias=False
            )[0]
            colour[b, :, y : y + h, x : x + w] = patch[:3]
            alpha[b, :, y : y + h, x : x + w] = patch[3:]
        near = ((alpha - MASK_THRESHOLD).abs() < FIXUP_BAND).flatten(1).any(1)
        for b in torch.nonzero(near).flatten().tolist():
            x, y, w, h = (int(ix[k][b]) for k in ("x", "y", "w", "h"))
            level = self._levels[(int(ix["fg"][b]), int(ix["flip"][b]), int(self.level[rows[b]]))]
            exact = cv2.resize(np.ascontiguousarray(level[..., 3]), (w, h), interpolation=cv2.INTER_LINEAR)
            alpha[b, 0, y : y + h, x : x + w] = torch.from_numpy(exact).to(self.device)
            self.fixed_up += 1
        bg = self.bg_rgb[bg_ids]
        blend = bg.float() * (1.0 - alpha)
        blend += colour
        blend += 0.5
        fg_bg = blend.to(torch.uint8)  # truncation of values in 0.5..255.5 = floor
        mask = alpha >= MASK_THRESHOLD
        foot = torch.from_numpy(self.foot_value[rows]).to(self.device).view(n, 1, 1, 1)
        depth = torch.where(mask, foot, self.bg_depth[bg_ids])
        return {"bg": bg, "fg_bg": fg_bg, "mask": mask.to(torch.uint8), "depth": depth}

    def batch(self, positions: Sequence[int]) -> dict[str, torch.Tensor]:
        """The samples at split positions `positions` as one batch on the device, in the
        format of `FgBgDataset` collated."""
        rows = np.asarray(positions, dtype=np.int64)
        return self._finish(rows, self.compose_batch(rows))

    def assemble(self, parts: BoxParts) -> dict[str, torch.Tensor]:
        """The batch `batch(parts.rows)` gives, from the parts a `VirtualBatchLoader` worker sent."""
        return self._finish(parts.rows, self._assemble(parts.rows, parts.packed))

    def _frames_as_composed(self) -> bool:
        """Whether a batch is the composed uint8 frames as they are (a CPU device, no transform,
        uint8 at the build's size): then a worker can send box parts only (`VirtualBatchLoader`)."""
        return (
            self.device.type == "cpu"
            and self.transform is None
            and self.output == "uint8"
            and self.size == self.build_size
        )

    def _backgrounds_at(self, size: int) -> torch.Tensor:
        """The uint8 backgrounds resized to `size` as `_finish` resizes a batch's images, once per size
        (the samples of a background share it)."""
        if self._resized_backgrounds[0] != size:
            resized = F.interpolate(
                self.bg_rgb, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
            self._resized_backgrounds = (size, resized)
        return self._resized_backgrounds[1]

    def _finish(self, rows: np.ndarray, composed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The composed uint8 frames of `rows` through the transform or the float conversion and
        resize, with the ids added."""
        if self.transform is not None:
            # HxWxC images contiguous in one batched copy: OpenCV works on them twice as fast as on views
            arrays = {k: composed[k].permute(0, 2, 3, 1).contiguous().cpu().numpy() for k in ("bg", "fg_bg")}
            arrays.update({k: composed[k][:, 0].cpu().numpy() for k in ("mask", "depth")})
            samples = [
                sample_tensors({k: v[b] for k, v in arrays.items()}, self.transform, self.output)
                for b in range(len(rows))
            ]
            out = {k: torch.stack([sample[k] for sample in samples]).to(self.device) for k in samples[0]}
        elif self.output == "uint8" and self.size == self.build_size:
            out = dict(composed)
        elif self.output == "uint8" and self.device.type == "cpu":  # torch's uint8 resize: far cheaper than float's
            bg_ids = torch.from_numpy(self._ix["bg"][rows].astype(np.int64))
            out = {
                "bg": self._backgrounds_at(self.size).index_select(0, bg_ids),
                "fg_bg": F.interpolate(
                    composed["fg_bg"], size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
                ),
            }
            out.update({key: resize_nearest(composed[key], self.size) for key in ("mask", "depth")})
        else:
            out = {
                "bg": composed["bg"].float().div_(255.0),
                "fg_bg": composed["fg_bg"].float().div_(255.0),
                "mask": composed["mask"].float(),
                "depth": composed["depth"].float().div_(255.0),
            }
            if self.size != self.build_size:
                size = (self.size, self.size)
                for key in ("bg", "fg_bg"):
                    out[key] = F.interpolate(out[key], size=size, mode="bilinear", align_corners=False, antialias=True)
                for key in ("mask", "depth"):
                    out[key] = resize_nearest(out[key], self.size)
            if self.output == "uint8":
                out["bg"], out["fg_bg"] = (
                    out[k].mul(255.0).round_().clamp_(0, 255).to(torch.uint8) for k in ("bg", "fg_bg")
                )
                out["mask"] = out["mask"].to(torch.uint8)
                out["depth"] = out["depth"].mul(255.0).round_().to(torch.uint8)
        positions_in_index = self.positions[rows]
        out["sample"] = torch.from_numpy(self.index["sample"][positions_in_index].astype(np.int64))
        out["bg_id"] = torch.from_numpy(self.index["bg"][positions_in_index].astype(np.int64))
        out["fg_id"] = torch.from_numpy(self.index["fg"][positions_in_index].astype(np.int64))
        out["flip"] = torch.from_numpy(self.index["flip"][positions_in_index].astype(np.int64))
        return out

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor] | BoxParts:
        if self._send_parts and self._frames_as_composed():
            rows = np.asarray(positions, dtype=np.int64)
            return BoxParts(rows, self._box_parts(rows))
        return self.batch(positions)

    def __getitem__(self, i: int) -> dict:
        out = self.batch([i])
        return {k: (v[0] if v.dim() > 1 else int(v[0])) for k, v in out.items()}


class VirtualLoader:
    """Batches of a VirtualFgBgDataset composed in this process (on its device), in order or
    shuffled with a seeded generator (a new order each epoch, the same for the same seed)."""

    def __init__(self, dataset: VirtualFgBgDataset, batch_size: int = 64, shuffle: bool = False, seed: int = 0):
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.generator = np.random.default_rng(seed)

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        n = len(self.dataset)
        order = self.generator.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            yield self.dataset.batch(order[start : start + self.batch_size])


# --- DataLoader ---------------------------------------------------------------------------


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: seed numpy and random from torch's per-worker seed.

    It does not call cv2.setNumThreads: in a forked worker whose parent has run OpenCV's
    thread pool, that call blocks forever (it waits for the parent's pool threads, which the
    fork did not copy); OpenCV's own after-fork handling makes plain cv2 calls safe.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _passthrough(batch):
    return batch


class _SendBoxParts:
    """worker_init_fn of `VirtualBatchLoader`: the worker's copy of the dataset sends box parts;
    then the given worker_init_fn (if any) runs."""

    def __init__(self, then=None):
        self.then = then

    def __call__(self, worker_id: int) -> None:
        get_worker_info().dataset._send_parts = True
        if self.then is not None:
            self.then(worker_id)


class VirtualBatchLoader(DataLoader):
    """A DataLoader whose workers send only the box-local parts of a CPU VirtualFgBgDataset's
    batches (`BoxParts`); this process assembles the full frames from the backgrounds it holds.

    Why: frames composed in a worker travel in fresh shared memory, and its zero-filled pages
    (25 MB per batch of 64 at 224 px) cost as much system time as the composition itself. The
    assembled batches are new tensors in ordinary memory, which the allocator reuses; nothing
    the caller keeps is ever written again. Equal to `dataset.batch(positions)` byte for byte.
    Batches whose frames are not sent as composed (a transform, a resize, float output) come
    from the workers whole. Sampler, len(), seeding and persistent workers are the DataLoader's.
    """

    def __init__(self, dataset: VirtualFgBgDataset, *args, worker_init_fn=None, **kwargs):
        if not isinstance(dataset, VirtualFgBgDataset):
            raise TypeError(f"VirtualBatchLoader needs a VirtualFgBgDataset, got {type(dataset).__name__}")
        super().__init__(dataset, *args, worker_init_fn=_SendBoxParts(worker_init_fn), **kwargs)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return map(self._complete, super().__iter__())

    def _complete(self, fetched: dict[str, torch.Tensor] | BoxParts) -> dict[str, torch.Tensor]:
        return self.dataset.assemble(fetched) if isinstance(fetched, BoxParts) else fetched


def composing_device(dataset: Dataset) -> torch.device | None:
    """The device a VirtualFgBgDataset composes on, found under wrappers that keep the wrapped
    dataset as ``.dataset`` (Subset, training's per-sample seeding); None for any other dataset."""
    for _ in range(8):  # wrappers nest a few deep at most
        if isinstance(dataset, VirtualFgBgDataset):
            return dataset.device
        dataset = getattr(dataset, "dataset", None)
        if dataset is None:
            return None
    return None


def make_loader(
    dataset: Dataset,
    batch_size: int = 64,
    shuffle: bool = False,
    workers: int | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    multiprocessing_context=None,
    pin_memory: bool | None = None,
    persistent_workers: bool | None = None,
    prefetch_factor: int | None = None,
    drop_last: bool = False,
    **options,
) -> DataLoader:
    """A DataLoader with settings for this machine, each overridable.

    workers = min(cpu_count, 8); pin_memory when the device is CUDA; when workers > 0, a
    prefetch factor of 4 batches per worker and persistent workers (`persistent_workers=True`, the
    default: the same worker processes serve every epoch of this loader, so a caller reuses one
    loader across epochs instead of starting workers again; False ends them with each epoch); a
    torch generator seeded with `seed` (the same shuffles for the same seed) and `seed_worker`
    seeding numpy and random in each worker. A VirtualFgBgDataset is fetched a batch at a time
    (its `__getitems__`). One that composes on a GPU (its `device`, also under a wrapper such as
    a Subset) is loaded in this process: worker processes cannot use the parent's CUDA context
    ("Cannot re-initialize CUDA in forked subprocess"), so workers > 0 becomes 0 with a one-line
    message. On the CPU with workers and uint8 output at the build's size without a transform,
    the loader is a `VirtualBatchLoader` (the workers compose the boxes, this process pastes them
    into the backgrounds). `multiprocessing_context` ("fork", "spawn", "forkserver") is passed
    through; None is the platform default.
    """
    from .runtime import default_device

    composing_on = composing_device(dataset)
    if composing_on is not None and composing_on.type != "cpu":
        if workers:
            print(f"make_loader: the virtual dataset composes on {composing_on}: loading in this process (workers=0)")
        workers = 0
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    device = torch.device(device or default_device())
    if pin_memory is None:
        pin_memory = device.type == "cuda" and not isinstance(dataset, VirtualFgBgDataset)
    generator = torch.Generator()
    generator.manual_seed(seed)
    kwargs = dict(
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        generator=generator,
        worker_init_fn=seed_worker,
    )
    if isinstance(dataset, VirtualFgBgDataset):
        kwargs["collate_fn"] = _passthrough
    if workers > 0:
        kwargs["persistent_workers"] = True if persistent_workers is None else persistent_workers
        kwargs["prefetch_factor"] = 4 if prefetch_factor is None else prefetch_factor
        kwargs["multiprocessing_context"] = multiprocessing_context
    kwargs.update(options)
    if workers > 0 and isinstance(dataset, VirtualFgBgDataset) and dataset._frames_as_composed():
        return VirtualBatchLoader(dataset, **kwargs)
    return DataLoader(dataset, **kwargs)
