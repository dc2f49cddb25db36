"""Augmentation for the fg/bg task: one geometry for all four images, one colour change for both
RGB inputs, per-input normalisation, then tensors. Plain OpenCV/NumPy on uint8 arrays, one
seeded generator (`Augmentation`).

Choices:

- **Resize first, then augment at the output size.** Every transform, training or evaluation,
  starts with the same resize to `size` (any size, e.g. 64..224), so the training images are read
  from the stored ones exactly as the evaluation's are. Images use OpenCV's ``INTER_LINEAR``,
  mask and depth ``INTER_NEAREST_EXACT``: it takes the source pixel under each output pixel's
  centre, where ``INTER_LINEAR`` samples the images. Plain ``INTER_NEAREST`` takes
  ``floor(x * scale)``, about a third of an output pixel up and left of that centre at 224 -> 96
  px; measured on the demo dataset, its 96 px masks agree with the image-aligned (area-averaged)
  mask at only 0.73 mean IoU per image, against 0.95 for the exact variant: a ceiling on any
  model's score. Torch's ``nearest-exact`` is meant to be the same, but at many sizes (224 -> 40,
  80, 168 px…) float rounding picks the neighbouring row where a centre falls exactly between
  two, so the virtual dataset and the evaluation's background depth use `resize_nearest`, which
  reads the rows and columns OpenCV reads. ``INTER_LINEAR`` reads the four source pixels around
  each centre and averages no area when it shrinks, so a thin part is dashed in the image just
  as in its target (an area-averaged image would show it faintly where the target has nothing).
- **Geometry is shared and whole-pixel.** A horizontal flip (p 0.5) and a shift (p 0.7) of up
  to `SHIFT` of the frame in each direction, rounded to whole output pixels, act with the same
  draw on bg, fg_bg, mask and depth. Whole pixels move every image by copying, with no second
  interpolation: the mask stays exactly 0/1, the depth keeps its stored levels, mask and image
  stay on the same pixel grid, and the images are as sharp as the evaluation's. Doing it after
  the resize costs a copy of the small image instead of a warp of the stored one (an affine warp
  of the four 224 px images took most of a training sample's time). Borders that the shift
  uncovers are 0 in every image (black RGB, no mask, depth 0 = far).
- **No rotation, no zoom.** A level camera sees the ground's inverse depth grow linearly with
  the row, the same in every column, at a slope set by the camera (`fgbg_net` draws exactly that
  ramp, with one learnt camera height). A rotation tilts the ramp, which no level camera shows; a
  zoom changes its slope per row as a different camera would. A shift only moves the horizon,
  which the network finds per image.
- **Colour is shared by the two RGB inputs only.** Brightness/contrast (p 0.5: ``x * a + b``,
  a in 0.8..1.2, b in -0.2..0.2 of 255), hue/saturation (p 0.5: hue by up to 5 of OpenCV's 180
  steps, saturation by up to 15 levels, grey pixels kept grey) and a little Gaussian noise (p
  0.3, std 1..3 % of 255) touch bg and fg_bg, never mask or depth, with one draw and one noise
  map for both: outside the object, bg pixels still equal fg_bg pixels, which is what makes the
  mask recoverable from the pair. (Real photo pairs would differ a little there; independent
  changes would teach the network that the whole frame changed.)
- **No cutout / random erasing / crops that drop the object.** Erasing a patch of fg_bg
  would either erase (part of) the object while the mask still marks it, or, outside the
  object, create a bg/fg_bg difference that is not an object: either way the mask target
  would lie. Erasing the same patch in both inputs is pointless for the mask (it removes the
  evidence only) and the depth target would still describe the erased scene.
- **One normalisation for both RGB inputs**: the backgrounds' mean/std from the manifest.
  Equal pixels must stay equal after normalising, since the object is where the two differ;
  with each input's own statistics (fg_bg's differ by about 1 %) every unchanged pixel would
  differ by up to 3 grey levels' worth. mask stays 0/1 and depth 0..1 (targets, not normalised).
- **Evaluation** (`train=False`) is only the resize, normalisation and tensors; a training
  transform whose draw moves and recolours nothing gives exactly the same.
- **Seeding.** `seed` makes the draws reproducible; `pipeline.set_random_seed(seed)` restarts
  them (training reseeds per sample, so augmentation is a function of seed, epoch and sample).
  Without a seed each process draws from fresh entropy, so forked loader workers do not repeat
  each other's draws.
- **uint8 transport.** `output="uint8"` makes the transform stop before normalisation and
  return uint8 tensors (bg, fg_bg 3xSxS; mask 1xSxS 0/1; depth 1xSxS 0..255): a quarter of the
  bytes to ship from a worker and no per-sample float work. `BatchNormaliser` / `prepare_batch`
  then move the batch to the device and convert it there, to the same values as the float path.
"""

from __future__ import annotations

import os

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

IMAGES, TARGETS = ("bg", "fg_bg"), ("mask", "depth")


