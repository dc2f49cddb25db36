"""Supersampled drawing in unit coordinates, shared by the demo foregrounds and the structures
standing in the demo backgrounds: shapes drawn at 4x and area-averaged down, so alpha edges are
antialiased and interiors opaque."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 4

Color = tuple[int, int, int]


class Sketch:
    """A supersampled RGBA canvas drawn in unit coordinates: x in [0, 1] left to right, y in [0, 1]
    top to bottom, the ground at y = 1.

    Every shape is opaque and gets its own label, so `finish` can outline part boundaries as well as
    the silhouette. Antialiasing comes from area-averaging the supersampled canvas in `finish`.
    """

    def __init__(self, width: int, height: int, supersample: int = SUPERSAMPLE):
        self.size = (max(1, width), max(1, height))
        self.w, self.h = self.size[0] * supersample, self.size[1] * supersample
        self.rgb = Image.new("RGB", (self.w, self.h))
        self.alpha = Image.new("L", (self.w, self.h))
        self.label = Image.new("L", (self.w, self.h))
        self._layers = [ImageDraw.Draw(image) for image in (self.rgb, self.alpha, self.label)]
        self._parts = 0

    def _xy(self, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x * self.w, y * self.h) for x, y in points]

    def _fills(self, color: Color) -> tuple[Color, int, int]:
        self._parts = self._parts % 254 + 1
        return tuple(int(v) for v in color), 255, self._parts

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, color: Color) -> None:
        box = self._xy([(cx - rx, cy - ry), (cx + rx, cy + ry)])
        for draw, fill in zip(self._layers, self._fills(color), strict=True):
            draw.ellipse(box, fill=fill)

    def polygon(self, points: Sequence[tuple[float, float]], color: Color) -> None:
        xy = self._xy(points)
        for draw, fill in zip(self._layers, self._fills(color), strict=True):
            draw.polygon(xy, fill=fill)

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: Color, radius: float = 0.0) -> None:
        box = self._xy([(min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))])
        for draw, fill in zip(self._layers, self._fills(color), strict=True):
            draw.rounded_rectangle(box, radius=radius * self.w, fill=fill)

    def limb(self, points: Sequence[tuple[float, float]], width: float, color: Color) -> None:
        """A thick polyline with round joints and caps (legs, arms, poles, frames)."""
        xy, r = self._xy(points), width * self.w / 2
        for draw, fill in zip(self._layers, self._fills(color), strict=True):
            draw.line(xy, fill=fill, width=max(1, round(2 * r)), joint="curve")
            for x, y in xy:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def cut(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """A transparent rectangle through what is drawn so far (chair slats, suitcase handle)."""
        box = self._xy([(x0, y0), (x1, y1)])
        for draw in self._layers:
            draw.rectangle(box, fill=0)

    def ring(self, cx: float, cy: float, r: float, width: float, color: Color) -> None:
        """A circle outline with a transparent middle (wheels, handles)."""
        box = self._xy([(cx - r, cy - r * self.w / self.h), (cx + r, cy + r * self.w / self.h)])
        for draw, fill in zip(self._layers, self._fills(color), strict=True):
            draw.ellipse(box, outline=fill, width=max(1, round(width * self.w)))

    def finish(
        self,
        light: tuple[float, float] = (-0.6, -0.8),
        gradient: float = 0.25,
        relief: float = 0.25,
        outline: float = 0.45,
        crop_to: int | None = None,
        mirror: bool = False,
    ) -> np.ndarray:
        """Outline, area-average down and shade: float RGBA in [0, 1].

        Part boundaries darken by `outline` at the supersampled resolution (they are sharp). The
        shading varies slowly, so it is computed after downsampling: `light` points towards the
        light, and surfaces facing it brighten (`gradient` across the whole image, `relief` near the
        silhouette, from the slope of the blurred alpha). With `crop_to`, the result is cropped to
        the alpha bounding box and scaled so its longest side is `crop_to` pixels.
        """
        rgba = np.dstack([np.asarray(self.rgb), np.asarray(self.alpha)])
        label = np.asarray(self.label)
        if mirror:
            rgba, label = rgba[:, ::-1], label[:, ::-1]
        out_size = self.size
        if crop_to is not None:
            rows = np.flatnonzero(rgba[..., 3].any(axis=1))
            cols = np.flatnonzero(rgba[..., 3].any(axis=0))
            crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            rgba, label = rgba[crop], label[crop]
            scale = crop_to / max(rgba.shape[:2])
            out_size = (max(1, round(rgba.shape[1] * scale)), max(1, round(rgba.shape[0] * scale)))
        width = 2 * max(1, SUPERSAMPLE // 2) + 1
        kernel = np.ones((width, width), np.uint8)
        edges = cv2.dilate(label, kernel) != cv2.erode(label, kernel)
        rgba = rgba.astype(np.float32) / 255.0
        rgba[..., :3] *= (rgba[..., 3] * (1.0 - outline * edges))[..., None]  # premultiplied
        small = cv2.resize(rgba, out_size, interpolation=cv2.INTER_AREA).reshape(out_size[1], out_size[0], 4)
        alpha = np.clip(small[..., 3], 0.0, 1.0)
        norm = max(float(np.hypot(*light)), 1e-6)
        lx, ly = light[0] / norm, light[1] / norm
        sigma = max(0.5, 0.03 * max(out_size))
        soft = cv2.GaussianBlur(alpha, (0, 0), sigma)
        slope_x = cv2.Sobel(soft, cv2.CV_32F, 1, 0, ksize=3) * sigma
        slope_y = cv2.Sobel(soft, cv2.CV_32F, 0, 1, ksize=3) * sigma
        xs = (np.arange(out_size[0], dtype=np.float32) + 0.5) / out_size[0] - 0.5
        ys = (np.arange(out_size[1], dtype=np.float32) + 0.5) / out_size[1] - 0.5
        shade = 1.0 - gradient * (lx * xs[None, :] + ly * ys[:, None])
        shade -= relief * np.clip(lx * slope_x + ly * slope_y, -1.5, 1.5)
        color = small[..., :3] * (shade / np.maximum(alpha, 1e-6))[..., None]
        color[alpha <= 0] = 0.0
        return np.dstack([np.clip(color, 0.0, 1.0), alpha])


def hsv(
    rng: np.random.Generator, hue: tuple[float, float], sat: tuple[float, float], val: tuple[float, float]
) -> Color:
    """A random colour from HSV ranges (hue in degrees, may wrap past 360)."""
    h = (rng.uniform(*hue) % 360.0) / 2.0
    pixel = np.uint8([[[round(h), round(rng.uniform(*sat) * 255), round(rng.uniform(*val) * 255)]]])
    return tuple(int(v) for v in cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0])


def scale(color: Color, factor: float) -> Color:
    return tuple(int(np.clip(round(v * factor), 0, 255)) for v in color)


def to_uint8(values: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
