"""Procedural demo assets: determinism, exact scene depth, and foreground alpha quality."""

import numpy as np
import pytest

from fgbg_utils.demo_assets import (
    FOREGROUND_KINDS,
    DemoBackground,
    DemoForeground,
    make_demo_background,
    make_demo_foreground,
)
from fgbg_utils.depth import FAR_M

INDICES = range(8)


@pytest.fixture(scope="module")
def backgrounds() -> list[DemoBackground]:
    return [make_demo_background(i, size=64) for i in INDICES]


@pytest.fixture(scope="module")
def foregrounds() -> list[DemoForeground]:
    return [make_demo_foreground(i, size=96) for i in range(len(FOREGROUND_KINDS))]


def _horizon_row(bg: DemoBackground) -> int:
    """First row whose centre is below the horizon (the first ground row)."""
    size = bg.rgb.shape[0]
    return int(np.searchsorted(np.arange(size) + 0.5, bg.camera.horizon * size, side="right"))


def _structure_mask(bg: DemoBackground) -> np.ndarray:
    return bg.depth_m != bg.camera.ground_depth(bg.rgb.shape[0])


# ---------------------------------------------------------------------------------------------- backgrounds


@pytest.mark.parametrize("size", [64, 224])
def test_background_shapes_dtypes_and_camera(size):
    bg = make_demo_background(3, size=size)
    assert bg.rgb.shape == (size, size, 3) and bg.rgb.dtype == np.uint8
    assert bg.depth_m.shape == (size, size) and bg.depth_m.dtype == np.float32
    assert 0.32 <= bg.camera.horizon <= 0.5
    assert 1.4 <= bg.camera.height_m <= 1.8
    assert bg.camera.focal == 1.0
    assert bg.rgb.std() > 10, "a scene, not a flat fill"


@pytest.mark.parametrize("size", [32, 97, 512])
def test_background_any_size_in_range(size):
    bg = make_demo_background(5, size=size)
    assert bg.rgb.shape == (size, size, 3) and bg.depth_m.shape == (size, size)


def test_background_rejects_sizes_out_of_range():
    with pytest.raises(ValueError):
        make_demo_background(0, size=16)


def test_background_is_deterministic():
    a, b = make_demo_background(7, size=64, seed=3), make_demo_background(7, size=64, seed=3)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth_m, b.depth_m)
    assert a.camera == b.camera
    assert not np.array_equal(a.rgb, make_demo_background(8, size=64, seed=3).rgb)
    assert not np.array_equal(a.rgb, make_demo_background(7, size=64, seed=4).rgb)


def test_sky_is_far_and_empty_ground_is_exact_row_depth(backgrounds):
    for bg in backgrounds:
        size, first = bg.rgb.shape[0], _horizon_row(bg)
        free = ~_structure_mask(bg)
        sky, ground = bg.depth_m[:first], bg.depth_m[first:]
        assert (sky[free[:first]] == np.float32(FAR_M)).all()
        assert free[:first].mean() > 0.5, "most of the sky is open"
        expected = np.broadcast_to(
            bg.camera.row_depth(np.arange(first, size), size).astype(np.float32)[:, None], ground.shape
        )
        np.testing.assert_array_equal(ground[free[first:]], expected[free[first:]])
        assert free[first:].mean() > 0.5, "most of the ground is visible"


def test_every_pixel_is_ground_sky_or_something_standing_below_it(backgrounds):
    """A structure pixel at row y takes the depth of a ground row at or below y: never farther
    than the ground behind it, and always one of the row depths."""
    for bg in backgrounds:
        size = bg.rgb.shape[0]
        row_depths = bg.camera.row_depth(np.arange(size), size).astype(np.float32)
        for y, x in zip(*np.nonzero(_structure_mask(bg)), strict=True):
            feet = np.flatnonzero(row_depths[y:] == bg.depth_m[y, x])
            assert feet.size and row_depths[y + feet[0]] < FAR_M, (y, x, bg.depth_m[y, x])


def test_every_background_has_structures_nearer_than_the_ground_behind(backgrounds):
    for bg in backgrounds:
        ground = bg.camera.ground_depth(bg.rgb.shape[0])
        nearer = bg.depth_m < ground
        assert nearer.sum() >= 4, "at least one visible structure"
        assert (bg.depth_m <= ground).all(), "nothing is drawn behind the ground or the sky"


