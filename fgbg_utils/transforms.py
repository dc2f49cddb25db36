"""Augmentation for the fg/bg task with albumentations: one geometry for all four images, one
colour change for both RGB inputs, per-input normalisation, then tensors.

bg is declared an extra ``image`` target and depth an extra ``mask`` target of one
``A.Compose`` (``additional_targets={"bg": "image", "depth": "mask"}``), so every step draws its
parameters once per sample and applies them to all the images of its kind.

Choices:

- **Resize first, then augment at the output size.** Every transform, training or evaluation,
  starts with the same ``A.Resize`` to `size` (any size, e.g. 64..224), so the training images
  are read from the stored ones exactly as the evaluation's are, and the random steps work on
  the small images instead of warping the four stored ones. Images use OpenCV's
  ``INTER_LINEAR``, mask and depth ``INTER_NEAREST_EXACT`` (``mask_interpolation``): it takes
  the source pixel under each output pixel's centre, where ``INTER_LINEAR`` samples the images.
  Plain ``INTER_NEAREST`` takes ``floor(x * scale)``, about a third of an output pixel up and
  left of that centre at 224 -> 96 px, so its masks miss the image's object edges. Torch's
  ``nearest-exact`` is meant to be the same, but at many sizes (224 -> 40, 80, 168 px…) float
  rounding picks the neighbouring row where a centre falls exactly between two, so the virtual
  dataset and the evaluation's background depth use `resize_nearest`, which reads the rows and
  columns OpenCV reads. ``INTER_LINEAR`` reads the four source pixels around each centre and
  averages no area when it shrinks, so a thin part is dashed in the image just as in its target
  (an area-averaged image would show it faintly where the target has nothing).
- **Geometry is shared and whole-pixel.** ``HorizontalFlip`` (p 0.5) and a shift (p 0.7) of up
  to `SHIFT` of the frame in each direction, in whole output pixels, act with the same draw on
  bg, fg_bg, mask and depth. The shift pads that many zero pixels on every side
  (``PadIfNeeded``) and crops `size` back out at a random position (``RandomCrop``): pixels are
  copied, never interpolated (``Affine(translate_px=...)`` moves them the same way through a
  warp, at several times the cost per sample), so the mask stays exactly 0/1, the depth keeps
  its stored levels, mask and image stay on the same pixel grid, the images are as sharp as the
  evaluation's, and a draw that moves nothing is the evaluation's output. Borders that the
  shift uncovers are 0 in every image (black RGB, no mask, depth 0 = far).
- **No rotation, no zoom.** A level camera sees the ground's inverse depth grow linearly with
  the row, the same in every column, at a slope set by the camera (`fgbg_net` draws exactly that
  ramp, with one learnt camera height). A rotation tilts the ramp, which no level camera shows; a
  zoom changes its slope per row as a different camera would. A shift only moves the horizon,
  which the network finds per image.
- **Colour is shared by the two RGB inputs only.** ``RandomBrightnessContrast`` (p 0.5, up to
  0.2 each), ``HueSaturationValue`` (p 0.5, hue up to 5, saturation up to 15) and a little
  ``GaussNoise`` (p 0.3, std 1..3 % of 255) touch bg and fg_bg (image-type targets), never mask
  or depth, with one draw and one noise map for both: outside the object, bg pixels still equal
  fg_bg pixels, which is what makes the mask recoverable from the pair. (Real photo pairs would
  differ a little there; independent changes would teach the network that the whole frame
  changed.)
- **No cutout / random erasing / crops that drop the object.** Erasing a patch of fg_bg
  would either erase (part of) the object while the mask still marks it, or, outside the
  object, create a bg/fg_bg difference that is not an object: either way the mask target
  would lie. Erasing the same patch in both inputs is pointless for the mask (it removes the
  evidence only) and the depth target would still describe the erased scene.
- **One normalisation for both RGB inputs**: the backgrounds' mean/std from the manifest.
  Equal pixels must stay equal after normalising, since the object is where the two differ;
  with each input's own statistics (fg_bg's differ by about 1 %) every unchanged pixel would
  differ by up to 3 grey levels' worth. mask stays 0/1 and depth 0..1 (targets, not normalised).
- **Evaluation** (`train=False`) is only the resize, normalisation and tensors.
- **Seeding.** `seed` makes the draws reproducible; `pipeline.set_random_seed(seed)` restarts
  them (training reseeds per sample, so augmentation is a function of seed, epoch and sample).
  albumentations gives each step its own generator started from the same seed, which would tie
  the steps' coin flips together (a flip would always come with a shift and a brightness change);
  `Augmentation` has all the steps draw from one generator instead. Without a seed it draws from
  fresh entropy in each process, so forked loader workers do not repeat each other's draws
  (albumentations ignores the NumPy and `random` seeds the workers set).
- **uint8 transport.** `output="uint8"` makes the transform stop before normalisation and
  return uint8 tensors (bg, fg_bg 3xSxS; mask 1xSxS 0/1; depth 1xSxS 0..255): a quarter of the
  bytes to ship from a worker and no per-sample float work. `BatchNormaliser` / `prepare_batch`
  then move the batch to the device and convert it there, to the same values as the float path.
"""

