"""Demo backgrounds drawn with the `GroundCamera` model, so their depth is exact: the ground is
textured from its true ground-plane coordinates, and every upright structure stands on a ground
row, is as tall as the perspective rule says, and takes that row's depth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..depth import GroundCamera
from .foregrounds import draw_tree
from .sketch import Sketch, hsv, scale, to_uint8

_BACKGROUND_TAG = 0xB6


@dataclass(frozen=True)
class DemoBackground:
    rgb: np.ndarray
    """uint8 (size, size, 3)."""
    depth_m: np.ndarray
    """float32 (size, size), metres, exact for the scene drawn."""
    camera: GroundCamera
    """The camera the scene was drawn with."""


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
    base = np.array(hsv(rng, (55, 110), (0.45, 0.8), (0.35, 0.6))) / 255.0
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
    c1 = np.array(hsv(rng, (0, 60), (0.0, 0.4), (0.55, 0.9))) / 255.0
    c2 = np.array(hsv(rng, (0, 60), (0.0, 0.5), (0.25, 0.55))) / 255.0
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
    brick = np.array(hsv(rng, (0, 30), (0.35, 0.7), (0.4, 0.75))) / 255.0
    tone = _value_noise(g.table, np.floor(u / length) * 7.3, row * 3.1) * _fade(g.footprint, length)
    color = brick * (1 + 0.15 * tone)[..., None]
    joints = np.maximum(_pulse(u, length, 0.015, g.fx), _pulse(g.z, depth, 0.015, g.fz))
    return _mix(color, (0.75, 0.72, 0.68), joints * 0.8)


def _sand(g: _Ground, rng: np.random.Generator) -> np.ndarray:
    """Sand with wind ripples whose phase is warped by noise."""
    base = np.array(hsv(rng, (30, 45), (0.25, 0.5), (0.7, 0.9))) / 255.0
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
    soil = np.array(hsv(rng, (15, 35), (0.35, 0.65), (0.3, 0.55))) / 255.0
    u, _, fu, _ = g.rotated(rng.uniform(-0.4, 0.4))
    spacing = rng.uniform(0.5, 1.0)
    rows = _pulse(u + 1000, spacing, spacing * rng.uniform(0.3, 0.5), fu)
    crop = np.array(hsv(rng, (60, 120), (0.5, 0.8), (0.35, 0.6))) / 255.0 if rng.random() < 0.5 else soil * 0.65
    color = _mix(soil, crop, rows)
    return color * (1 + 0.15 * _fbm(g.table, g.x, g.z, g.footprint, (6.0, 0.4, 0.08)))[..., None]


_TEXTURES = (_grass, _tiles, _bricks, _sand, _road, _field)


# Background structures: drawn in their own box (x across its width, y down its height, foot at y=1).


def _building(c: Sketch, rng: np.random.Generator) -> None:
    """Building with a grid of windows, a door and a flat or gabled roof."""
    wall = hsv(rng, (0, 50), (0.05, 0.5), (0.45, 0.9))
    gable = rng.random() < 0.4
    top = 0.2 if gable else 0.0
    if gable:
        c.polygon([(-0.03, top + 0.01), (1.03, top + 0.01), (0.5, 0.0)], hsv(rng, (0, 30), (0.4, 0.8), (0.25, 0.5)))
    c.rect(0.0, top, 1.0, 1.0, wall)
    cols, rows = rng.integers(2, 6), rng.integers(2, 9)
    glass = hsv(rng, (190, 230), (0.2, 0.5), (0.25, 0.6))
    for i in range(cols):
        for j in range(rows):
            x0 = (i + 0.25) / cols
            y0 = top + 0.05 + (1 - top - 0.2) * j / rows
            c.rect(x0, y0, x0 + 0.5 / cols, y0 + 0.5 * (1 - top - 0.2) / rows, glass)
    c.rect(0.4, 0.88, 0.6, 1.0, scale(wall, 0.4))


def _pole(c: Sketch, rng: np.random.Generator) -> None:
    """Street lamp or sign post."""
    metal = hsv(rng, (0, 360), (0.0, 0.3), (0.2, 0.6))
    c.rect(0.4, 0.05, 0.6, 1.0, metal)
    if rng.random() < 0.5:
        c.rect(0.0, 0.03, 1.0, 0.09, metal)
        c.rect(0.0, 0.09, 0.35, 0.12, (250, 240, 190))
    else:
        c.rect(0.0, 0.0, 1.0, 0.25, hsv(rng, (0, 360), (0.6, 0.9), (0.5, 0.9)))


def _rock(c: Sketch, rng: np.random.Generator) -> None:
    """Rounded boulder (grey) or bush (green): a jittered half-ellipse resting on the ground."""
    angles = np.linspace(np.pi, 2 * np.pi, rng.integers(9, 14)) + rng.uniform(-0.1, 0.1)
    radius = rng.uniform(0.8, 1.0, angles.size)
    outline = [(0.5 + 0.5 * r * np.cos(a), 1.0 + r * np.sin(a)) for a, r in zip(angles, radius, strict=True)]
    if rng.random() < 0.6:
        color = hsv(rng, (20, 40), (0.0, 0.25), (0.35, 0.65))
    else:
        color = hsv(rng, (80, 130), (0.4, 0.8), (0.2, 0.5))
    c.polygon([(0.02, 1.0), *outline, (0.98, 1.0)], color)


_STRUCTURES = {
    # name: (draw, relative height range, width / height range)
    "building": (_building, (3.0, 8.0), (0.5, 1.2)),
    "tree": (draw_tree, (2.0, 5.0), (0.5, 0.8)),
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
        sketch = Sketch(w, h)
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
    return DemoBackground(to_uint8(image), depth, camera)
