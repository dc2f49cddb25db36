"""The training augmentation of `fgbg_utils.transforms` for whole batches, on any device.

For batches already at the training size (bg, fg_bg Bx3xHxW; mask, depth Bx1xHxW; uint8 0..255 or
float 0..1), e.g. from `VirtualFgBgDataset`, which composes them on the training device: no per-sample
CPU work. The steps, probabilities and ranges are those of `transforms.augmentation_steps`:

- **Geometry, per sample, one draw for all four images**: a horizontal flip (p 0.5), then a shift
  (p 0.7) of up to ``round(SHIFT * size)`` whole pixels each way (uniform, as padding that many zero
  pixels and cropping at a random position draws it), the uncovered border 0. Pixels are copied by
  index, never interpolated: the mask stays 0/1 and the depth keeps its levels.
- **Colour, per sample, one draw for bg and fg_bg, never mask or depth**: brightness/contrast (p 0.5)
  ``x * (1 + c) + b * peak`` with b, c uniform in +-0.2 (albumentations' formula); hue and saturation
  (p 0.5) as one 3x3 matrix in YIQ space, a rotation of the chroma plane by up to `HUE_DEGREES` (OpenCV's
  hue shift of 5 on its 0..180 scale) and a scaling of the chroma by 1 +- `SATURATION` (the relative
  change that albumentations' additive 15 on the 0..255 saturation makes at mid saturation): luma is kept
  and grey (zero chroma) stays grey; Gaussian noise (p 0.3) with a std of 1..3 % of the peak, one noise
  map added to both. Outside the object, equal bg and fg_bg pixels stay equal. The first two are one
  affine map per sample, clipped to 0..peak once (albumentations clips between them), the noise is
  clipped again; uint8 batches are rounded to uint8 after each (as albumentations' uint8 steps are).
- **Where it runs**: in torch on the batch's device, but for uint8 batches on a CPU (a loader
  worker's), which OpenCV recolours about twice as fast, its 8-bit colour map in fixed point: within a
  level of the float map. Flips and shifts go through NumPy on a CPU.
- **Seeding.** `draw` takes a CPU ``torch.Generator`` (training seeds it from its seed, epoch and the
  batch's samples: a resumed run repeats the draws); the noise is drawn on the batch's device from a seed
  taken from that generator, so the same generator gives the same batch on one device (CPU and CUDA
  streams differ). A sample none of whose steps fires is returned exactly as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .transforms import SHIFT

FLIP_P, SHIFT_P = 0.5, 0.7
BRIGHTNESS_CONTRAST_P, BRIGHTNESS, CONTRAST = 0.5, 0.2, 0.2
HUE_SATURATION_P, HUE_DEGREES, SATURATION = 0.5, 10.0, 15.0 / 128.0
NOISE_P, NOISE_STD = 0.3, (0.01, 0.03)
CPU_CHUNK_PIXELS = 2**17
"""Pixels per sample times samples that `recolour_torch` converts to float at once on a CPU (float
batches: uint8 ones go through OpenCV there)."""

RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], dtype=torch.float64
)
"""NTSC YIQ: Y the luma, I and Q the chroma plane (rows of I and Q sum to 0: grey has no chroma)."""


@dataclass
class Draws:
    """One batch's random parameters (tensors of length B on the CPU); a step's value for a sample it
    does not touch is its neutral value (no flip, shift 0, factor 1, offset 0, angle 0, std 0)."""

    flip: torch.Tensor
    shift_y: torch.Tensor
    shift_x: torch.Tensor
    contrast: torch.Tensor
    brightness: torch.Tensor
    hue: torch.Tensor
    """Chroma rotation in radians."""
    saturation: torch.Tensor
    """Chroma scale."""
    noise_std: torch.Tensor
    """Noise std as a fraction of the peak."""
    noise_seed: int

    @classmethod
    def neutral(cls, n: int) -> Draws:
        """Draws that change nothing."""
        zeros, ones = torch.zeros(n), torch.ones(n)
        none = torch.zeros(n, dtype=torch.int64)
        return cls(none.bool(), none, none.clone(), ones, zeros, zeros.clone(), ones.clone(), zeros.clone(), 0)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64).mul_(high - low).add_(low).float()


def _coin(n: int, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64) < p


class BatchAugmentation:
    """Callable ``(batch, generator) -> batch``: `draw` then `apply` (see the module's doc).
    `geometric` / `photometric` False leave that part out, as `make_transforms` does."""

    def __init__(self, geometric: bool = True, photometric: bool = True):
        self.geometric, self.photometric = geometric, photometric

    def draw(self, n: int, height: int, width: int, generator: torch.Generator) -> Draws:
        """The parameters of a batch of `n` samples of `height` x `width` px, from `generator` (CPU)."""
        draws = Draws.neutral(n)
        if self.geometric:
            draws.flip = _coin(n, FLIP_P, generator)
            shifted = _coin(n, SHIFT_P, generator)
            for name, size in (("shift_y", height), ("shift_x", width)):
                reach = round(SHIFT * size)
                shift = torch.randint(-reach, reach + 1, (n,), generator=generator)
                setattr(draws, name, torch.where(shifted, shift, 0))
        if self.photometric:
            chosen = _coin(n, BRIGHTNESS_CONTRAST_P, generator)
            draws.brightness = torch.where(chosen, _uniform(n, -BRIGHTNESS, BRIGHTNESS, generator), 0.0)
            draws.contrast = torch.where(chosen, 1.0 + _uniform(n, -CONTRAST, CONTRAST, generator), 1.0)
            chosen = _coin(n, HUE_SATURATION_P, generator)
            angle = math.radians(HUE_DEGREES)
            draws.hue = torch.where(chosen, _uniform(n, -angle, angle, generator), 0.0)
            draws.saturation = torch.where(chosen, 1.0 + _uniform(n, -SATURATION, SATURATION, generator), 1.0)
            chosen = _coin(n, NOISE_P, generator)
            draws.noise_std = torch.where(chosen, _uniform(n, *NOISE_STD, generator), 0.0)
        draws.noise_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return draws

    def apply(self, batch: dict, draws: Draws) -> dict:
        """`batch` with bg, fg_bg, mask and depth augmented by `draws`; other keys pass through."""
        out = dict(batch)
        if bool(draws.flip.any() or draws.shift_y.any() or draws.shift_x.any()):
            for key in ("bg", "fg_bg", "mask", "depth"):
                if key in batch:
                    out[key] = move(batch[key], draws)
        changes_colour = (draws.contrast != 1) | (draws.brightness != 0) | (draws.hue != 0)
        changes_colour |= (draws.saturation != 1) | (draws.noise_std > 0)
        if bool(changes_colour.any()):
            out["bg"], out["fg_bg"] = recolour([out["bg"], out["fg_bg"]], draws)
        return out

    def __call__(self, batch: dict, generator: torch.Generator) -> dict:
        height, width = batch["fg_bg"].shape[-2:]
        return self.apply(batch, self.draw(len(batch["fg_bg"]), height, width, generator))


def move(images: torch.Tensor, draws: Draws) -> torch.Tensor:
    """Each sample of `images` (BxCxHxW) flipped horizontally where `draws.flip`, then moved by
    (`shift_y`, `shift_x`) whole pixels (``out[y, x] = in[y - shift_y, x - shift_x]``), 0 where that
    falls outside (`move_into`); through NumPy for the CPU's uint8 and float32 batches, whose slices
    cost half of torch's per call on images this small."""
    out = torch.zeros_like(images)
    if images.device.type == "cpu" and images.dtype in (torch.uint8, torch.float32) and not images.requires_grad:
        move_into(images.numpy(), out.numpy(), draws)
    else:
        move_into(images, out, draws)
    return out


def move_into(source: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, draws: Draws) -> None:
    """`move` from `source` into `target` (zeros, the same shape; NumPy arrays or tensors): one slice
    copy per sample (a gather reading a per-pixel index is several times slower on a CPU, and a batch
    has tens of samples)."""
    height, width = source.shape[-2:]
    moves = zip(draws.flip.tolist(), draws.shift_y.tolist(), draws.shift_x.tolist(), strict=True)
    for b, (flip, dy, dx) in enumerate(moves):
        image = source[b]
        if flip:
            image = image[..., ::-1] if isinstance(image, np.ndarray) else image.flip(-1)
        target[b, :, max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = image[
            :, max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
        ]


def colour_matrices(hue: torch.Tensor, saturation: torch.Tensor) -> torch.Tensor:
    """Bx3x3 RGB matrices rotating the YIQ chroma plane by `hue` radians and scaling it by `saturation`."""
    n = len(hue)
    cos, sin = torch.cos(hue.double()) * saturation, torch.sin(hue.double()) * saturation
    chroma = torch.zeros(n, 3, 3, dtype=torch.float64)
    chroma[:, 0, 0] = 1.0
    chroma[:, 1, 1], chroma[:, 1, 2], chroma[:, 2, 1], chroma[:, 2, 2] = cos, -sin, sin, cos
    return torch.linalg.inv(RGB_TO_YIQ) @ chroma @ RGB_TO_YIQ


def recolour(images: list[torch.Tensor], draws: Draws) -> list[torch.Tensor]:
    """The colour steps on each image batch in `images` (the same draws and noise for each), returned
    in their dtype. Brightness/contrast and hue/saturation are applied as one affine map per sample
    (``M (c x + b) = (M c) x + b``: M keeps grey, so it keeps the offset b on every channel), clipped
    once and, for uint8 batches, rounded to uint8 (as albumentations' uint8 steps are); then the noise,
    clipped and rounded again. A sample with neutral draws comes back unchanged. uint8 batches on a CPU
    are recoloured by OpenCV (`recolour_opencv`), the rest in torch (`recolour_torch`)."""
    maps = colour_maps(draws, peak_value(images[0].dtype))
    noise = draw_noise(draws, images[0])
    if images[0].device.type == "cpu" and images[0].dtype == torch.uint8:
        return [recolour_opencv(image, *maps, noise) for image in images]
    return [recolour_torch(image, *maps, noise) for image in images]


def peak_value(dtype: torch.dtype) -> float:
    """The value of white in batches of `dtype`: 255 for uint8, 1 for float."""
    return 255.0 if dtype == torch.uint8 else 1.0


def colour_maps(draws: Draws, peak: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's colour map as float32 Bx3x3 matrices and Bx3 offsets (in units of `peak`) on the
    CPU; a sample whose hue, saturation and contrast are neutral gets exactly the identity matrix."""
    n = len(draws.hue)
    matrices = colour_matrices(draws.hue, draws.saturation) * draws.contrast.double().view(n, 1, 1)
    matrices[(draws.hue == 0) & (draws.saturation == 1) & (draws.contrast == 1)] = torch.eye(3, dtype=torch.float64)
    offsets = (draws.brightness.double() * peak).view(n, 1).expand(n, 3)
    return matrices.float(), offsets.float().contiguous()


@dataclass
class Noise:
    """The noise maps of a batch's noisy samples (float32, in units of the batch's peak)."""

    maps: torch.Tensor
    """len(noisy)xCxHxW on the batch's device."""
    row: torch.Tensor
    """For each sample, its row in `maps`, or -1 (no noise)."""


def draw_noise(draws: Draws, like: torch.Tensor) -> Noise:
    """The Gaussian noise maps of `draws` for batches shaped like `like`, drawn on its device from
    `draws.noise_seed`; one set serves bg and fg_bg."""
    peak = peak_value(like.dtype)
    noisy = torch.nonzero(draws.noise_std > 0).flatten()
    row = torch.full((len(draws.noise_std),), -1, dtype=torch.int64)
    row[noisy] = torch.arange(len(noisy))
    generator = torch.Generator(device=like.device).manual_seed(draws.noise_seed)
    std = draws.noise_std[noisy].to(like.device).view(-1, 1, 1, 1) * peak
    maps = torch.randn((len(noisy), *like.shape[1:]), generator=generator, device=like.device).mul_(std)
    return Noise(maps, row)


def recolour_torch(images: torch.Tensor, matrices: torch.Tensor, offsets: torch.Tensor, noise: Noise) -> torch.Tensor:
    """`recolour` of one batch (any device and dtype) in float32 torch operations. On a CPU the samples
    are worked on a few at a time (`CPU_CHUNK_PIXELS`), which keeps the float copies in cache."""
    dtype, device, n = images.dtype, images.device, len(images)
    peak, integer = peak_value(dtype), dtype == torch.uint8
    matrices, offsets = matrices.to(device), offsets.to(device)
    out = torch.empty_like(images)
    step = n if device.type != "cpu" else max(1, CPU_CHUNK_PIXELS // images[0, 0].numel())
    for start in range(0, n, step):
        part = slice(start, start + step)
        rows = noise.row[part]
        where, rows = torch.nonzero(rows >= 0).flatten().to(device), rows[rows >= 0].to(device)
        x = mix_channels(images[part].float(), matrices[part], offsets[part]).clamp_(0, peak)
        if integer:
            x.round_()
        if len(where):
            x = x.index_add_(0, where, noise.maps.index_select(0, rows)).clamp_(0, peak)
            if integer:
                x.round_()
        out[part] = x
    return out


def recolour_opencv(images: torch.Tensor, matrices: torch.Tensor, offsets: torch.Tensor, noise: Noise) -> torch.Tensor:
    """`recolour` of one uint8 batch on the CPU with OpenCV, a sample at a time: `cv2.transform` maps
    and rounds the interleaved pixels in one pass (its 8-bit path computes in fixed point, within
    one level of the float map), `cv2.add` adds the float noise and rounds. Half the time of
    `recolour_torch` on 96 px batches, whose float operations make some 17 passes over each image."""
    source, out = images.contiguous().numpy(), torch.empty_like(images, memory_format=torch.contiguous_format)
    target = out.numpy()
    n, channels, height, width = source.shape
    pixels = np.empty((height, width, channels), dtype=np.uint8)
    identity = torch.eye(3).expand(n, 3, 3).eq(matrices).all(2).all(1) & (offsets == 0).all(1)
    affine = torch.cat([matrices, offsets[:, :, None]], dim=2).numpy()
    for b, (unchanged, row) in enumerate(zip(identity.tolist(), noise.row.tolist(), strict=True)):
        if unchanged:
            target[b] = source[b]
        else:
            cv2.merge(list(source[b]), dst=pixels)
            cv2.transform(pixels, affine[b], dst=pixels)
            cv2.split(pixels, mv=list(target[b]))
        if row >= 0:
            planes = target[b].reshape(channels * height, width)  # a view: the sample's planes as one image
            cv2.add(planes, noise.maps[row].numpy().reshape(channels * height, width), dst=planes, dtype=cv2.CV_8U)
    return out


def mix_channels(images: torch.Tensor, matrices: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``matrices[b] @ pixel + offsets[b]`` for every pixel of each sample of `images` (Bx3xHxW), as
    per-sample multiply-adds of whole planes (twice as fast on a CPU as a batched 3x3 matmul)."""
    n = len(images)
    out = torch.empty_like(images)
    for c in range(3):
        plane = torch.mul(images[:, 0], matrices[:, c, 0].view(n, 1, 1), out=out[:, c])
        plane.addcmul_(images[:, 1], matrices[:, c, 1].view(n, 1, 1))
        plane.addcmul_(images[:, 2], matrices[:, c, 2].view(n, 1, 1)).add_(offsets[:, c].view(n, 1, 1))
    return out


def batch_generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded from the integers given (e.g. the run's seed, epoch and the batch's samples)."""
    seed = np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(seed))
