"""Resizing keeps mask and depth on the pixel grid the images are sampled on."""

import multiprocessing
import os
import time

import cv2
import numpy as np
import pytest
import torch

from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.evaluate import BackgroundDepths
from fgbg_utils.manifest import read_manifest
from fgbg_utils.store import read_png
from fgbg_utils.transforms import make_transforms, resize_nearest
from fgbg_utils.virtual_dataset import VirtualFgBgDataset


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
    composed = VirtualFgBgDataset(DatasetInfo.open(small_dataset)).compose_batch(np.arange(24))
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
    baseline = BackgroundDepths(DatasetInfo.open(small_dataset), 48, torch.device("cpu"))
    transform = make_transforms(48, train=False, stats=manifest["statistics"], output="uint8")
    for bg in range(len(manifest["backgrounds"])):
        stored = read_png(small_dataset / manifest["backgrounds"][bg]["depth_file"])
        rgb = np.zeros((*stored.shape, 3), np.uint8)
        target = transform.augment(rgb, rgb, np.zeros_like(stored), stored)["depth"]
        assert np.array_equal((baseline(torch.tensor([bg]))[0, 0] * 255).round().numpy(), target)


def _shifted(array: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """`array` (HxW or HxWxC) moved right by `dx` and down by `dy` whole pixels, uncovered pixels 0
    (an independent reference: pad with zeros, then slice)."""
    h, w = array.shape[:2]
    reach = max(abs(dx), abs(dy))
    padded = np.pad(array, [(reach, reach), (reach, reach)] + [(0, 0)] * (array.ndim - 2))
    return padded[reach - dy : reach - dy + h, reach - dx : reach - dx + w]


def _square_scene() -> dict[str, np.ndarray]:
    """192 px: a black bg, fg_bg with a white square on even rows and columns (so that halving to
    96 px puts its edges exactly between output pixels, in the images as in the mask), depth 250
    on the square and 50 elsewhere."""
    mask = np.zeros((192, 192), np.uint8)
    mask[40:120, 60:140] = 1
    return {
        "bg": np.zeros((192, 192, 3), np.uint8),
        "fg_bg": np.repeat(mask[..., None] * 255, 3, axis=2),
        "mask": mask,
        "depth": np.where(mask > 0, 250, 50).astype(np.uint8),
    }


def test_training_augmentation_keeps_mask_and_image_aligned_to_the_pixel():
    """With flips, shifts and colour on, the pixels where fg_bg differs from bg are exactly the
    mask's, the mask stays 0/1 and whole (the 40x40 px square), depth keeps its two levels (0 on
    uncovered borders), and the draws do flip, shift and recolour."""
    scene = _square_scene()
    stats = {"bg": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    boxes, colours = set(), set()
    for seed in range(40):
        out = make_transforms(96, train=True, stats=stats, seed=seed, output="uint8").augment(**scene)
        mask = out["mask"]
        assert set(np.unique(mask).tolist()) <= {0, 1} and mask.sum() == 40 * 40
        assert np.array_equal((out["fg_bg"] != out["bg"]).any(-1), mask.astype(bool)), f"seed {seed}"
        assert set(np.unique(out["depth"][mask > 0]).tolist()) == {250}
        assert set(np.unique(out["depth"][mask == 0]).tolist()) <= {0, 50}
        rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        boxes.add((rows[0], columns[0]))
        colours.add(int(out["bg"][48, 48, 0]))
    unflipped, flipped = 30, 96 - 70  # the square's first column as is and mirrored
    assert len(boxes) >= 10 and {c for _, c in boxes} & set(range(unflipped - 6, unflipped + 7))
    assert {c for _, c in boxes} & set(range(flipped - 6, flipped + 7)) - {unflipped}
    assert len(colours) >= 5  # brightness / noise changed the black background


def test_training_geometry_is_the_evaluation_resize_flipped_and_moved_by_whole_pixels():
    """Every training sample (colour off) is the evaluation transform's output, itself OpenCV's
    resize, possibly mirrored and moved by whole pixels (at most 6 % of the frame, borders 0), the
    same move for all four images; a draw that moves nothing gives exactly the evaluation's output.
    Flip and shift are drawn independently: each occurs with and without the other."""
    rng = np.random.default_rng(0)
    arrays = {
        "bg": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "fg_bg": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "mask": rng.integers(0, 2, (224, 224), dtype=np.uint8),
        "depth": rng.integers(1, 256, (224, 224), dtype=np.uint8),
    }
    stats = {"bg": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    evaluation = make_transforms(96, train=False, stats=stats, output="uint8").augment(**arrays)
    linear, exact = cv2.INTER_LINEAR, cv2.INTER_NEAREST_EXACT
    for key in ("bg", "fg_bg", "mask", "depth"):
        reference = cv2.resize(arrays[key], (96, 96), interpolation=linear if key in ("bg", "fg_bg") else exact)
        assert np.array_equal(evaluation[key], reference), key
    reach = round(0.06 * 96)
    moves = {}
    for seed in range(30):
        out = make_transforms(96, train=True, stats=stats, photometric=False, seed=seed).augment(**arrays)
        found = [
            (flip, dx, dy)
            for flip in (False, True)
            for dx in range(-reach, reach + 1)
            for dy in range(-reach, reach + 1)
            if all(
                np.array_equal(out[k], _shifted(evaluation[k][:, ::-1] if flip else evaluation[k], dx, dy))
                for k in evaluation
            )
        ]
        assert len(found) == 1, f"seed {seed}: not one whole-pixel move of the evaluation's output"
        moves[seed] = found[0]
    assert (False, 0, 0) in moves.values() and len(set(moves.values())) >= 10
    combinations = {(flip, (dx, dy) != (0, 0)) for flip, dx, dy in moves.values()}
    assert combinations == {(False, False), (False, True), (True, False), (True, True)}


def test_augmentation_is_reproducible_and_differs_between_forked_workers():
    """A seed (or `pipeline.set_random_seed`, as training calls it per sample) repeats the draws;
    without one, forked worker processes do not repeat each other's."""
    scene = _square_scene()
    stats = {"bg": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    transform = make_transforms(96, train=True, stats=stats, seed=5, output="uint8")
    first = [transform(**scene)["fg_bg"] for _ in range(3)]
    transform.pipeline.set_random_seed(5)
    assert all(torch.equal(a, transform(**scene)["fg_bg"]) for a in first)
    unseeded = make_transforms(96, train=True, stats=stats, output="uint8")
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        draws = pool.map(_draws_in_a_worker, [unseeded] * 2, chunksize=1)
    pids, values = zip(*draws, strict=True)
    assert len(set(pids)) == 2 and values[0] != values[1]


def _draws_in_a_worker(transform) -> tuple[int, list[bytes]]:
    """This worker's process id and four augmented samples of the square scene."""
    time.sleep(0.2)  # keep this worker busy so that the other one takes the second task
    return os.getpid(), [transform(**_square_scene())["fg_bg"].numpy().tobytes() for _ in range(4)]
