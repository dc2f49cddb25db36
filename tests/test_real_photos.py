"""benchmarks/real_photos.py: its crops, the screening of foregrounds, and its results table."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "real_photos.py"


@pytest.fixture(scope="module")
def photos():
    spec = importlib.util.spec_from_file_location("real_photos", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_photos"] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("real_photos", None)


def test_crop_box_is_the_centred_square_of_the_shorter_side(photos):
    assert photos.crop_box(400, 300) == (50, 0, 350, 300)
    assert photos.crop_box(300, 400) == (0, 50, 300, 350)


def test_crop_box_moves_a_zoomed_square_inside_the_image(photos):
    # side 150 centred at x = 0.1 * 400 = 40 would start at -35: it is moved to the left edge
    assert photos.crop_box(400, 300, 0.1, 0.5, 0.5) == (0, 75, 150, 225)
    # centred at y = 0.95 * 300 = 285 would end at 360: moved up to the bottom edge
    assert photos.crop_box(400, 300, 0.5, 0.95, 0.5) == (125, 150, 275, 300)


def test_square_crop_reads_the_box_and_keeps_grey_photos_grey(photos):
    grey = np.zeros((300, 400), np.uint8)
    grey[:, 200:] = 200  # right half bright
    image = Image.fromarray(grey)
    right = photos.square_crop(image, (250, 0, 400, 150), size=32)
    assert right.mode == "L" and right.size == (32, 32) and np.asarray(right).min() == 200
    colour = photos.square_crop(image.convert("P"), (0, 0, 150, 150), size=32)
    assert colour.mode == "RGB" and np.asarray(colour).max() == 0


def test_crop_plan_adds_zoomed_crops_of_the_largest_photos(photos):
    sizes = [(400, 300), (2000, 1000), (800, 600), (1000, 1500)]
    plan = photos.crop_plan(sizes, 6)
    assert plan[:4] == [(i, (0.5, 0.5, 1.0)) for i in range(4)]
    assert plan[4:] == [(1, photos.ZOOM), (3, photos.ZOOM)]  # shorter sides 1000 and 1000, then 600
    assert photos.crop_plan(sizes, 3) == plan[:3]
    with pytest.raises(ValueError, match="at most 8 crops"):
        photos.crop_plan(sizes, 9)


def _rgba(path: Path, alpha: np.ndarray, mode: str = "RGBA") -> Path:
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 180, alpha
    image = Image.fromarray(rgba, "RGBA")
    (image.convert("LA") if mode == "LA" else image).save(path)
    return path


def _solid(side: int, object_side: int) -> np.ndarray:
    alpha = np.zeros((side, side), np.uint8)
    alpha[10 : 10 + object_side, 10 : 10 + object_side] = 255
    return alpha


def test_screen_foreground_gives_each_reason(photos, tmp_path):
    assert photos.screen_foreground(_rgba(tmp_path / "good.png", _solid(120, 80))) == ""
    assert photos.screen_foreground(_rgba(tmp_path / "grey.png", _solid(120, 80), "LA")) == ""
    opaque = np.full((100, 100), 255, np.uint8)
    assert photos.screen_foreground(_rgba(tmp_path / "opaque.png", opaque)) == "no transparency"
    Image.new("RGB", (100, 100)).save(tmp_path / "rgb.png")
    assert photos.screen_foreground(tmp_path / "rgb.png") == "no transparency"
    assert photos.screen_foreground(_rgba(tmp_path / "small.png", _solid(200, 63))) == "object under 64 px"
    outline = np.zeros((120, 120), np.uint8)
    outline[10:110, 10:13] = outline[10:110, 107:110] = outline[10:13, 10:110] = outline[107:110, 10:110] = 255
    assert photos.screen_foreground(_rgba(tmp_path / "outline.png", outline)).startswith("line art")
    empty = np.zeros((100, 100), np.uint8)
    assert photos.screen_foreground(_rgba(tmp_path / "empty.png", empty)) == "fully transparent"
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert photos.screen_foreground(tmp_path / "broken.png").startswith("unreadable")


def test_stored_mode_tells_a_transparent_palette_from_an_opaque_one(photos, tmp_path):
    palette = Image.new("P", (8, 8))
    palette.save(tmp_path / "opaque.png")
    palette.save(tmp_path / "clear.png", transparency=0)
    assert photos.stored_mode(tmp_path / "opaque.png") == "P-opaque"
    assert photos.stored_mode(tmp_path / "clear.png") == "P"
    _rgba(tmp_path / "la.png", _solid(100, 70), "LA")
    assert photos.stored_mode(tmp_path / "la.png") == "LA"


def test_choose_foregrounds_fills_the_quotas_and_counts_what_it_left_out(photos, tmp_path, monkeypatch):
    good = [_rgba(tmp_path / f"rgba_{i}.png", _solid(120, 80)) for i in range(3)]
    good += [_rgba(tmp_path / f"la_{i}.png", _solid(120, 80), "LA") for i in range(2)]
    Image.new("RGB", (100, 100)).save(tmp_path / "a_rgb.png")
    files = [*good, _rgba(tmp_path / "a_small.png", _solid(120, 30)), tmp_path / "a_rgb.png"]
    chosen, skipped = photos.choose_foregrounds(files, {"RGBA": 3, "LA": 2})
    assert sorted(chosen) == sorted(good)
    assert photos.choose_foregrounds(files, {"RGBA": 3, "LA": 2}) == (chosen, skipped)  # a seeded order
    # in name order the two rejects come first, so both are looked at and counted
    monkeypatch.setattr(photos.random, "Random", lambda seed: type("Sorted", (), {"shuffle": lambda self, x: None})())
    chosen, skipped = photos.choose_foregrounds(files, {"RGBA": 2, "LA": 2})
    assert [p.name for p in chosen] == ["la_0.png", "la_1.png", "rgba_0.png", "rgba_1.png"]
    assert skipped == {"object under 64 px": 1, "no transparency": 1}
    with pytest.raises(SystemExit, match="missing 1 LA"):
        photos.choose_foregrounds(files, {"RGBA": 1, "LA": 3})


def _result(model_iou: float, baseline_iou: float) -> dict:
    model = {"mask_iou": model_iou, "mask_iou_dataset": 0.95, "mask_dice": 0.96, "depth_rmse": 0.05}
    model |= {"depth_object_rmse": 0.04, "depth_delta1": 0.9}
    return {
        "metrics": model,
        "baselines": {
            "difference_mask": {"mask_iou": baseline_iou, "mask_iou_dataset": 0.5, "mask_dice": 0.6, "threshold": 0.1},
            "background_depth": {"depth_rmse": 0.2, "depth_object_rmse": 0.3, "depth_delta1": 0.7},
        },
    }


def test_results_table_puts_the_model_beside_both_baselines(photos):
    lines = photos.results_table(_result(0.93124, 0.41)).splitlines()
    assert lines[0].startswith("| | mask IoU (per image) | mask IoU (dataset) | Dice |")
    assert lines[2] == "| model | 0.9312 | 0.9500 | 0.9600 | 0.0500 | 0.0400 | 0.9000 |"
    assert lines[3] == "| difference mask (t = 0.1) | 0.4100 | 0.5000 | 0.6000 | – | – | – |"
    assert lines[4] == "| background depth | – | – | – | 0.2000 | 0.3000 | 0.7000 |"


@pytest.mark.parametrize(
    ("model", "baseline", "met"), [(0.93, 0.5, True), (0.91, 0.5, False), (0.93, 0.95, False), (0.92, 0.5, True)]
)
def test_verdict_needs_the_target_and_the_baseline_beaten(photos, model, baseline, met):
    assert ("NOT MET" not in photos.verdict(_result(model, baseline))) is met


def test_shared_photo_scores_split_the_test_samples_by_a_training_crop_of_their_photo(photos):
    from fgbg_utils.split_predictions import SplitPredictions

    count, size = 4, 8
    mask = np.zeros((count, size, size), np.uint8)
    mask[:, 2:6, 2:6] = 1
    prob = mask.astype(np.float32)
    prob[2:] = 1.0 - prob[2:]  # samples 2 and 3 predicted inside out: IoU 0
    images = np.zeros((count, size, size, 3), np.uint8)
    depth = np.zeros((count, size, size), np.uint8)
    ids = {"sample": np.arange(count), "bg_id": np.array([0, 1, 2, 2])}
    predictions = SplitPredictions.from_arrays(
        "unseen_test", images, images, mask, prob, depth, depth.astype(float), ids
    )
    # bg 3 (trained on) is a zoomed crop of bg 1's photo; bgs 0 and 2 are their photos' only crops
    manifest = {"backgrounds": [{"source": f"/x/bg_{i:03d}.png"} for i in range(4)]}
    sources = {"backgrounds": [{"file": f"bg_{i:03d}.png", "photo": p} for i, p in enumerate([0, 1, 2, 1])]}
    scores = photos.shared_photo_scores(predictions, manifest, sources)
    assert scores == {
        "shared_backgrounds": [1],
        "shared_samples": 1,
        "shared_iou": 1.0,
        "unshared_samples": 3,
        "unshared_iou": pytest.approx(1 / 3),
    }
