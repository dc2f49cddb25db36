"""Demo foregrounds: one small drawing function per kind of object (people, animals, furniture,
vehicles, plants…), each in unit coordinates with its feet at y = 1, cropped tightly to its alpha."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .sketch import Color, Sketch, hsv, scale, to_uint8

_FOREGROUND_TAG = 0xF6


@dataclass(frozen=True)
class DemoForeground:
    rgba: np.ndarray
    """uint8 (h, w, 4), cropped tightly to the alpha > 0 bounding box; the object stands on the last row."""
    relative_height: float
    """Real object height over the camera height (as `GroundCamera.pixel_height` expects)."""
    kind: str


_SKIN = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 58, 30))
_HAIR = ((20, 16, 14), (60, 40, 25), (110, 75, 40), (200, 160, 90), (160, 60, 30), (150, 150, 150))


def _person(c: Sketch, rng: np.random.Generator) -> None:
    """Standing, walking, waving or arms-out figure with varied build, clothes and skin."""
    skin, hair = _SKIN[rng.integers(len(_SKIN))], _HAIR[rng.integers(len(_HAIR))]
    shirt = hsv(rng, (0, 360), (0.3, 0.9), (0.35, 0.95))
    legs = hsv(rng, (190, 250), (0.2, 0.7), (0.15, 0.55)) if rng.random() < 0.7 else scale(shirt, 0.7)
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
        c.limb(points, limb_w * 0.8, scale(shirt, 0.85))
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
    c.rect(cx - 0.022, neck_y - 0.03, cx + 0.022, neck_y + 0.03, scale(skin, 0.9))
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
    c: Sketch, rng: np.random.Generator, spec: _Quadruped, coat: Color, patches: Color | None = None
) -> None:
    """Side view of a four-legged animal facing right; the per-kind functions only pick proportions."""
    j = lambda v: v * rng.uniform(0.9, 1.1)
    body_len, body_h, leg_len = j(spec.body_len), j(spec.body_h), j(spec.leg_len)
    x0, x1 = 0.45 - body_len / 2, 0.45 + body_len / 2
    belly = 1.0 - leg_len
    cy = belly - body_h / 2
    leg_w = max(0.035, body_h * 0.28)
    gait = rng.uniform(0.0, 0.07)
    far, dark = scale(coat, 0.72), scale(coat, 0.6)
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


def _dog(c: Sketch, rng: np.random.Generator) -> None:
    """Dog: medium legs, floppy or pointed ears, wagging tail."""
    coat = hsv(rng, (20, 40), (0.2, 0.75), (0.2, 0.9))
    spec = _Quadruped(0.5, 0.2, 0.26, 0.14, 0.1, rng.choice(["floppy", "pointed"]), "wag", 0.08)
    _draw_quadruped(c, rng, spec, coat, scale(coat, 0.5) if rng.random() < 0.3 else None)


def _cat(c: Sketch, rng: np.random.Generator) -> None:
    """Cat: short legs, small head, pointed ears, upright tail."""
    coat = hsv(rng, (15, 40), (0.0, 0.8), (0.15, 0.95))
    spec = _Quadruped(0.46, 0.17, 0.2, 0.08, 0.1, "pointed", "up", 0.025)
    _draw_quadruped(c, rng, spec, coat, (240, 240, 235) if rng.random() < 0.35 else None)


def _horse(c: Sketch, rng: np.random.Generator) -> None:
    """Horse: long legs and neck, hanging tail."""
    coat = hsv(rng, (10, 35), (0.2, 0.8), (0.15, 0.75))
    spec = _Quadruped(0.5, 0.2, 0.33, 0.22, 0.08, "pointed", "hang", 0.09)
    _draw_quadruped(c, rng, spec, coat)


def _cow(c: Sketch, rng: np.random.Generator) -> None:
    """Cow: heavy body, short neck, horns, often patched."""
    coat, patches = (
        ((240, 238, 230), (35, 30, 30)) if rng.random() < 0.6 else (hsv(rng, (15, 30), (0.4, 0.8), (0.3, 0.7)), None)
    )
    spec = _Quadruped(0.58, 0.27, 0.24, 0.07, 0.09, "horns", "hang", 0.06)
    _draw_quadruped(c, rng, spec, coat, patches)


def _bird(c: Sketch, rng: np.random.Generator) -> None:
    """Standing bird: body, wing, tail, beak, thin legs; wader (long legs) or pigeon-like."""
    plumage = hsv(rng, (0, 360), (0.1, 0.8), (0.3, 0.9))
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
        scale(plumage, 0.6),
    )
    c.ellipse(0.5, cy, body_rx, body_ry, plumage)
    c.ellipse(0.47, cy - 0.01, body_rx * 0.75, body_ry * 0.6, hsv(rng, (0, 360), (0.1, 0.7), (0.2, 0.7)))
    neck = rng.uniform(0.05, 0.2)
    hx, hy = 0.5 + body_rx * 0.75, cy - body_ry - neck
    c.limb([(0.5 + body_rx * 0.5, cy - body_ry * 0.3), (hx, hy)], 0.07, plumage)
    c.ellipse(hx, hy, 0.065, 0.06, plumage)
    beak = rng.uniform(0.05, 0.14)
    c.polygon([(hx + 0.04, hy - 0.02), (hx + 0.05 + beak, hy + 0.01), (hx + 0.04, hy + 0.025)], (235, 175, 50))
    c.ellipse(hx + 0.015, hy - 0.015, 0.012, 0.012, (10, 10, 10))


def _chair(c: Sketch, rng: np.random.Generator) -> None:
    """Three-quarter chair: four legs, seat, slatted or solid back."""
    wood = (
        hsv(rng, (20, 40), (0.3, 0.8), (0.25, 0.8))
        if rng.random() < 0.6
        else hsv(rng, (0, 360), (0.4, 0.9), (0.4, 0.95))
    )
    seat_y, width, depth = rng.uniform(0.5, 0.6), rng.uniform(0.38, 0.5), rng.uniform(0.08, 0.14)
    x0, x1 = 0.5 - width / 2, 0.5 + width / 2
    leg_w = rng.uniform(0.03, 0.05)
    back_top = rng.uniform(0.05, 0.2)
    for x in (x0 + depth, x1 + depth * 0.3):
        c.limb([(x, seat_y - depth), (x, 0.985 - depth)], leg_w, scale(wood, 0.7))
    c.rect(x0 + depth, back_top, x1 + depth * 0.3, seat_y - depth, scale(wood, 0.85), radius=0.03)
    if rng.random() < 0.6:
        gaps = rng.integers(2, 5)
        for k in range(gaps):
            gx = x0 + depth + (k + 0.5) * (x1 - x0 - depth * 0.7) / gaps
            c.cut(gx - 0.02, back_top + 0.07, gx + 0.02, seat_y - depth - 0.05)
    c.polygon(
        [(x0, seat_y), (x0 + depth, seat_y - depth), (x1 + depth * 0.3, seat_y - depth), (x1, seat_y)],
        scale(wood, 1.1),
    )
    c.rect(x0, seat_y, x1, seat_y + 0.04, wood)
    for x in (x0 + leg_w / 2, x1 - leg_w / 2):
        c.limb([(x, seat_y + 0.03), (x, 1 - leg_w / 2)], leg_w, wood)


def _lamp(c: Sketch, rng: np.random.Generator) -> None:
    """Floor lamp: base, pole (straight or bent arm) and a conical or drum shade."""
    metal = hsv(rng, (0, 360), (0.0, 0.3), (0.2, 0.8))
    shade = (
        hsv(rng, (20, 60), (0.1, 0.6), (0.7, 1.0)) if rng.random() < 0.7 else hsv(rng, (0, 360), (0.4, 0.8), (0.5, 0.9))
    )
    c.ellipse(0.5, 0.975, rng.uniform(0.08, 0.14), 0.025, scale(metal, 0.8))
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


def _car(c: Sketch, rng: np.random.Generator) -> None:
    """Side view car: sedan, hatchback or van proportions, windows, lights, wheels on the ground."""
    paint = hsv(rng, (0, 360), (0.0, 0.9), (0.2, 0.95))
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


def _bicycle(c: Sketch, rng: np.random.Generator) -> None:
    """Bicycle: two spoked wheels touching the ground, diamond frame, saddle, handlebar."""
    frame = hsv(rng, (0, 360), (0.5, 1.0), (0.4, 0.95))
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


def _potted_plant(c: Sketch, rng: np.random.Generator) -> None:
    """Pot with a fan of leaves or a cactus."""
    pot = (
        hsv(rng, (10, 30), (0.5, 0.8), (0.5, 0.85))
        if rng.random() < 0.6
        else hsv(rng, (0, 360), (0.1, 0.6), (0.5, 0.95))
    )
    green = hsv(rng, (85, 140), (0.4, 0.9), (0.3, 0.75))
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
            leaf = scale(green, rng.uniform(0.75, 1.2))
            c.polygon([(0.5, pot_top), (mid[0] - 0.04, mid[1]), tip, (mid[0] + 0.04, mid[1])], leaf)
    c.polygon([(0.5 - w, pot_top), (0.5 + w, pot_top), (0.5 + w * 0.75, 1.0), (0.5 - w * 0.75, 1.0)], pot)
    c.rect(0.5 - w - 0.015, pot_top - 0.03, 0.5 + w + 0.015, pot_top + 0.02, scale(pot, 0.85))


def draw_tree(c: Sketch, rng: np.random.Generator) -> None:
    """Deciduous tree (clustered round crown) or conifer (stacked triangles)."""
    bark = hsv(rng, (20, 35), (0.3, 0.6), (0.2, 0.45))
    green = hsv(rng, (70, 140), (0.4, 0.85), (0.25, 0.6))
    trunk = rng.uniform(0.035, 0.06)
    if rng.random() < 0.35:
        c.polygon([(0.5 - trunk, 1.0), (0.5 + trunk, 1.0), (0.5 + trunk * 0.6, 0.7), (0.5 - trunk * 0.6, 0.7)], bark)
        tiers = rng.integers(3, 5)
        for k in range(tiers):
            base = 0.8 - k * 0.15
            half = 0.3 * (1 - k / (tiers + 1))
            c.polygon([(0.5 - half, base), (0.5 + half, base), (0.5, base - 0.3)], scale(green, 0.8 + 0.1 * k))
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
                scale(green, rng.uniform(0.8, 1.2)),
            )


def _bottle(c: Sketch, rng: np.random.Generator) -> None:
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
    c.rect(0.5 - neck_w - 0.008, top, 0.5 + neck_w + 0.008, top + 0.05, hsv(rng, (0, 360), (0.5, 0.9), (0.5, 0.9)))
    label_y = rng.uniform(shoulder + 0.1, 0.7)
    c.rect(0.5 - w, label_y, 0.5 + w, label_y + rng.uniform(0.12, 0.22), hsv(rng, (0, 360), (0.0, 0.7), (0.7, 1.0)))


def _suitcase(c: Sketch, rng: np.random.Generator) -> None:
    """Upright suitcase: rounded body, ribs, carry handle (with a hole) and small wheels."""
    shell = hsv(rng, (0, 360), (0.2, 0.9), (0.2, 0.8))
    w, top = rng.uniform(0.22, 0.3), rng.uniform(0.25, 0.35)
    for wx in (0.5 - w + 0.05, 0.5 + w - 0.05):
        c.ellipse(wx, 0.975, 0.025, 0.025, (25, 25, 25))
    c.rect(0.5 - 0.08, top - 0.09, 0.5 + 0.08, top + 0.03, (35, 35, 35), radius=0.03)
    c.cut(0.5 - 0.055, top - 0.065, 0.5 + 0.055, top + 0.01)
    c.rect(0.5 - w, top, 0.5 + w, 0.96, shell, radius=0.04)
    for k in range(rng.integers(2, 5)):
        x = 0.5 - w + (k + 1) * 2 * w / 5
        c.rect(x - 0.008, top + 0.03, x + 0.008, 0.93, scale(shell, 0.8))


_DRAW: dict[str, tuple[Callable[[Sketch, np.random.Generator], None], float]] = {
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
    "tree": (draw_tree, 2.5),
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
    sketch = Sketch(canvas, canvas)
    draw(sketch, rng)
    light = (rng.uniform(-0.9, 0.2), -1.0)
    rgba = sketch.finish(light=light, crop_to=size, mirror=bool(rng.random() < 0.5))
    rgba = to_uint8(rgba)
    rows, cols = np.nonzero(rgba[..., 3])
    rgba = rgba[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return DemoForeground(np.ascontiguousarray(rgba), float(relative_height * rng.uniform(0.9, 1.1)), kind)