from __future__ import annotations

import os
import random
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch


def nearest_exact_index(source: int, size: int) -> np.ndarray:
    """The source index OpenCV's ``INTER_NEAREST_EXACT`` reads for each of `size` outputs (asked of
    OpenCV itself: its fixed-point arithmetic is not the exact ratio either)."""
    line = np.arange(source, dtype=np.float32)[None, :]
    return cv2.resize(line, (size, 1), interpolation=cv2.INTER_NEAREST_EXACT)[0].astype(np.int64)


def resize_nearest(tensor: torch.Tensor, size: int) -> torch.Tensor:
    """(…, H, W) to (…, size, size) reading the pixels the targets' resize reads (`nearest_exact_index`)."""
    rows, columns = (torch.from_numpy(nearest_exact_index(n, size)).to(tensor.device) for n in tensor.shape[-2:])
    return tensor.index_select(-2, rows).index_select(-1, columns)


SHIFT = 0.06
"""The largest shift, a fraction of the width and of the height (see the module's doc)."""


class Augmentation(A.Compose):
    """``A.Compose`` on fg_bg (``image``), bg, mask and depth whose steps all draw from one
    generator pair, and which, without a seed, draws from fresh entropy in each process (see
    the module's doc, *Seeding*)."""

    def __init__(self, steps: list, seed: int | None = None):
        super().__init__(steps, additional_targets={"bg": "image", "depth": "mask"}, seed=seed)

    def set_random_seed(self, seed: int | None) -> None:
        """Restart the draws from `seed` (None: fresh entropy)."""
        self.seed, self._pid = seed, os.getpid()
        self.set_random_state(np.random.default_rng(seed), random.Random(seed))

    def __call__(self, *args: Any, force_apply: bool = False, **data: Any) -> dict[str, Any]:
        if self.seed is None and self._pid != os.getpid():  # a forked worker: its own draws
            self.set_random_seed(None)
        return super().__call__(*args, force_apply=force_apply, **data)


