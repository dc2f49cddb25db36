"""Composition: where a foreground goes, how big it is, and how it is pasted.

One routine serves the dataset builder and on-the-fly composition, so the two cannot drift:
given the same background, foreground and box, `compose` returns the same fg_bg and mask bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .depth import GroundCamera

MASK_THRESHOLD = 0.5
"""A pixel belongs to the mask when the pasted (resized) alpha is at least this (0..1)."""
MIN_HEIGHT_FRACTION = 0.1
"""The smallest pasted foreground is this fraction of the image height."""


@dataclass(frozen=True)
class Box:
    """Where a foreground was pasted, in output pixels: columns x..x+w-1, rows y..y+h-1."""

    x: int
    y: int
    w: int
    h: int

    @property
    def foot_row(self) -> int:
        """The ground row the object stands on."""
        return self.y + self.h - 1

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)


def premultiply(rgba: np.ndarray, flip: bool = False) -> np.ndarray:
    """float32 premultiplied RGBA, optionally mirrored left-right: colour * alpha in 0..255,
    alpha in 0..1 (the scales the blend uses, so pasting needs no rescaling).

    Resizing premultiplied colour keeps transparent pixels' colour out of the edges.
    """
    image = rgba[:, ::-1] if flip else rgba
    out = image.astype(np.float32)
    out[..., 3] /= 255.0
    out[..., :3] *= out[..., 3:4]
    return np.ascontiguousarray(out)


def prepare_foreground(rgba: np.ndarray, flip: bool = False) -> list[np.ndarray]:
    """A premultiplied foreground as a pyramid: full size, then halved until it is small.

    Shrinking from the smallest level still larger than the target costs a fraction of
    shrinking from full size, with the same area-averaged result up to rounding.
    """
    levels = [premultiply(rgba, flip)]
    while min(levels[-1].shape[:2]) >= 32:
        h, w = levels[-1].shape[:2]
        levels.append(cv2.resize(levels[-1], (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    return levels


def resize_premultiplied(levels: list[np.ndarray], w: int, h: int) -> np.ndarray:
    """A prepared foreground resized to h x w, bilinear from the smallest pyramid level that is
    at least as large (mipmapping: each output pixel then blends at most about 2x2 source
    pixels' worth, so small pastes stay smooth without the cost of area averaging)."""
    source = levels[0]
    for level in levels[1:]:
        if level.shape[0] >= h and level.shape[1] >= w:
            source = level
    return cv2.resize(source, (w, h), interpolation=cv2.INTER_LINEAR)


def sample_box(
    rng: np.random.Generator,
    fg_shape: tuple[int, int],
    relative_height: float,
    camera: GroundCamera,
    size: int,
) -> Box:
    """One random placement, fully inside the frame, sized by the perspective rule.

    The foot row is uniform over the ground rows where the object is at least
    MIN_HEIGHT_FRACTION of the frame tall; the height is `camera.pixel_height` of that row
    (clamped so the top stays in the frame), the width keeps the foreground's aspect ratio
    (shrunk with the height if it would not fit), and x is uniform over the positions that fit.
    """
    fg_h, fg_w = fg_shape
    min_height = max(4.0, MIN_HEIGHT_FRACTION * size)
    horizon_px = camera.horizon * size
    lowest_foot = int(np.ceil(horizon_px - 0.5 + min_height / relative_height))
    foot = int(rng.integers(min(lowest_foot, size - 1), size))
    height = min(camera.pixel_height(foot, size, relative_height), foot + 1.0)
    width = height * fg_w / fg_h
    if width > size:
        height, width = height * size / width, float(size)
    h = max(1, int(round(height)))
    w = max(1, min(size, int(round(width))))
    x = int(rng.integers(0, size - w + 1))
    return Box(x=x, y=foot - h + 1, w=w, h=h)


def compose(bg: np.ndarray, foreground: list[np.ndarray], box: Box) -> tuple[np.ndarray, np.ndarray]:
    """Paste a prepared foreground (`prepare_foreground`) into a copy of `bg` at `box`.

    Returns (fg_bg uint8 HxWx3, mask uint8 HxW with 255 = foreground). Only the box is touched;
    colour is rounded half up (the blend of values in 0..255 stays in 0..255).
    """
    patch = resize_premultiplied(foreground, box.w, box.h)
    alpha = patch[..., 3:4]
    rows, cols = slice(box.y, box.y + box.h), slice(box.x, box.x + box.w)
    fg_bg = bg.copy()
    region = fg_bg[rows, cols].astype(np.float32)
    region *= 1.0 - alpha
    region += patch[..., :3]
    region += 0.5
    fg_bg[rows, cols] = region.astype(np.uint8)
    mask = np.zeros(bg.shape[:2], dtype=np.uint8)
    mask[rows, cols] = alpha[..., 0] >= MASK_THRESHOLD
    mask *= 255
    return fg_bg, mask
