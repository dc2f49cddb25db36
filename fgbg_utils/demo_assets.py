"""Procedural demo assets: outdoor backgrounds with exact depth, and foreground objects with alpha.

They let the whole pipeline (dataset build, loaders, training, notebooks) run with no downloads.
Everything is deterministic from ``(seed, index)``: each asset draws from
``np.random.default_rng([seed, index, tag])`` with one constant tag per kind of asset.

Backgrounds are drawn with the `GroundCamera` model of `fgbg_utils.depth`, so their depth is exact:
the ground is textured from its true ground-plane coordinates, and every upright structure stands on
a ground row, is as tall as the perspective rule says, and takes that row's depth.

Foregrounds are silhouettes drawn at 4x supersampling and area-averaged down, so their alpha has
antialiased edges, an opaque interior, and a tight crop whose bottom row is where the object stands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw

from fgbg_utils.depth import GroundCamera

_BACKGROUND_TAG = 0xB6
_FOREGROUND_TAG = 0xF6
_SUPERSAMPLE = 4

Color = tuple[int, int, int]


@dataclass(frozen=True)
class DemoBackground:
    rgb: np.ndarray
    """uint8 (size, size, 3)."""
    depth_m: np.ndarray
    """float32 (size, size), metres, exact for the scene drawn."""
    camera: GroundCamera
    """The camera the scene was drawn with."""


@dataclass(frozen=True)
class DemoForeground:
    rgba: np.ndarray
    """uint8 (h, w, 4), cropped tightly to the alpha > 0 bounding box; the object stands on the last row."""
    relative_height: float
    """Real object height over the camera height (as `GroundCamera.pixel_height` expects)."""
    kind: str


# --------------------------------------------------------------------------------------------------
# Supersampled drawing, shared by foregrounds and background structures
# --------------------------------------------------------------------------------------------------


class _Sketch:
    """A supersampled RGBA canvas drawn in unit coordinates: x in [0, 1] left to right, y in [0, 1]
    top to bottom, the ground at y = 1.

    Every shape is opaque and gets its own label, so `finish` can outline part boundaries as well as
    the silhouette. Antialiasing comes from area-averaging the supersampled canvas in `finish`.
    """

    def __init__(self, width: int, height: int, supersample: int = _SUPERSAMPLE):
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
        width = 2 * max(1, _SUPERSAMPLE // 2) + 1
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


def _hsv(
    rng: np.random.Generator, hue: tuple[float, float], sat: tuple[float, float], val: tuple[float, float]
) -> Color:
    """A random colour from HSV ranges (hue in degrees, may wrap past 360)."""
    h = (rng.uniform(*hue) % 360.0) / 2.0
    pixel = np.uint8([[[round(h), round(rng.uniform(*sat) * 255), round(rng.uniform(*val) * 255)]]])
    return tuple(int(v) for v in cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0])


def _scale(color: Color, factor: float) -> Color:
    return tuple(int(np.clip(round(v * factor), 0, 255)) for v in color)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Foregrounds: one small function per kind, each drawing in unit coordinates with its feet at y = 1
# --------------------------------------------------------------------------------------------------

_SKIN = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 58, 30))
_HAIR = ((20, 16, 14), (60, 40, 25), (110, 75, 40), (200, 160, 90), (160, 60, 30), (150, 150, 150))


def _person(c: _Sketch, rng: np.random.Generator) -> None:
    """Standing, walking, waving or arms-out figure with varied build, clothes and skin."""
    skin, hair = _SKIN[rng.integers(len(_SKIN))], _HAIR[rng.integers(len(_HAIR))]
    shirt = _hsv(rng, (0, 360), (0.3, 0.9), (0.35, 0.95))
    legs = _hsv(rng, (190, 250), (0.2, 0.7), (0.15, 0.55)) if rng.random() < 0.7 else _scale(shirt, 0.7)
    pose = rng.choice(["standing", "walking", "waving", "arms_out", "hands_on_hips"])
    build = rng.uniform(0.8, 1.25)
    top, head_r = 0.04, rng.uniform(0.055, 0.065)
    neck_y = top + 2.15 * head_r
    hip_y = rng.uniform(0.5, 0.55)
    shoulder = 0.085 * build
    limb_w = 0.05 * build
    cx = 0.5
    stride = {"walking": rng.uniform(0.1, 0.16)}.get(pose, rng.uniform(0.0, 0.03))
    knee_y = (hip_y + 0.96) / 2
    feet = [(cx - 0.035 - stride, 0.975), (cx + 0.035 + stride, 0.975)]
    knees = [(cx - 0.03 - stride * 0.45, knee_y), (cx + 0.03 + stride * 0.65, knee_y)]
    arm_y = neck_y + 0.04
    raised = arm_y - top - 0.02
    # (elbow, hand) offsets from each shoulder, x pointing outwards, for the (left, right) arm
    arms = {
        "standing": [((0.03, 0.15), (0.03, 0.3))] * 2,
        "walking": [((-0.02, 0.15), (-0.1, 0.27)), ((0.03, 0.15), (0.1, 0.28))],
        "waving": [((0.03, 0.15), (0.03, 0.3)), ((0.12, -0.02), (0.14, -raised))],
        "arms_out": [((0.13, 0.06), (0.27, 0.1))] * 2,
        "hands_on_hips": [((0.1, 0.13), (0.07 * build - shoulder, hip_y - arm_y - 0.02))] * 2,
    }[pose]
    for side, (elbow, hand) in zip((1, -1), arms[::-1], strict=True):
        sx = cx + side * shoulder
        points = [(sx, arm_y), (sx + side * elbow[0], arm_y + elbow[1]), (sx + side * hand[0], arm_y + hand[1])]
        c.limb(points, limb_w * 0.8, _scale(shirt, 0.85))
        c.ellipse(points[-1][0], points[-1][1], limb_w * 0.5, limb_w * 0.55, skin)
    for hip_x, knee, foot in zip((cx - 0.035, cx + 0.035), knees, feet, strict=True):
        c.limb([(hip_x, hip_y), knee, foot], limb_w, legs)
        c.polygon(
            [(foot[0] - 0.03, 1.0), (foot[0] + 0.055, 1.0), (foot[0] + 0.05, 0.955), (foot[0] - 0.03, 0.955)],
            (40, 35, 35),
        )
    if rng.random() < 0.3:
        c.polygon(
            [
                (cx - shoulder, neck_y + 0.02),
                (cx + shoulder, neck_y + 0.02),
                (cx + 0.14 * build, knee_y + 0.04),
                (cx - 0.14 * build, knee_y + 0.04),
            ],
            shirt,
        )
    else:
        c.rect(cx - shoulder - 0.01, neck_y + 0.015, cx + shoulder + 0.01, hip_y + 0.03, shirt, radius=0.04)
    c.rect(cx - 0.022, neck_y - 0.03, cx + 0.022, neck_y + 0.03, _scale(skin, 0.9))
    c.ellipse(cx, top + head_r, head_r * 0.92, head_r, skin)
    c.polygon(
        [
            (cx - head_r * 0.95, top + head_r * 0.9),
            (cx - head_r * 0.8, top + head_r * 0.2),
            (cx, top - 0.005),
            (cx + head_r * 0.8, top + head_r * 0.2),
            (cx + head_r * 0.95, top + head_r * 0.9),
            (cx + head_r * 0.5, top + head_r * 0.45),
            (cx - head_r * 0.5, top + head_r * 0.45),
        ],
        hair,
    )


@dataclass(frozen=True)
class _Quadruped:
    body_len: float
    body_h: float
    leg_len: float
    neck: float
    head: float
    ears: str
    tail: str
    snout: float


def _draw_quadruped(
    c: _Sketch, rng: np.random.Generator, spec: _Quadruped, coat: Color, patches: Color | None = None
) -> None:
    """Side view of a four-legged animal facing right; the per-kind functions only pick proportions."""
    j = lambda v: v * rng.uniform(0.9, 1.1)
    body_len, body_h, leg_len = j(spec.body_len), j(spec.body_h), j(spec.leg_len)
    x0, x1 = 0.45 - body_len / 2, 0.45 + body_len / 2
    belly = 1.0 - leg_len
    cy = belly - body_h / 2
    leg_w = max(0.035, body_h * 0.28)
    gait = rng.uniform(0.0, 0.07)
    far, dark = _scale(coat, 0.72), _scale(coat, 0.6)
    legs = [(x0 + leg_w * 0.8, gait), (x1 - leg_w * 0.8, -gait)]
    for hx, swing in legs:  # far-side legs first, darker, in the opposite phase
        c.limb([(hx, cy), (hx - swing * 0.5, belly + leg_len * 0.5), (hx - swing, 1 - leg_w / 2)], leg_w * 0.9, far)
    tail_root = (x0 + 0.01, cy - body_h * 0.25)
    if spec.tail == "up":
        c.limb([tail_root, (x0 - 0.06, cy - body_h * 0.6), (x0 - 0.05, cy - body_h * 1.3)], leg_w * 0.7, coat)
    elif spec.tail == "hang":
        c.limb([tail_root, (x0 - 0.04, cy + body_h * 0.2), (x0 - 0.045, belly + leg_len * 0.5)], leg_w * 0.55, dark)
    else:
        c.limb([tail_root, (x0 - 0.08, cy - body_h * 0.4), (x0 - 0.13, cy - body_h * 0.3)], leg_w * 0.7, coat)
    c.rect(x0, cy - body_h / 2, x1, belly, coat, radius=body_h * 0.45)
    if patches is not None:
        for _ in range(rng.integers(2, 5)):
            c.ellipse(
                rng.uniform(x0 + body_h * 0.4, x1 - body_h * 0.4),
                cy + rng.uniform(-0.3, 0.2) * body_h,
                rng.uniform(0.04, 0.09),
                body_h * rng.uniform(0.15, 0.3),
                patches,
            )
    for hx, swing in legs:
        c.limb([(hx, cy), (hx + swing * 0.5, belly + leg_len * 0.5), (hx + swing, 1 - leg_w / 2)], leg_w, coat)
        c.ellipse(hx + swing, 1 - leg_w * 0.35, leg_w * 0.65, leg_w * 0.35, dark)
    neck_len, head = j(spec.neck), j(spec.head)
    hx, hy = x1 + neck_len * 0.45, cy - body_h / 2 - neck_len * 0.8
    c.limb([(x1 - body_h * 0.3, cy), (hx, hy)], max(head * 0.9, body_h * 0.45), coat)
    c.ellipse(hx, hy, head * 0.75, head * 0.65, coat)
    c.rect(hx, hy - head * 0.25, hx + j(spec.snout) + head * 0.4, hy + head * 0.5, coat, radius=head * 0.25)
    c.ellipse(hx + j(spec.snout) + head * 0.35, hy - head * 0.05, head * 0.12, head * 0.12, (30, 25, 25))
    ear_x = hx - head * 0.3
    if spec.ears == "pointed":
        c.polygon(
            [
                (ear_x - head * 0.35, hy - head * 0.4),
                (ear_x + head * 0.35, hy - head * 0.45),
                (ear_x - head * 0.05, hy - head * 1.25),
            ],
            dark,
        )
    elif spec.ears == "floppy":
        c.ellipse(ear_x, hy + head * 0.15, head * 0.25, head * 0.55, dark)
    else:  # horns
        c.limb(
            [(ear_x, hy - head * 0.5), (ear_x - head * 0.3, hy - head * 0.95), (ear_x - head * 0.05, hy - head * 1.2)],
            head * 0.14,
            (225, 215, 190),
        )
    c.ellipse(hx + head * 0.2, hy - head * 0.2, head * 0.09, head * 0.09, (15, 15, 15))


def _dog(c: _Sketch, rng: np.random.Generator) -> None:
    """Dog: medium legs, floppy or pointed ears, wagging tail."""
    coat = _hsv(rng, (20, 40), (0.2, 0.75), (0.2, 0.9))
    spec = _Quadruped(0.5, 0.2, 0.26, 0.14, 0.1, rng.choice(["floppy", "pointed"]), "wag", 0.08)
    _draw_quadruped(c, rng, spec, coat, _scale(coat, 0.5) if rng.random() < 0.3 else None)


def _cat(c: _Sketch, rng: np.random.Generator) -> None:
    """Cat: short legs, small head, pointed ears, upright tail."""
    coat = _hsv(rng, (15, 40), (0.0, 0.8), (0.15, 0.95))
    spec = _Quadruped(0.46, 0.17, 0.2, 0.08, 0.1, "pointed", "up", 0.025)
    _draw_quadruped(c, rng, spec, coat, (240, 240, 235) if rng.random() < 0.35 else None)


def _horse(c: _Sketch, rng: np.random.Generator) -> None:
    """Horse: long legs and neck, hanging tail."""
    coat = _hsv(rng, (10, 35), (0.2, 0.8), (0.15, 0.75))
    spec = _Quadruped(0.5, 0.2, 0.33, 0.22, 0.08, "pointed", "hang", 0.09)
    _draw_quadruped(c, rng, spec, coat)


def _cow(c: _Sketch, rng: np.random.Generator) -> None:
    """Cow: heavy body, short neck, horns, often patched."""
    coat, patches = (
        ((240, 238, 230), (35, 30, 30)) if rng.random() < 0.6 else (_hsv(rng, (15, 30), (0.4, 0.8), (0.3, 0.7)), None)
    )
    spec = _Quadruped(0.58, 0.27, 0.24, 0.07, 0.09, "horns", "hang", 0.06)
    _draw_quadruped(c, rng, spec, coat, patches)


def _bird(c: _Sketch, rng: np.random.Generator) -> None:
    """Standing bird: body, wing, tail, beak, thin legs; wader (long legs) or pigeon-like."""
    plumage = _hsv(rng, (0, 360), (0.1, 0.8), (0.3, 0.9))
    leg_len = rng.uniform(0.12, 0.4)
    body_rx, body_ry = rng.uniform(0.2, 0.26), rng.uniform(0.11, 0.15)
    cy = 1 - leg_len - body_ry * 0.8
    leg = (220, 140, 60) if rng.random() < 0.6 else (70, 60, 50)
    for dx in (-0.03, 0.04):
        c.limb([(0.5 + dx, cy), (0.5 + dx + 0.02, 1 - 0.01)], 0.018, leg)
        c.polygon([(0.5 + dx - 0.03, 1.0), (0.5 + dx + 0.08, 1.0), (0.5 + dx + 0.02, 0.98)], leg)
    c.polygon(
        [
            (0.5 - body_rx * 0.6, cy - 0.02),
            (0.5 - body_rx - 0.13, cy - rng.uniform(0.0, 0.12)),
            (0.5 - body_rx - 0.12, cy + 0.05),
            (0.5 - body_rx * 0.6, cy + 0.06),
        ],
        _scale(plumage, 0.6),
    )
    c.ellipse(0.5, cy, body_rx, body_ry, plumage)
    c.ellipse(0.47, cy - 0.01, body_rx * 0.75, body_ry * 0.6, _hsv(rng, (0, 360), (0.1, 0.7), (0.2, 0.7)))
    neck = rng.uniform(0.05, 0.2)
    hx, hy = 0.5 + body_rx * 0.75, cy - body_ry - neck
    c.limb([(0.5 + body_rx * 0.5, cy - body_ry * 0.3), (hx, hy)], 0.07, plumage)
    c.ellipse(hx, hy, 0.065, 0.06, plumage)
    beak = rng.uniform(0.05, 0.14)
    c.polygon([(hx + 0.04, hy - 0.02), (hx + 0.05 + beak, hy + 0.01), (hx + 0.04, hy + 0.025)], (235, 175, 50))
    c.ellipse(hx + 0.015, hy - 0.015, 0.012, 0.012, (10, 10, 10))


def _chair(c: _Sketch, rng: np.random.Generator) -> None:
    """Three-quarter chair: four legs, seat, slatted or solid back."""
    wood = (
        _hsv(rng, (20, 40), (0.3, 0.8), (0.25, 0.8))
        if rng.random() < 0.6
        else _hsv(rng, (0, 360), (0.4, 0.9), (0.4, 0.95))
    )
    seat_y, width, depth = rng.uniform(0.5, 0.6), rng.uniform(0.38, 0.5), rng.uniform(0.08, 0.14)
    x0, x1 = 0.5 - width / 2, 0.5 + width / 2
    leg_w = rng.uniform(0.03, 0.05)
    back_top = rng.uniform(0.05, 0.2)
    for x in (x0 + depth, x1 + depth * 0.3):
        c.limb([(x, seat_y - depth), (x, 0.985 - depth)], leg_w, _scale(wood, 0.7))
    c.rect(x0 + depth, back_top, x1 + depth * 0.3, seat_y - depth, _scale(wood, 0.85), radius=0.03)
    if rng.random() < 0.6:
        gaps = rng.integers(2, 5)
        for k in range(gaps):
            gx = x0 + depth + (k + 0.5) * (x1 - x0 - depth * 0.7) / gaps
            c.cut(gx - 0.02, back_top + 0.07, gx + 0.02, seat_y - depth - 0.05)
    c.polygon(
        [(x0, seat_y), (x0 + depth, seat_y - depth), (x1 + depth * 0.3, seat_y - depth), (x1, seat_y)],
        _scale(wood, 1.1),
    )
    c.rect(x0, seat_y, x1, seat_y + 0.04, wood)
    for x in (x0 + leg_w / 2, x1 - leg_w / 2):
        c.limb([(x, seat_y + 0.03), (x, 1 - leg_w / 2)], leg_w, wood)


def _lamp(c: _Sketch, rng: np.random.Generator) -> None:
    """Floor lamp: base, pole (straight or bent arm) and a conical or drum shade."""
    metal = _hsv(rng, (0, 360), (0.0, 0.3), (0.2, 0.8))
    shade = (
        _hsv(rng, (20, 60), (0.1, 0.6), (0.7, 1.0))
        if rng.random() < 0.7
        else _hsv(rng, (0, 360), (0.4, 0.8), (0.5, 0.9))
    )
    c.ellipse(0.5, 0.975, rng.uniform(0.08, 0.14), 0.025, _scale(metal, 0.8))
    top = rng.uniform(0.18, 0.26)
    bend = rng.uniform(-0.15, 0.15) if rng.random() < 0.5 else 0.0
    c.limb([(0.5, 0.97), (0.5, 0.45), (0.5 + bend, top)], 0.025, metal)
    sx = 0.5 + bend
    w_top, w_bottom, h = rng.uniform(0.05, 0.1), rng.uniform(0.1, 0.16), rng.uniform(0.12, 0.18)
    c.polygon(
        [
            (sx - w_top, top - h + 0.04),
            (sx + w_top, top - h + 0.04),
            (sx + w_bottom, top + 0.04),
            (sx - w_bottom, top + 0.04),
        ],
        shade,
    )


def _car(c: _Sketch, rng: np.random.Generator) -> None:
    """Side view car: sedan, hatchback or van proportions, windows, lights, wheels on the ground."""
    paint = _hsv(rng, (0, 360), (0.0, 0.9), (0.2, 0.95))
    style = rng.choice(["sedan", "hatch", "van"])
    body_top = {"sedan": 0.68, "hatch": 0.66, "van": 0.5}[style] + rng.uniform(-0.03, 0.03)
    roof = {"sedan": 0.5, "hatch": 0.48, "van": 0.36}[style] + rng.uniform(-0.03, 0.03)
    wheel_r = rng.uniform(0.07, 0.085)
    x0, x1 = 0.05, 0.95
    glass = (90, 120, 150)
    if style == "van":
        cabin = [(x0 + 0.04, body_top), (x0 + 0.04, roof), (x1 - 0.2, roof), (x1 - 0.04, body_top)]
    else:
        back = x0 + (0.15 if style == "sedan" else 0.04)
        cabin = [(back, body_top), (back + 0.12, roof), (x1 - 0.35, roof), (x1 - 0.22, body_top)]
    c.polygon(cabin, paint)
    inset = [(x + (0.03 if x < 0.5 else -0.03), y + (0.025 if y < body_top else 0.0)) for x, y in cabin]
    c.polygon(inset, glass)
    pillar = (cabin[1][0] + cabin[2][0]) / 2
    c.limb([(pillar, roof + 0.02), (pillar, body_top)], 0.02, paint)
    c.rect(x0, body_top, x1, 1 - wheel_r * 0.7, paint, radius=0.05)
    c.rect(x1 - 0.05, body_top + 0.03, x1 - 0.005, body_top + 0.07, (250, 240, 200), radius=0.01)
    c.rect(x0 + 0.005, body_top + 0.03, x0 + 0.03, body_top + 0.07, (200, 30, 30), radius=0.01)
    for wx in (x0 + 0.19, x1 - 0.19):
        c.ellipse(wx, 1 - wheel_r, wheel_r, wheel_r, (25, 25, 28))
        c.ellipse(wx, 1 - wheel_r, wheel_r * 0.5, wheel_r * 0.5, (170, 170, 175))


def _bicycle(c: _Sketch, rng: np.random.Generator) -> None:
    """Bicycle: two spoked wheels touching the ground, diamond frame, saddle, handlebar."""
    frame = _hsv(rng, (0, 360), (0.5, 1.0), (0.4, 0.95))
    r = rng.uniform(0.19, 0.22)
    back, front = (0.06 + r, 1 - r), (0.94 - r, 1 - r)
    for wx, wy in (back, front):
        c.ring(wx, wy, r, 0.022, (30, 30, 30))
        for angle in np.linspace(0, np.pi, 4, endpoint=False) + rng.uniform(0, np.pi):
            dx, dy = np.cos(angle) * r * 0.95, np.sin(angle) * r * 0.95
            c.limb([(wx - dx, wy - dy), (wx + dx, wy + dy)], 0.006, (150, 150, 150))
    crank = (back[0] + 0.4 * (front[0] - back[0]), 1 - r * 0.95)
    seat = (crank[0] - 0.06, 1 - 2 * r - rng.uniform(0.08, 0.14))
    head = (front[0] - 0.07, seat[1] + 0.03)
    for a, b in ((back, crank), (back, seat), (crank, seat), (crank, head), (seat, head), (head, front)):
        c.limb([a, b], 0.028, frame)
    c.rect(seat[0] - 0.06, seat[1] - 0.025, seat[0] + 0.05, seat[1] + 0.005, (30, 25, 25), radius=0.01)
    bar = (head[0] - 0.02, head[1] - 0.08)
    c.limb([head, bar, (bar[0] - 0.07, bar[1])], 0.022, (60, 60, 60))


def _potted_plant(c: _Sketch, rng: np.random.Generator) -> None:
    """Pot with a fan of leaves or a cactus."""
    pot = (
        _hsv(rng, (10, 30), (0.5, 0.8), (0.5, 0.85))
        if rng.random() < 0.6
        else _hsv(rng, (0, 360), (0.1, 0.6), (0.5, 0.95))
    )
    green = _hsv(rng, (85, 140), (0.4, 0.9), (0.3, 0.75))
    pot_top, w = rng.uniform(0.62, 0.72), rng.uniform(0.14, 0.2)
    if rng.random() < 0.3:
        c.rect(0.44, 0.2, 0.56, pot_top + 0.02, green, radius=0.06)
        c.limb([(0.5, 0.5), (0.36, 0.48), (0.36, 0.33)], 0.08, green)
        c.limb([(0.5, 0.42), (0.63, 0.4), (0.63, 0.28)], 0.07, green)
    else:
        for angle in np.sort(rng.uniform(-1.2, 1.2, rng.integers(6, 11))):
            length = rng.uniform(0.35, 0.55)
            tip = (0.5 + np.sin(angle) * length, pot_top - np.cos(angle) * length)
            mid = ((0.5 + tip[0]) / 2 + 0.03 * np.cos(angle), (pot_top + tip[1]) / 2)
            leaf = _scale(green, rng.uniform(0.75, 1.2))
            c.polygon([(0.5, pot_top), (mid[0] - 0.04, mid[1]), tip, (mid[0] + 0.04, mid[1])], leaf)
    c.polygon([(0.5 - w, pot_top), (0.5 + w, pot_top), (0.5 + w * 0.75, 1.0), (0.5 - w * 0.75, 1.0)], pot)
    c.rect(0.5 - w - 0.015, pot_top - 0.03, 0.5 + w + 0.015, pot_top + 0.02, _scale(pot, 0.85))


def _tree(c: _Sketch, rng: np.random.Generator) -> None:
    """Deciduous tree (clustered round crown) or conifer (stacked triangles)."""
    bark = _hsv(rng, (20, 35), (0.3, 0.6), (0.2, 0.45))
    green = _hsv(rng, (70, 140), (0.4, 0.85), (0.25, 0.6))
    trunk = rng.uniform(0.035, 0.06)
    if rng.random() < 0.35:
        c.polygon([(0.5 - trunk, 1.0), (0.5 + trunk, 1.0), (0.5 + trunk * 0.6, 0.7), (0.5 - trunk * 0.6, 0.7)], bark)
        tiers = rng.integers(3, 5)
        for k in range(tiers):
            base = 0.8 - k * 0.15
            half = 0.3 * (1 - k / (tiers + 1))
            c.polygon([(0.5 - half, base), (0.5 + half, base), (0.5, base - 0.3)], _scale(green, 0.8 + 0.1 * k))
    else:
        crown_y = rng.uniform(0.38, 0.45)
        c.polygon(
            [
                (0.5 - trunk * 1.4, 1.0),
                (0.5 + trunk * 1.4, 1.0),
                (0.5 + trunk * 0.8, crown_y),
                (0.5 - trunk * 0.8, crown_y),
            ],
            bark,
        )
        for _ in range(rng.integers(5, 9)):
            r = rng.uniform(0.12, 0.18)
            c.ellipse(
                0.5 + rng.uniform(-0.2, 0.2),
                crown_y + rng.uniform(-0.15, 0.1),
                r,
                r * rng.uniform(0.8, 1.0),
                _scale(green, rng.uniform(0.8, 1.2)),
            )


def _bottle(c: _Sketch, rng: np.random.Generator) -> None:
    """Bottle: body, shoulder, neck, cap and label."""
    glass = [(40, 110, 50), (110, 60, 25), (150, 190, 210), (30, 60, 120)][rng.integers(4)]
    w, shoulder, neck_w = rng.uniform(0.11, 0.16), rng.uniform(0.35, 0.5), rng.uniform(0.035, 0.05)
    top = rng.uniform(0.02, 0.1)
    c.rect(0.5 - w, shoulder, 0.5 + w, 1.0, glass, radius=0.03)
    c.polygon(
        [
            (0.5 - w, shoulder + 0.03),
            (0.5 + w, shoulder + 0.03),
            (0.5 + neck_w, shoulder - 0.12),
            (0.5 - neck_w, shoulder - 0.12),
        ],
        glass,
    )
    c.rect(0.5 - neck_w, top + 0.04, 0.5 + neck_w, shoulder - 0.1, glass)
    c.rect(0.5 - neck_w - 0.008, top, 0.5 + neck_w + 0.008, top + 0.05, _hsv(rng, (0, 360), (0.5, 0.9), (0.5, 0.9)))
    label_y = rng.uniform(shoulder + 0.1, 0.7)
    c.rect(0.5 - w, label_y, 0.5 + w, label_y + rng.uniform(0.12, 0.22), _hsv(rng, (0, 360), (0.0, 0.7), (0.7, 1.0)))


def _suitcase(c: _Sketch, rng: np.random.Generator) -> None:
    """Upright suitcase: rounded body, ribs, carry handle (with a hole) and small wheels."""
    shell = _hsv(rng, (0, 360), (0.2, 0.9), (0.2, 0.8))
    w, top = rng.uniform(0.22, 0.3), rng.uniform(0.25, 0.35)
    for wx in (0.5 - w + 0.05, 0.5 + w - 0.05):
        c.ellipse(wx, 0.975, 0.025, 0.025, (25, 25, 25))
    c.rect(0.5 - 0.08, top - 0.09, 0.5 + 0.08, top + 0.03, (35, 35, 35), radius=0.03)
    c.cut(0.5 - 0.055, top - 0.065, 0.5 + 0.055, top + 0.01)
    c.rect(0.5 - w, top, 0.5 + w, 0.96, shell, radius=0.04)
    for k in range(rng.integers(2, 5)):
        x = 0.5 - w + (k + 1) * 2 * w / 5
        c.rect(x - 0.008, top + 0.03, x + 0.008, 0.93, _scale(shell, 0.8))


_DRAW: dict[str, tuple[Callable[[_Sketch, np.random.Generator], None], float]] = {
    "person": (_person, 1.05),
    "dog": (_dog, 0.38),
    "cat": (_cat, 0.17),
    "horse": (_horse, 1.0),
    "cow": (_cow, 0.9),
    "bird": (_bird, 0.2),
    "chair": (_chair, 0.56),
    "lamp": (_lamp, 1.0),
    "car": (_car, 0.9),
    "bicycle": (_bicycle, 0.66),
    "potted_plant": (_potted_plant, 0.5),
    "tree": (_tree, 2.5),
    "bottle": (_bottle, 0.2),
    "suitcase": (_suitcase, 0.42),
}
"""Drawing function and typical relative height (object height / a 1.6 m camera) per kind."""

FOREGROUND_KINDS: tuple[str, ...] = tuple(_DRAW)


def make_demo_foreground(index: int, seed: int = 0, size: int = 192) -> DemoForeground:
    """Foreground `index`: kind FOREGROUND_KINDS[index % len], with proportions, pose and colour
    varied per index; RGBA cropped tightly, longest side `size` px, standing on its last row."""
    kind = FOREGROUND_KINDS[index % len(FOREGROUND_KINDS)]
    draw, relative_height = _DRAW[kind]
    rng = np.random.default_rng([seed, index, _FOREGROUND_TAG])
    canvas = max(8, round(size * 1.1))
    sketch = _Sketch(canvas, canvas)
    draw(sketch, rng)
    light = (rng.uniform(-0.9, 0.2), -1.0)
    rgba = sketch.finish(light=light, crop_to=size, mirror=bool(rng.random() < 0.5))
    rgba = _to_uint8(rgba)
    rows, cols = np.nonzero(rgba[..., 3])
    rgba = rgba[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return DemoForeground(np.ascontiguousarray(rgba), float(relative_height * rng.uniform(0.9, 1.1)), kind)


# --------------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------------


def _sky(rng: np.random.Generator, size: int, horizon_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Sky image (size x size x 3, floats) and its colour at the horizon (the haze colour).

    Day blue, dusk with a sun glow, or overcast grey; soft clouds flatten towards the horizon.
    """
    style = rng.choice(["day", "day", "dusk", "overcast"])
    if style == "day":
        zenith = np.array([rng.uniform(0.1, 0.3), rng.uniform(0.3, 0.5), rng.uniform(0.7, 0.95)])
        low = np.array([rng.uniform(0.65, 0.8), rng.uniform(0.8, 0.9), rng.uniform(0.9, 1.0)])
        cloud, n_clouds = np.array([1.0, 1.0, 1.0]), rng.integers(1, 5)
    elif style == "dusk":
        zenith = np.array([rng.uniform(0.1, 0.25), rng.uniform(0.1, 0.2), rng.uniform(0.3, 0.5)])
        low = np.array([rng.uniform(0.9, 1.0), rng.uniform(0.45, 0.7), rng.uniform(0.3, 0.5)])
        cloud, n_clouds = np.array([0.9, 0.55, 0.55]), rng.integers(1, 4)
    else:
        grey = rng.uniform(0.55, 0.75)
        zenith = np.array([grey, grey, grey + 0.03]) - 0.12
        low = np.array([grey, grey, grey]) + 0.1
        cloud, n_clouds = np.array([grey, grey, grey]) - 0.15, rng.integers(5, 9)
    rows = np.arange(size, dtype=np.float32) + 0.5
    t = np.clip(rows / max(horizon_px, 1.0), 0.0, 1.0)[:, None, None] ** rng.uniform(1.5, 2.5)
    sky = np.broadcast_to(zenith * (1 - t) + low * t, (size, size, 3)).astype(np.float32)
    if style == "dusk":
        centres = np.arange(size, dtype=np.float32) + 0.5
        ys, xs = centres[:, None], centres[None, :]
        sun_x = rng.uniform(0.1, 0.9) * size
        glow = np.exp(-((xs - sun_x) ** 2 + (ys - horizon_px) ** 2) / (2 * (0.25 * size) ** 2))
        sky = sky + glow[..., None] * np.array([0.35, 0.2, 0.0], np.float32)
    mask = np.zeros((size, size), np.float32)
    for _ in range(n_clouds):
        cy = rng.uniform(0.1, 0.85) * horizon_px
        scale = (1.0 - 0.6 * cy / max(horizon_px, 1.0)) * size
        cx = rng.uniform(0, size)
        for _ in range(rng.integers(3, 7)):
            rx, ry = rng.uniform(0.04, 0.12) * scale, rng.uniform(0.015, 0.04) * scale
            center = (round(cx + rng.uniform(-1.5, 1.5) * rx), round(cy + rng.uniform(-0.5, 0.5) * ry))
            cv2.ellipse(mask, center, (max(1, round(rx)), max(1, round(ry))), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.6, 0.015 * size)) * rng.uniform(0.5, 0.9)
    sky = sky * (1 - mask[..., None]) + cloud * mask[..., None]
    return np.clip(sky, 0, 1).astype(np.float32), low