def augmentation_steps(size: int, train: bool, geometric: bool = True, photometric: bool = True) -> list:
    """The albumentations steps of the transform at `size` px: the resize, then for training the
    shared flip and whole-pixel shift and the colour changes of the RGB inputs."""
    steps: list = [A.Resize(size, size, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST_EXACT)]
    if train and geometric:
        padded = size + 2 * round(SHIFT * size)  # the reach on every side
        steps += [
            A.HorizontalFlip(p=0.5),
            A.Sequential(  # a shift of up to the reach each way, in whole pixels, borders 0
                [
                    A.PadIfNeeded(padded, padded, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
                    A.RandomCrop(size, size),
                ],
                p=0.7,
            ),
        ]
    if train and photometric:
        steps += [
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.HueSaturationValue(hue_shift_limit=5, sat_shift_limit=15, val_shift_limit=0, p=0.5),
            A.GaussNoise(std_range=(0.01, 0.03), p=0.3),
        ]
    return steps


def _stats(stats: dict, kind: str) -> tuple[np.ndarray, np.ndarray]:
    table = stats.get("statistics", stats)  # a whole manifest or its statistics
    entry = table[kind]
    return np.asarray(entry["mean"], dtype=np.float32), np.asarray(entry["std"], dtype=np.float32)


def image_normalisation(stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) per channel with ``x * scale + shift == (x / 255 - mean) / std`` for uint8
    x, from the backgrounds' statistics (used for both RGB inputs: see the module's doc)."""
    mean, std = _stats(stats, "bg")
    return 1.0 / (255.0 * std), -mean / std


def _normalise(image: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 to float32 3xHxW, x * scale + shift per channel (planar: NumPy's broadcast
    over a trailing axis of 3 is ~10x slower)."""
    planes = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()  # uint8 transpose first
    return planes.mul_(torch.from_numpy(scale).view(3, 1, 1)).add_(torch.from_numpy(shift).view(3, 1, 1))


def uint8_tensors(arrays: dict) -> dict[str, torch.Tensor]:
    """uint8 arrays bg, fg_bg (HxWx3), mask (HxW, 0/1), depth (HxW) as uint8 CxHxW tensors."""
    return {
        "bg": torch.from_numpy(np.ascontiguousarray(arrays["bg"].transpose(2, 0, 1))),
        "fg_bg": torch.from_numpy(np.ascontiguousarray(arrays["fg_bg"].transpose(2, 0, 1))),
        "mask": torch.from_numpy(np.ascontiguousarray(arrays["mask"]))[None],
        "depth": torch.from_numpy(np.ascontiguousarray(arrays["depth"]))[None],
    }


OUTPUTS = ("float", "uint8")


