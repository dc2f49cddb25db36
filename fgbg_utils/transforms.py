"""Augmentation for the fg/bg task with albumentations: one geometry for all four images, one
colour change for both RGB inputs, per-input normalisation, then tensors.

Choices:

- **Geometry is shared.** HorizontalFlip, a small Affine (scale 0.9..1.1, shift up to 6 %,
  rotation up to 10 degrees) and Resize to `size` (any size, e.g. 64..224) act with the same
  random parameters on bg, fg_bg, mask and depth: bg is declared an extra ``image`` target and
  depth an extra ``mask`` target (``additional_targets={"bg": "image", "depth": "mask"}``).
  Mask-type targets use nearest-neighbour interpolation, so the mask stays exactly 0/1 and
  the depth keeps its stored levels (no smearing of the object's depth into the ground's).
  Borders that Affine uncovers are 0 in every image (black RGB, no mask, depth 0 = far).
- **Colour is shared by the two RGB inputs only.** Brightness/contrast, hue/saturation and a
  little Gaussian noise touch bg and fg_bg (image-type targets), never mask or depth.
  albumentations draws one set of parameters per call, including the noise map, so bg and
  fg_bg get the *same* change: outside the object, bg pixels still equal fg_bg pixels, which
  is what makes the mask recoverable from the pair. (Real photo pairs would differ a little
  there; independent changes would teach the network that the whole frame changed.)
- **No cutout / random erasing / crops that drop the object.** Erasing a patch of fg_bg
  would either erase (part of) the object while the mask still marks it, or, outside the
  object, create a bg/fg_bg difference that is not an object: either way the mask target
  would lie. Erasing the same patch in both inputs is pointless for the mask (it removes the
  evidence only) and the depth target would still describe the erased scene.
- **Normalisation per input.** bg uses the manifest's ``bg`` mean/std and fg_bg its
  ``fg_bg_decoded`` statistics (the JPEGs as a loader sees them) when `stats` has them, else
  ``fg_bg``. mask stays 0/1 and depth 0..1 (targets, not normalised).
- **Evaluation** (`train=False`) is only Resize, normalisation and tensors.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import torch

GEOMETRY = {"scale": (0.9, 1.1), "translate_percent": (-0.06, 0.06), "rotate": (-10.0, 10.0)}


def _stats(stats: dict, kind: str) -> tuple[np.ndarray, np.ndarray]:
    table = stats.get("statistics", stats)  # a whole manifest or its statistics
    entry = table[kind]
    return np.asarray(entry["mean"], dtype=np.float32), np.asarray(entry["std"], dtype=np.float32)


def _normalise(image: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 to float32 3xHxW, x * scale + shift per channel (planar: NumPy's broadcast
    over a trailing axis of 3 is ~10x slower)."""
    planes = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()  # uint8 transpose first
    return planes.mul_(torch.from_numpy(scale).view(3, 1, 1)).add_(torch.from_numpy(shift).view(3, 1, 1))


class FgBgTransform:
    """Callable on uint8 arrays bg, fg_bg (HxWx3), mask (HxW, 0/1), depth (HxW); returns float32
    tensors bg, fg_bg (3xSxS, normalised), mask (1xSxS, 0/1) and depth (1xSxS, 0..1)."""

    def __init__(
        self,
        size: int,
        train: bool,
        stats: dict,
        photometric: bool = True,
        geometric: bool = True,
        seed: int | None = None,
    ):
        self.size, self.train = size, train
        linear, nearest = cv2.INTER_LINEAR, cv2.INTER_NEAREST
        steps: list = []
        if train and geometric:
            steps += [
                A.HorizontalFlip(p=0.5),
                A.Affine(
                    **GEOMETRY,
                    interpolation=linear,
                    mask_interpolation=nearest,
                    fill=0,
                    fill_mask=0,
                    border_mode=cv2.BORDER_CONSTANT,
                    p=0.7,
                ),
            ]
        steps.append(A.Resize(size, size, interpolation=linear, mask_interpolation=nearest))
        if train and photometric:
            steps += [
                A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
                A.HueSaturationValue(hue_shift_limit=5, sat_shift_limit=15, val_shift_limit=0, p=0.5),
                A.GaussNoise(std_range=(0.01, 0.03), p=0.3),
            ]
        self.pipeline = A.Compose(steps, additional_targets={"bg": "image", "depth": "mask"}, seed=seed)
        bg_mean, bg_std = _stats(stats, "bg")
        table = stats.get("statistics", stats)
        fg_mean, fg_std = _stats(stats, "fg_bg_decoded" if "fg_bg_decoded" in table else "fg_bg")
        # (x / 255 - mean) / std as one multiply-add per pixel
        self.bg_scale, self.bg_shift = 1.0 / (255.0 * bg_std), -bg_mean / bg_std
        self.fg_scale, self.fg_shift = 1.0 / (255.0 * fg_std), -fg_mean / fg_std

    def augment(self, bg: np.ndarray, fg_bg: np.ndarray, mask: np.ndarray, depth: np.ndarray) -> dict:
        """The uint8 arrays after the geometric and photometric steps (before normalisation)."""
        out = self.pipeline(image=fg_bg, bg=bg, mask=mask, depth=depth)
        return {"bg": out["bg"], "fg_bg": out["image"], "mask": out["mask"], "depth": out["depth"]}

    def __call__(self, bg: np.ndarray, fg_bg: np.ndarray, mask: np.ndarray, depth: np.ndarray) -> dict:
        out = self.augment(bg, fg_bg, mask, depth)
        return {
            "bg": _normalise(out["bg"], self.bg_scale, self.bg_shift),
            "fg_bg": _normalise(out["fg_bg"], self.fg_scale, self.fg_shift),
            "mask": torch.from_numpy(np.ascontiguousarray(out["mask"]))[None].float(),
            "depth": torch.from_numpy(np.ascontiguousarray(out["depth"]))[None].float().div_(255.0),
        }

    def denormalise(self, image: torch.Tensor, kind: str = "fg_bg") -> torch.Tensor:
        """Back to 0..1 RGB (for display)."""
        scale, shift = (self.bg_scale, self.bg_shift) if kind == "bg" else (self.fg_scale, self.fg_shift)
        # normalised = value01 * scale + shift; works on CxHxW and BxCxHxW, on any device
        scale = torch.as_tensor(scale * 255.0, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        shift = torch.as_tensor(shift, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        return (image - shift) / scale


def make_transforms(
    size: int, train: bool, stats: dict, photometric: bool = True, seed: int | None = None
) -> FgBgTransform:
    """The course's augmentation at `size` pixels (train) or just resize + normalise (eval).

    `stats` is a manifest or its ``statistics`` (per kind ``mean``/``std`` on the 0..1 scale);
    `seed` fixes albumentations' random draws (reproducible augmentation).
    """
    return FgBgTransform(size, train, stats, photometric=photometric, seed=seed)