def _noise_table(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, (64, 64)).astype(np.float32)


def _value_noise(table: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smooth value noise in [-1, 1] at lattice coordinates (u, v), tiling every 64 units."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    i0, j0 = iu.astype(np.int64) % 64, iv.astype(np.int64) % 64
    i1, j1 = (i0 + 1) % 64, (j0 + 1) % 64
    top = table[j0, i0] * (1 - fu) + table[j0, i1] * fu
    bottom = table[j1, i0] * (1 - fu) + table[j1, i1] * fu
    return top * (1 - fv) + bottom * fv


def _fade(footprint: np.ndarray, feature: float) -> np.ndarray:
    """Contrast kept by a texture feature of size `feature` metres seen through pixels covering
    `footprint` metres: 1 when well resolved, towards 0 as it nears the pixel size (no aliasing)."""
    return 1.0 / (1.0 + (2.0 * footprint / feature) ** 4)


def _fbm(table: np.ndarray, x: np.ndarray, z: np.ndarray, footprint: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """Octaves of value noise at the given scales (metres), each faded by the pixel footprint."""
    total = np.zeros_like(x)
    for k, s in enumerate(scales):
        total += _fade(footprint, s) * _value_noise(table, x / s + 17 * k, z / s + 31 * k) / (1 + 0.3 * k)
    return total


def _pulse(t: np.ndarray, period: float, width: float, footprint: np.ndarray) -> np.ndarray:
    """Box-filtered coverage of a periodic pulse of `width` every `period` (stripes, grout, dashes)."""

    def integral(s: np.ndarray) -> np.ndarray:
        n = np.floor(s / period)
        return n * width + np.minimum(s - n * period, width)

    w = np.maximum(footprint, 1e-6)
    return np.clip((integral(t + w / 2) - integral(t - w / 2)) / w, 0.0, 1.0)


def _band(t: np.ndarray, lo: float, hi: float, footprint: np.ndarray) -> np.ndarray:
    """Box-filtered coverage of the single band lo <= t <= hi."""
    w = np.maximum(footprint, 1e-6)
    return np.clip((np.minimum(t + w / 2, hi) - np.maximum(t - w / 2, lo)) / w, 0.0, 1.0)


def _mix(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float], t: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32) * (1 - t[..., None]) + np.asarray(b, np.float32) * t[..., None]


@dataclass
class _Ground:
    """Ground-plane coordinates (metres) of every pixel and the metres one pixel spans along X and Z."""

    x: np.ndarray
    z: np.ndarray
    fx: np.ndarray
    fz: np.ndarray
    table: np.ndarray

    @property
    def footprint(self) -> np.ndarray:
        return np.maximum(self.fx, self.fz)

    def rotated(self, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        c, s = np.cos(angle), np.sin(angle)
        return (
            c * self.x + s * self.z,
            -s * self.x + c * self.z,
            abs(c) * self.fx + abs(s) * self.fz,
            abs(s) * self.fx + abs(c) * self.fz,
        )


def _grass(g: _Ground, rng: np.random.Generator) -> np.ndarray:
    """Lush to dry grass: multi-scale noise, optional mowing stripes."""
    base = np.array(_hsv(rng, (55, 110), (0.45, 0.8), (0.35, 0.6))) / 255.0
    shade = 1 + 0.35 * _fbm(g.table, g.x, g.z, g.footprint, (4.0, 1.0, 0.25, 0.06))
    if rng.random() < 0.4:
        shade *= 1 + 0.12 * (2 * _pulse(g.x + 100, rng.uniform(2.0, 4.0), rng.uniform(1.0, 1.5), g.fx) - 1)
    return base * shade[..., None]


def _tiles(g: _Ground, rng: np.random.Generator) -> np.ndarray:
    """Plaza checkerboard (possibly rotated) with grout lines."""
    u, v, fu, fv = g.rotated(rng.uniform(-0.8, 0.8) if rng.random() < 0.5 else 0.0)
    tile = rng.uniform(0.5, 1.5)
    a, b = _pulse(u + 1000, 2 * tile, tile, fu), _pulse(v, 2 * tile, tile, fv)
    checker = a + b - 2 * a * b
    c1 = np.array(_hsv(rng, (0, 60), (0.0, 0.4), (0.55, 0.9))) / 255.0
    c2 = np.array(_hsv(rng, (0, 60), (0.0, 0.5), (0.25, 0.55))) / 255.0
    grout = 0.04 * tile
    lines = np.maximum(_pulse(u + 1000, tile, grout, fu), _pulse(v, tile, grout, fv))
    color = _mix(c1, c2, checker)
    color *= (1 + 0.08 * _fbm(g.table, g.x, g.z, g.footprint, (2.0, 0.3)))[..., None]
    return _mix(color, color * 0.55, lines)


def _bricks(g: _Ground, rng: np.random.Generator) -> np.ndarray:
    """Running-bond paving bricks, each brick slightly different in tone."""
    length, depth = rng.uniform(0.2, 0.4), rng.uniform(0.1, 0.2)
    row = np.floor(g.z / depth)
    u = g.x + 1000 + 0.5 * length * (row % 2)
    brick = np.array(_hsv(rng, (0, 30), (0.35, 0.7), (0.4, 0.75))) / 255.0
    tone = _value_noise(g.table, np.floor(u / length) * 7.3, row * 3.1) * _fade(g.footprint, length)
    color = brick * (1 + 0.15 * tone)[..., None]
    joints = np.maximum(_pulse(u, length, 0.015, g.fx), _pulse(g.z, depth, 0.015, g.fz))
    return _mix(color, (0.75, 0.72, 0.68), joints * 0.8)


def _sand(g: _Ground, rng: np.random.Generator) -> np.ndarray:
    """Sand with wind ripples whose phase is warped by noise."""
    base = np.array(_hsv(rng, (30, 45), (0.25, 0.5), (0.7, 0.9))) / 255.0
    u, v, fu, fv = g.rotated(rng.uniform(-1.2, 1.2))
    wave = rng.uniform(0.3, 0.8)
    phase = 2 * np.pi * (v / wave + 0.8 * _value_noise(g.table, u / 3.0, v / 3.0))
    ripples = np.sin(phase) * _fade(fv, wave)
    grain = _fbm(g.table, g.x, g.z, g.footprint, (5.0, 0.05))
    return base * (1 + 0.08 * ripples + 0.12 * grain)[..., None]


def _road(g: _Ground, rng: np.random.Generator) -> np.ndarray:
    """Asphalt road with edge lines and a dashed centre line, converging to the horizon, on a verge."""
    verge = _grass(g, rng) if rng.random() < 0.6 else _sand(g, rng)
    centre, width = rng.uniform(-2.5, 2.5), rng.uniform(6.0, 9.0)
    road = _band(g.x, centre - width / 2, centre + width / 2, g.fx)
    grey = rng.uniform(0.22, 0.38)
    asphalt = grey * (1 + 0.2 * _fbm(g.table, g.x, g.z, g.footprint, (3.0, 0.1, 0.03)))
    paint = (1.0, 0.85, 0.2) if rng.random() < 0.4 else (0.95, 0.95, 0.92)
    edges = np.maximum(
        _band(g.x, centre - width / 2 + 0.3, centre - width / 2 + 0.45, g.fx),
        _band(g.x, centre + width / 2 - 0.45, centre + width / 2 - 0.3, g.fx),
    )
    dashes = _band(g.x, centre - 0.075, centre + 0.075, g.fx) * _pulse(g.z, 6.0, 3.0, g.fz)
    surface = _mix(np.repeat(asphalt[..., None], 3, axis=-1), paint, np.maximum(edges, dashes) * 0.9)
    return _mix(verge, surface, road)


def _field(g: _Ground, rng: np.random.Generator) -> np.ndarray:
    """Ploughed soil or crop rows running away from the camera (strong vanishing lines)."""
    soil = np.array(_hsv(rng, (15, 35), (0.35, 0.65), (0.3, 0.55))) / 255.0
    u, _, fu, _ = g.rotated(rng.uniform(-0.4, 0.4))
    spacing = rng.uniform(0.5, 1.0)
    rows = _pulse(u + 1000, spacing, spacing * rng.uniform(0.3, 0.5), fu)
    crop = np.array(_hsv(rng, (60, 120), (0.5, 0.8), (0.35, 0.6))) / 255.0 if rng.random() < 0.5 else soil * 0.65
    color = _mix(soil, crop, rows)
    return color * (1 + 0.15 * _fbm(g.table, g.x, g.z, g.footprint, (6.0, 0.4, 0.08)))[..., None]


_TEXTURES = (_grass, _tiles, _bricks, _sand, _road, _field)


# Background structures: drawn in their own box (x across its width, y down its height, foot at y=1).


def _building(c: _Sketch, rng: np.random.Generator) -> None:
    """Building with a grid of windows, a door and a flat or gabled roof."""
    wall = _hsv(rng, (0, 50), (0.05, 0.5), (0.45, 0.9))
    gable = rng.random() < 0.4
    top = 0.2 if gable else 0.0
    if gable:
        c.polygon([(-0.03, top + 0.01), (1.03, top + 0.01), (0.5, 0.0)], _hsv(rng, (0, 30), (0.4, 0.8), (0.25, 0.5)))
    c.rect(0.0, top, 1.0, 1.0, wall)
    cols, rows = rng.integers(2, 6), rng.integers(2, 9)
    glass = _hsv(rng, (190, 230), (0.2, 0.5), (0.25, 0.6))
    for i in range(cols):
        for j in range(rows):
            x0 = (i + 0.25) / cols
            y0 = top + 0.05 + (1 - top - 0.2) * j / rows
            c.rect(x0, y0, x0 + 0.5 / cols, y0 + 0.5 * (1 - top - 0.2) / rows, glass)
    c.rect(0.4, 0.88, 0.6, 1.0, _scale(wall, 0.4))


def _pole(c: _Sketch, rng: np.random.Generator) -> None:
    """Street lamp or sign post."""
    metal = _hsv(rng, (0, 360), (0.0, 0.3), (0.2, 0.6))
    c.rect(0.4, 0.05, 0.6, 1.0, metal)
    if rng.random() < 0.5:
        c.rect(0.0, 0.03, 1.0, 0.09, metal)
        c.rect(0.0, 0.09, 0.35, 0.12, (250, 240, 190))
    else:
        c.rect(0.0, 0.0, 1.0, 0.25, _hsv(rng, (0, 360), (0.6, 0.9), (0.5, 0.9)))


def _rock(c: _Sketch, rng: np.random.Generator) -> None:
    """Rounded boulder (grey) or bush (green): a jittered half-ellipse resting on the ground."""
    angles = np.linspace(np.pi, 2 * np.pi, rng.integers(9, 14)) + rng.uniform(-0.1, 0.1)
    radius = rng.uniform(0.8, 1.0, angles.size)
    outline = [(0.5 + 0.5 * r * np.cos(a), 1.0 + r * np.sin(a)) for a, r in zip(angles, radius, strict=True)]
    if rng.random() < 0.6:
        color = _hsv(rng, (20, 40), (0.0, 0.25), (0.35, 0.65))
    else:
        color = _hsv(rng, (80, 130), (0.4, 0.8), (0.2, 0.5))
    c.polygon([(0.02, 1.0), *outline, (0.98, 1.0)], color)


_STRUCTURES = {
    # name: (draw, relative height range, width / height range)
    "building": (_building, (3.0, 8.0), (0.5, 1.2)),
    "tree": (_tree, (2.0, 5.0), (0.5, 0.8)),
    "pole": (_pole, (2.0, 4.0), (0.06, 0.3)),
    "rock": (_rock, (0.2, 0.6), (1.3, 2.2)),
}


def _lighting(rng: np.random.Generator, size: int) -> np.ndarray:
    """Per-pixel gain: a tint, a side-to-side light falloff and a vignette, so scenes are not flat."""
    ys, xs = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size - 0.5
    side = 1 + rng.uniform(-0.12, 0.12) * xs
    vignette = 1 - rng.uniform(0.1, 0.35) * (xs**2 + ys**2) / 0.5
    tint = 1 + rng.uniform(-0.04, 0.04, 3) * rng.uniform(0.5, 1.5)
    return (side * vignette * rng.uniform(0.9, 1.1))[..., None] * tint.astype(np.float32)


def make_demo_background(index: int, size: int = 224, seed: int = 0) -> DemoBackground:
    """Background `index`: sky, perspective-textured ground and 2-6 upright structures, with depth
    exact for the camera it returns (ground rows: `row_depth`; sky: FAR_M; structures: their foot row)."""
    if not 32 <= size <= 512:
        raise ValueError(f"size must be within 32..512, got {size}")
    rng = np.random.default_rng([seed, index, _BACKGROUND_TAG])
    camera = GroundCamera(horizon=float(rng.uniform(0.32, 0.5)), height_m=float(rng.uniform(1.4, 1.8)), focal=1.0)
    horizon_px = camera.horizon * size
    image, haze = _sky(rng, size, horizon_px)
    depth = camera.ground_depth(size)

    rows = np.arange(size, dtype=np.float64)
    first = int(np.searchsorted(rows + 0.5, horizon_px, side="right"))  # first row below the horizon
    z_row = camera.row_depth(rows[first:], size)[:, None]
    cols = (np.arange(size, dtype=np.float64) + 0.5 - size / 2)[None, :]
    focal_px = camera.focal * size
    shape = (size - first, size)
    ground = _Ground(
        x=(cols * z_row / focal_px).astype(np.float32),
        z=np.broadcast_to(z_row, shape).astype(np.float32),
        fx=np.broadcast_to(z_row / focal_px, shape).astype(np.float32),
        fz=np.broadcast_to(z_row / (rows[first:, None] + 0.5 - horizon_px), shape).astype(np.float32),
        table=_noise_table(rng),
    )
    texture = _TEXTURES[rng.integers(len(_TEXTURES))](ground, rng)
    fog_m = rng.uniform(60.0, 250.0)
    image[first:] = _mix(texture, haze, 1 - np.exp(-ground.z / fog_m))

    placed = []
    min_px, max_px = max(3.0, 0.05 * size), 0.75 * size
    for _ in range(rng.integers(2, 7)):
        name = rng.choice(list(_STRUCTURES))
        _, (h_lo, h_hi), _ = _STRUCTURES[name]
        rel_h = rng.uniform(h_lo, h_hi)
        lo = horizon_px + max(2.0, min_px / rel_h) - 0.5
        hi = min(size - 1.0, horizon_px + max_px / rel_h - 0.5)
        placed.append((round(rng.uniform(min(lo, hi), hi)), name, rel_h, rng.uniform(-0.1, 1.1) * size))
    for foot, name, rel_h, cx in sorted(placed, key=lambda p: p[0]):
        draw, _, (a_lo, a_hi) = _STRUCTURES[name]
        h = max(1, round(camera.pixel_height(foot, size, rel_h)))
        w = max(1, min(round(h * rng.uniform(a_lo, a_hi)), size // 3))
        sketch = _Sketch(w, h)
        draw(sketch, rng)
        rgba = sketch.finish(light=(rng.uniform(-1, 1), -1.0), gradient=0.15, relief=0.15, outline=0.25)
        left, top = round(cx - w / 2), foot - h + 1
        x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + w, size), foot + 1
        if x0 >= x1:
            continue
        patch = rgba[y0 - top : y1 - top, x0 - left : x1 - left]
        foot_depth = camera.row_depth(foot, size)
        color = _mix(patch[..., :3], haze, np.full(patch.shape[:2], 1 - np.exp(-foot_depth / fog_m), np.float32))
        alpha = patch[..., 3:]
        image[y0:y1, x0:x1] = image[y0:y1, x0:x1] * (1 - alpha) + color * alpha
        depth[y0:y1, x0:x1][alpha[..., 0] >= 0.5] = np.float32(foot_depth)

    image = image * _lighting(rng, size)
    return DemoBackground(_to_uint8(image), depth, camera)


__all__ = ["DemoBackground", "DemoForeground", "FOREGROUND_KINDS", "make_demo_background", "make_demo_foreground"]