class FgBgTransform:
    """Callable on uint8 arrays bg, fg_bg (HxWx3), mask (HxW, 0/1), depth (HxW); returns float32
    tensors bg, fg_bg (3xSxS, normalised), mask (1xSxS, 0/1) and depth (1xSxS, 0..1), or with
    ``output="uint8"`` the same as uint8 tensors before normalisation (`uint8_tensors`; convert
    a batch of them on the device with `BatchNormaliser`)."""

    def __init__(
        self,
        size: int,
        train: bool,
        stats: dict,
        photometric: bool = True,
        geometric: bool = True,
        seed: int | None = None,
        output: str = "float",
    ):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.size, self.train, self.output = size, train, output
        self.stats = stats
        self.pipeline = Augmentation(augmentation_steps(size, train, geometric, photometric), seed)
        # (x / 255 - mean) / std as one multiply-add per pixel, the same for both inputs
        self.scale, self.shift = image_normalisation(stats)

    def augment(self, bg: np.ndarray, fg_bg: np.ndarray, mask: np.ndarray, depth: np.ndarray) -> dict:
        """The uint8 arrays resized and, for training, augmented (before normalisation)."""
        out = self.pipeline(image=fg_bg, bg=bg, mask=mask, depth=depth)
        return {"bg": out["bg"], "fg_bg": out["image"], "mask": out["mask"], "depth": out["depth"]}

    def __call__(self, bg: np.ndarray, fg_bg: np.ndarray, mask: np.ndarray, depth: np.ndarray) -> dict:
        out = self.augment(bg, fg_bg, mask, depth)
        if self.output == "uint8":
            return uint8_tensors(out)
        return {
            "bg": _normalise(out["bg"], self.scale, self.shift),
            "fg_bg": _normalise(out["fg_bg"], self.scale, self.shift),
            "mask": torch.from_numpy(np.ascontiguousarray(out["mask"]))[None].float(),
            "depth": torch.from_numpy(np.ascontiguousarray(out["depth"]))[None].float().div_(255.0),
        }

    def denormalise(self, image: torch.Tensor) -> torch.Tensor:
        """Back to 0..1 RGB (for display), bg or fg_bg alike."""
        # normalised = value01 * scale + shift; works on CxHxW and BxCxHxW, on any device
        scale = torch.as_tensor(self.scale * 255.0, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        shift = torch.as_tensor(self.shift, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        return (image - shift) / scale


def make_transforms(
    size: int, train: bool, stats: dict, photometric: bool = True, seed: int | None = None, output: str = "float"
) -> FgBgTransform:
    """The course's augmentation at `size` pixels (train) or just resize + normalise (eval).

    `stats` is a manifest or its ``statistics`` (per kind ``mean``/``std`` on the 0..1 scale);
    `seed` fixes the random draws (reproducible augmentation); `output="uint8"`
    returns uint8 tensors to be normalised on the device (`BatchNormaliser`).
    """
    return FgBgTransform(size, train, stats, photometric=photometric, seed=seed, output=output)


# --- on-device conversion of uint8 batches ---------------------------------------------------


class BatchNormaliser:
    """Converts a uint8 batch (bg, fg_bg Bx3xHxW; mask Bx1xHxW 0/1; depth Bx1xHxW 0..255), on
    whatever device it lives, to the float format of the float path: bg and fg_bg normalised with
    `stats` exactly as `FgBgTransform` does (``x * scale + shift`` in float32, the same
    constants), mask float {0, 1}, depth float / 255. `stats=None` gives images / 255 (the
    datasets' format without a transform, bit for bit). Float tensors pass through unchanged, so a batch from
    a float loader is accepted too. `.to(device)` moves the constants.
    """

    def __init__(self, stats: dict | None = None, device: str | torch.device = "cpu"):
        self.stats = stats
        if stats is None:
            self._constants = (np.full(3, 1.0 / 255.0, dtype=np.float32), None)
        else:
            self._constants = image_normalisation(stats)
        self.to(device)

    def to(self, device: str | torch.device) -> BatchNormaliser:
        self.device = torch.device(device)
        self.constants = tuple(
            None if c is None else torch.from_numpy(c).view(1, 3, 1, 1).to(self.device) for c in self._constants
        )
        return self

    def __call__(self, batch: dict) -> dict:
        out = dict(batch)
        for key in ("bg", "fg_bg"):
            value = batch.get(key)
            if torch.is_tensor(value) and value.dtype == torch.uint8:
                scale, shift = self.constants
                if scale.device != value.device:
                    scale, shift = scale.to(value.device), None if shift is None else shift.to(value.device)
                image = value.float()
                out[key] = image.div_(255.0) if shift is None else image.mul_(scale).add_(shift)
        if torch.is_tensor(batch.get("mask")) and batch["mask"].dtype == torch.uint8:
            out["mask"] = batch["mask"].float()
        if torch.is_tensor(batch.get("depth")) and batch["depth"].dtype == torch.uint8:
            out["depth"] = batch["depth"].float().div_(255.0)
        return out


def prepare_batch(
    batch: dict,
    device: str | torch.device,
    normaliser: BatchNormaliser | None = None,
    channels_last: bool = False,
) -> dict:
    """A batch on `device` in the float format: tensors moved non_blocking (from pinned memory on
    CUDA; pinned here if the loader did not), uint8 images, mask and depth converted there by
    `normaliser` (None = `BatchNormaliser(None)`: images / 255). Non-tensor values pass through.
    `channels_last` lays bg and fg_bg out NHWC (after the conversion)."""
    device = torch.device(device)
    moved = {}
    for key, value in batch.items():
        if torch.is_tensor(value):
            if device.type == "cuda" and value.device.type == "cpu" and not value.is_pinned():
                value = value.pin_memory()
            value = value.to(device, non_blocking=True)
        moved[key] = value
    out = (normaliser or BatchNormaliser(None, device))(moved)
    if channels_last:
        for key in ("bg", "fg_bg"):
            if torch.is_tensor(out.get(key)) and out[key].dim() == 4:
                out[key] = out[key].contiguous(memory_format=torch.channels_last)
    return out
