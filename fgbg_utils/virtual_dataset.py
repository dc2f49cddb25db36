"""`VirtualFgBgDataset`: the samples recomposed from index.csv, bg/ and fg/ in batches on the device,
equal to the stored ones (mask and depth exactly, fg_bg up to the JPEG error the stored files carry),
with no shards to read. Through `loaders.make_loader` with workers on the CPU the workers blend only
the object boxes and the main process pastes them into the backgrounds it holds."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .box_resize import BoxResizer
from .compose import MASK_THRESHOLD, prepare_foreground
from .data import _check_output, sample_tensors
from .dataset_info import NUMERIC_COLUMNS, DatasetInfo
from .depth import GroundCamera, encode_depth
from .store import read_png
from .transforms import resize_nearest

FIXUP_BAND = 1e-4
"""Alpha values this close to MASK_THRESHOLD are recomputed with OpenCV (see VirtualFgBgDataset)."""


class BoxParts(NamedTuple):
    """What a `VirtualBatchLoader` worker sends for a batch: the split positions and, packed one
    sample after the other in one uint8 array, each sample's blended fg_bg box (3 x h x w)
    followed by its mask box (h x w, 0/1). About 1 MB per batch of 64 at 224 px (the frames:
    26 MB), so it travels pickled through the worker's pipe: no fresh shared memory either."""

    rows: np.ndarray
    packed: np.ndarray


class ResizedBackgrounds(NamedTuple):
    """The backgrounds at a training size: the float resize (``smooth``, 0..255), it rounded to uint8
    (``rgb``) and the depths as `resize_nearest` reads them, with the `BoxResizer` that made them."""

    resizer: BoxResizer
    smooth: np.ndarray
    rgb: torch.Tensor
    depth: torch.Tensor


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
    `output="uint8"` returns uint8 batches (see the module's doc); with `size` != the build's size on
    the CPU they are resized box by box (`fgbg_utils.box_resize`): the float resize rounded, as other
    devices do, for a fraction of the work.
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
        self._resized: tuple[int, ResizedBackgrounds] | None = None
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
        if self._resized_box_by_box():
            return self._with_ids(rows, self._compose_cpu_resized(rows))
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

    def _resized_box_by_box(self) -> bool:
        """Whether a batch is uint8 frames at another size than the build's, made on the CPU with no
        transform: then `_compose_cpu_resized` makes it from the box parts alone."""
        return (
            self.device.type == "cpu"
            and self.transform is None
            and self.output == "uint8"
            and self.size != self.build_size
        )

    def _backgrounds_at(self, size: int) -> ResizedBackgrounds:
        """The backgrounds and their depths resized to `size`, once per size (a background's samples share it)."""
        if self._resized is None or self._resized[0] != size:
            smooth = F.interpolate(
                self.bg_rgb.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
            rounded = smooth.round().clamp_(0, 255).to(torch.uint8)
            resized = ResizedBackgrounds(
                BoxResizer(self.build_size, size), smooth.numpy(), rounded, resize_nearest(self.bg_depth, size)
            )
            self._resized = (size, resized)
        return self._resized[1]

    def _compose_cpu_resized(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """The uint8 batch at `size` (not the build's) from the box parts alone (`box_resize`): each
        fg_bg is its resized background plus the bilinear resize of its box's change, rounded, on the
        outputs the box reaches (every other pixel equals bg exactly); mask and depth read the pixels
        `resize_nearest` reads. Equal to resizing the composed frames in float and rounding, but for
        a rare pixel whose value lies within float error of a half (then one level apart)."""
        flat = self._box_parts(rows)
        boxes, starts = self._boxes(rows)
        resized = self._backgrounds_at(self.size)
        resizer, nearest, bg_rgb = resized.resizer, resized.resizer.nearest, self.bg_rgb.numpy()
        bg_ids = torch.from_numpy(self._ix["bg"][rows].astype(np.int64))
        out = {"bg": resized.rgb.index_select(0, bg_ids)}
        out["fg_bg"] = out["bg"].clone()
        out["mask"] = torch.zeros((len(rows), 1, self.size, self.size), dtype=torch.uint8)
        out["depth"] = resized.depth.index_select(0, bg_ids)
        fg_bg, mask, depth = (out[k].numpy() for k in ("fg_bg", "mask", "depth"))
        for b, ((x, y, w, h), start, bg_id, foot) in enumerate(
            zip(boxes, starts[:-1], bg_ids.tolist(), self.foot_value[rows].tolist(), strict=True)
        ):
            middle = start + 3 * w * h
            change = flat[start:middle].reshape(3, h, w).astype(np.float32)
            change -= bg_rgb[bg_id, :, y : y + h, x : x + w]
            (top, bottom), (left, right) = down, across = resizer.span(y, h), resizer.span(x, w)
            value = resizer.resize_change(change, down, across, y, x)
            value += resized.smooth[bg_id, :, top:bottom, left:right]
            np.copyto(fg_bg[b, :, top:bottom, left:right], np.rint(value).clip(0, 255), casting="unsafe")
            (top, bottom), (left, right) = resizer.nearest_span(y, h), resizer.nearest_span(x, w)
            inside = flat[middle : middle + w * h].reshape(h, w).view(np.bool_)
            picked = inside[(nearest[top:bottom] - y)[:, None], nearest[left:right] - x]
            mask[b, 0, top:bottom, left:right] = picked
            np.copyto(depth[b, 0, top:bottom, left:right], foot, where=picked)
        return out

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
        return self._with_ids(rows, out)

    def _with_ids(self, rows: np.ndarray, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`out` with each sample's id columns (sample, bg_id, fg_id, flip) added."""
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
