"""Resizing keeps mask and depth on the pixel grid the images are sampled on."""

import cv2
import numpy as np
import pytest
import torch

from fgbg_utils.data import VirtualFgBgDataset
from fgbg_utils.evaluate import BackgroundDepths
from fgbg_utils.manifest import read_manifest
from fgbg_utils.store import read_png
from fgbg_utils.transforms import make_transforms, resize_nearest


def _centre_sources(source: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output pixel, the source pixel containing its centre, ``floor((d + 0.5) * source / size)``
    in exact integer arithmetic, and the pixel before it where the centre lies exactly on the boundary
    between two (a tie, which OpenCV may break either way)."""
    d = np.arange(size)
    index = (2 * d + 1) * source // (2 * size)
    tie = (2 * d + 1) * source % (2 * size) == 0
    return index, np.where(tie, index - 1, index)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


@pytest.mark.parametrize("size", [40, 48])  # the dataset is 64 px: downscaling, as in training
def test_resized_mask_is_centre_aligned_with_the_images(small_dataset, size):
    """The evaluation resize samples mask and depth at each output pixel's centre (checked against
    exact integer arithmetic), and the mask then agrees with the image:
    on a probe whose fg_bg is white exactly on the mask, the bilinearly resized probe is over half
    white where the mask is set far more often than with plain ``cv2.INTER_NEAREST``, which samples
    up to half a pixel off the centre (measured: 0.91 vs 0.54 mean IoU at 40 px, 0.78 vs 0.61 at 48)."""
    transform = make_transforms(size, train=False, stats=read_manifest(small_dataset))
    composed = VirtualFgBgDataset(small_dataset).compose_batch(np.arange(24))
    ious, shifted = [], []
    for b in range(24):
        mask = composed["mask"][b, 0].numpy().copy()
        depth = composed["depth"][b, 0].numpy().copy()
        bg = composed["bg"][b].permute(1, 2, 0).numpy().copy()
        probe = np.where(mask[..., None] > 0, np.uint8(255), np.uint8(0)).repeat(3, axis=-1)
        out = transform.augment(bg=bg, fg_bg=probe, mask=mask, depth=depth)
        exact, tie = _centre_sources(mask.shape[0], size)
        for key, source in (("mask", mask), ("depth", depth)):
            candidates = [source[rows][:, cols] for rows in (exact, tie) for cols in (exact, tie)]
            assert np.any([out[key] == candidate for candidate in candidates], axis=0).all(), key
        white = out["fg_bg"][..., 0] >= 128
        ious.append(_iou(out["mask"].astype(bool), white))
        off_centre = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)
        shifted.append(_iou(off_centre, white))
    assert np.mean(ious) > np.mean(shifted) + 0.1


def test_training_geometry_keeps_the_ground_a_level_ramp():
    """`fgbg_net` draws the ground as inverse depth linear in the row, the same in every column, at
    one slope per camera. Augmentation may move the horizon (shift) but must not tilt the ramp
    (rotation) or change its slope per row (zoom): on a depth map that is a pure row ramp, every
    augmented row holds one value, and the rows that are not uncovered border still step by the
    source's step."""
    size, step = 64, 3
    rows = (10 + step * np.arange(size)).astype(np.uint8)
    depth = np.repeat(rows[:, None], size, axis=1)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[20:40, 25:35] = 1
    stats = {"bg": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    moved = 0
    for seed in range(30):
        transform = make_transforms(size, train=True, stats=stats, photometric=False, seed=seed, output="uint8")
        out = transform.augment(bg=image, fg_bg=image.copy(), mask=mask, depth=depth)["depth"]
        kept = out > 0  # 0 = border uncovered by the shift
        assert kept.any(axis=1).sum() >= size * 0.85
        values = [np.unique(row[keep]) for row, keep in zip(out, kept, strict=True) if keep.any()]
        assert all(len(v) == 1 for v in values), f"seed {seed}: a row holds several depths (tilted ramp)"
        steps = np.diff([int(v[0]) for v in values])
        assert (steps == step).all(), f"seed {seed}: row steps {sorted(set(steps.tolist()))}, not {step} (zoom)"
        moved += bool(int(values[0][0]) != rows[0] or not kept[0].any())  # shifted up or down
    assert moved >= 5  # the shift did move the horizon in several draws


def test_shrinking_reads_images_at_the_centres_the_targets_read():
    """Resized images are read at each output pixel's centre, as the targets are, without averaging an
    area: at 224 -> 96 px, a one-pixel line under output column 43's centre (source column 101) shows
    whole in both image and mask, and one that no centre comes near (source column 100) vanishes
    from both, where an area-averaging resize would leave a faint line the target does not have.
    So the images show thin parts dashed just as the targets hold them (`benchmarks/ceilings.py`)."""
    exact, _ = _centre_sources(224, 96)
    assert exact[43] == 101 and 100 not in exact
    transform = make_transforms(96, train=False, stats={"bg": {"mean": [0.5] * 3, "std": [0.25] * 3}}, output="uint8")
    black, depth = np.zeros((224, 224, 3), np.uint8), np.zeros((224, 224), np.uint8)
    for column, shown in ((101, True), (100, False)):
        line = np.zeros((224, 224), np.uint8)
        line[:, column] = 1
        out = transform.augment(bg=black, fg_bg=np.repeat(line[..., None] * 255, 3, axis=2), mask=line, depth=depth)
        image_columns = np.flatnonzero(out["fg_bg"][..., 0].max(axis=0))
        mask_columns = np.flatnonzero(out["mask"].max(axis=0))
        assert image_columns.tolist() == mask_columns.tolist() == ([43] if shown else [])
        if shown:
            assert (out["fg_bg"][:, 43] == 255).all() and (out["mask"][:, 43] == 1).all()
        area = cv2.resize(line * 255, (96, 96), interpolation=cv2.INTER_AREA)
        assert area.max() > 0  # the faint line an area average would show


@pytest.mark.parametrize("source", [64, 96, 224])
def test_resize_nearest_reads_the_pixels_opencv_reads(source):
    """Torch's nearest-exact picks a neighbouring row at some sizes (224 -> 40 px); the virtual
    dataset and the background-depth baseline must read what the targets' OpenCV resize reads."""
    image = np.random.default_rng(source).integers(0, 256, (source, source), dtype=np.uint8)
    for size in range(32, source + 1, 8):
        expected = cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST_EXACT)
        assert np.array_equal(resize_nearest(torch.from_numpy(image)[None], size)[0].numpy(), expected), size


def test_background_depth_baseline_is_resized_like_the_depth_targets(small_dataset):
    """At 48 px, where torch's nearest-exact differs from OpenCV's from 64 px."""
    manifest = read_manifest(small_dataset)
    baseline = BackgroundDepths(small_dataset, manifest, 48, torch.device("cpu"))
    transform = make_transforms(48, train=False, stats=manifest["statistics"], output="uint8")
    for bg in range(len(manifest["backgrounds"])):
        stored = read_png(small_dataset / manifest["backgrounds"][bg]["depth_file"])
        rgb = np.zeros((*stored.shape, 3), np.uint8)
        target = transform.augment(rgb, rgb, np.zeros_like(stored), stored)["depth"]
        assert np.array_equal((baseline(torch.tensor([bg]))[0, 0] * 255).round().numpy(), target)