def test_depth_grows_towards_the_horizon_along_columns(backgrounds):
    for bg in backgrounds:
        first = _horizon_row(bg)
        ground = bg.depth_m[first:]
        non_decreasing_upwards = (np.diff(ground, axis=0) <= 0).all(axis=0)
        free_columns = ~_structure_mask(bg)[first:].any(axis=0)
        assert free_columns.any()
        assert non_decreasing_upwards[free_columns].all()
        assert non_decreasing_upwards.mean() > 0.5
        assert (np.diff(ground[:, free_columns], axis=0) < 0).any(axis=0).all(), "strictly farther somewhere"


def test_structure_pixels_differ_from_the_open_scene_on_their_row(backgrounds):
    """Depth and pixels agree: where depth says a structure stands, something other than the
    sky or ground of that row is drawn."""
    for bg in backgrounds:
        mask = _structure_mask(bg)
        rgb = bg.rgb.astype(np.float32)
        differences = []
        for y in np.flatnonzero(mask.any(axis=1) & (~mask).any(axis=1)):
            open_colour = np.median(rgb[y][~mask[y]], axis=0)
            differences.extend(np.abs(rgb[y][mask[y]] - open_colour).max(axis=1))
        assert np.mean(differences) > 12


# ---------------------------------------------------------------------------------------------- foregrounds


def test_foreground_kinds_cycle_with_the_index(foregrounds):
    assert len(set(FOREGROUND_KINDS)) == len(FOREGROUND_KINDS) >= 10
    assert [fg.kind for fg in foregrounds] == list(FOREGROUND_KINDS)
    assert make_demo_foreground(len(FOREGROUND_KINDS) + 2, size=32).kind == FOREGROUND_KINDS[2]


@pytest.mark.parametrize("size", [64, 224])
def test_foreground_shape_dtype_and_size(size):
    fg = make_demo_foreground(1, size=size)
    assert fg.rgba.dtype == np.uint8 and fg.rgba.ndim == 3 and fg.rgba.shape[2] == 4
    assert abs(max(fg.rgba.shape[:2]) - size) <= 2


def test_foreground_is_deterministic_and_varies():
    a, b = make_demo_foreground(9, seed=1, size=64), make_demo_foreground(9, seed=1, size=64)
    np.testing.assert_array_equal(a.rgba, b.rgba)
    assert a.relative_height == b.relative_height
    other_seed = make_demo_foreground(9, seed=2, size=64)
    assert other_seed.kind == a.kind and not np.array_equal(other_seed.rgba, a.rgba)
    same_kind = make_demo_foreground(9 + len(FOREGROUND_KINDS), seed=1, size=64)
    assert same_kind.kind == a.kind and not np.array_equal(same_kind.rgba, a.rgba)


def test_foreground_alpha_is_tight_antialiased_and_solid(foregrounds):
    for fg in foregrounds:
        alpha = fg.rgba[..., 3]
        assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any(), fg.kind
        assert alpha[-1].max() >= 128, f"{fg.kind} stands on its bottom row"
        assert ((alpha > 0) & (alpha < 255)).sum() >= 10, f"{fg.kind} has antialiased edges"
        assert (alpha == 255).sum() >= 0.1 * (alpha > 0).sum(), f"{fg.kind} has an opaque interior"
        assert (alpha == 0).any(), f"{fg.kind} is a silhouette, not a box"


def test_foreground_is_shaded_not_flat(foregrounds):
    for fg in foregrounds:
        inside = fg.rgba[..., :3][fg.rgba[..., 3] == 255].astype(np.float32)
        assert inside.std(axis=0).max() > 8, fg.kind


SANE_RELATIVE_HEIGHT = {
    "person": (0.85, 1.25),
    "dog": (0.2, 0.6),
    "cat": (0.1, 0.3),
    "horse": (0.8, 1.3),
    "cow": (0.7, 1.1),
    "bird": (0.08, 0.4),
    "chair": (0.4, 0.75),
    "lamp": (0.6, 1.2),
    "car": (0.7, 1.2),
    "bicycle": (0.5, 0.85),
    "potted_plant": (0.3, 0.8),
    "tree": (1.5, 4.0),
    "bottle": (0.1, 0.3),
    "suitcase": (0.3, 0.6),
}


def test_relative_heights_are_realistic_and_jittered():
    assert set(SANE_RELATIVE_HEIGHT) == set(FOREGROUND_KINDS)
    n = len(FOREGROUND_KINDS)
    for k, kind in enumerate(FOREGROUND_KINDS):
        heights = [make_demo_foreground(k + n * j, size=32).relative_height for j in range(3)]
        lo, hi = SANE_RELATIVE_HEIGHT[kind]
        assert all(lo <= h <= hi for h in heights), (kind, heights)
        assert len(set(heights)) == 3, f"{kind} heights are jittered"