def resize_sample(arrays: dict, size: int) -> dict[str, np.ndarray]:
    """bg, fg_bg (HxWx3) bilinear and mask, depth (HxW) at the pixel centres (``INTER_NEAREST_EXACT``),
    all to `size` x `size` (new arrays, also at the same size)."""
    linear, centred = cv2.INTER_LINEAR, cv2.INTER_NEAREST_EXACT
    return {
        key: cv2.resize(arrays[key], (size, size), interpolation=linear if key in IMAGES else centred)
        for key in IMAGES + TARGETS
    }


def shift_image(array: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """`array` (HxW or HxWxC) moved right by `dx` and down by `dy` whole pixels, uncovered pixels 0."""
    out = np.zeros_like(array)
    h, w = array.shape[:2]
    if abs(dx) < w and abs(dy) < h:
        out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = array[
            max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
    return out


class Augmentation:
    """The training transform's random steps on arrays already at the output size: shared flip and
    whole-pixel shift (`geometric`), shared colour change of bg and fg_bg (`photometric`), each
    drawn from one NumPy generator (see the module's doc for the ranges and why)."""

    def __init__(self, geometric: bool = True, photometric: bool = True, seed: int | None = None):
        self.geometric, self.photometric = geometric, photometric
        self.set_random_seed(seed)

    def set_random_seed(self, seed: int | None) -> None:
        """Restart the draws from `seed` (None: fresh entropy, drawn again in each new process)."""
        self.seed, self._pid = seed, os.getpid()
        self.random = np.random.default_rng(seed)

    def _generator(self) -> np.random.Generator:
        if self.seed is None and self._pid != os.getpid():  # a forked worker: its own draws
            self.set_random_seed(None)
        return self.random

    def __call__(self, arrays: dict) -> dict[str, np.ndarray]:
        random, out = self._generator(), dict(arrays)
        size = out["fg_bg"].shape[0]
        if self.geometric:
            if random.random() < 0.5:
                out = {key: value[:, ::-1] for key, value in out.items()}
            if random.random() < 0.7:
                dx, dy = (int(round(f * size)) for f in random.uniform(-SHIFT, SHIFT, 2))
                out = {key: shift_image(value, dx, dy) for key, value in out.items()}
        if self.photometric:
            for change in (self._brightness_contrast, self._hue_saturation, self._noise):
                change(random, out)
        return {key: np.ascontiguousarray(value) for key, value in out.items()}

    @staticmethod
    def _brightness_contrast(random: np.random.Generator, out: dict) -> None:
        if random.random() < 0.5:
            gain, offset = 1.0 + random.uniform(-0.2, 0.2), random.uniform(-0.2, 0.2) * 255.0
            table = np.clip(np.arange(256) * gain + offset, 0, 255).round().astype(np.uint8)
            for key in IMAGES:
                out[key] = cv2.LUT(out[key], table)

    @staticmethod
    def _hue_saturation(random: np.random.Generator, out: dict) -> None:
        if random.random() < 0.5:
            hue, saturation = random.uniform(-5, 5), random.uniform(-15, 15)
            hue_table = np.mod(np.arange(256) + hue, 180).astype(np.uint8)
            levels = np.arange(256)
            saturation_table = np.where(levels == 0, 0, np.clip(levels + saturation, 0, 255)).round().astype(np.uint8)
            value_table = levels.astype(np.uint8)
            table = np.stack([hue_table, saturation_table, value_table], axis=1)[:, None, :]
            for key in IMAGES:
                hsv = cv2.LUT(cv2.cvtColor(out[key], cv2.COLOR_RGB2HSV), table)
                out[key] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)

    @staticmethod
    def _noise(random: np.random.Generator, out: dict) -> None:
        if random.random() < 0.3:
            std = random.uniform(0.01, 0.03) * 255.0
            noise = np.empty(out["fg_bg"].shape, np.int16)
            cv2.setRNGSeed(int(random.integers(2**31)))  # OpenCV's generator: 4x NumPy's speed here
            cv2.randn(noise.reshape(noise.shape[0], -1), 0.0, std)  # rounded N(0, std) in every channel
            for key in IMAGES:
                out[key] = cv2.add(out[key], noise, dtype=cv2.CV_8U)  # the sum clipped to 0..255


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
        self.pipeline = Augmentation(geometric, photometric, seed) if train else None
        # (x / 255 - mean) / std as one multiply-add per pixel, the same for both inputs
        self.scale, self.shift = image_normalisation(stats)

    def augment(self, bg: np.ndarray, fg_bg: np.ndarray, mask: np.ndarray, depth: np.ndarray) -> dict:
        """The uint8 arrays resized and, for training, augmented (before normalisation)."""
        out = resize_sample({"bg": bg, "fg_bg": fg_bg, "mask": mask, "depth": depth}, self.size)
        return out if self.pipeline is None else self.pipeline(out)

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
