"""benchmarks/ceilings.py: the perfect estimates it scores, against hand-computed cases."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_samples import untrained_checkpoint

from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.depth import FAR_M, NEAR_M
from fgbg_utils.evaluate import evaluate
from fgbg_utils.train_config import TrainConfig
from fgbg_utils.transforms import make_transforms

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ceilings.py"


@pytest.fixture(scope="module")
def ceilings():
    spec = importlib.util.spec_from_file_location("ceilings", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_camera_depth_scales_inverse_depth_and_keeps_the_sky(ceilings):
    span = 1 / NEAR_M - 1 / FAR_M  # 0.49
    depth = np.array([[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(ceilings.one_camera_depth(depth, 1.6, 1.6), depth, atol=1e-12)
    # Twice the camera height: every depth doubles, so each inverse depth (0.01 + 0.5 * 0.49 = 0.255,
    # 0.01 + 0.49 = 0.5) halves.
    higher = ceilings.one_camera_depth(depth, 1.6, 3.2)
    np.testing.assert_allclose(higher, [[0.0, (0.1275 - 0.01) / span, (0.25 - 0.01) / span]])
    # Half the height: the near plane clips (1.0 stays 1.0), the sky stays at the far plane.
    np.testing.assert_allclose(ceilings.one_camera_depth(depth, 1.6, 0.8), [[0.0, 1.0, 1.0]])


def test_perfect_masks_hand_case(ceilings):
    """A one-pixel-wide line at 4 px, halved: the kit's target reads the centres (source columns 1
    and 3) and takes it whole; an area average gives each 2x2 block a half, and so does a bilinear
    read halfway between columns 0 and 1: neither is over one half."""
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[:, 1] = 1
    stats = {"bg": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    image, depth = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)
    target = make_transforms(2, train=False, stats=stats, output="uint8").augment(image, image, mask, depth)["mask"]
    assert target.tolist() == [[1, 0], [1, 0]]
    estimates = ceilings.perfect_masks(mask, 2)
    assert not estimates["coverage over one half"].any()
    assert not estimates["outline at the pixel centre"].any()
    assert all(np.array_equal(estimate, mask > 0) for estimate in ceilings.perfect_masks(mask, 4).values())


def ramp(height_m: float, size: int = 32) -> np.ndarray:
    """The [0, 1] depth map of flat ground seen by a level camera `height_m` high, horizon at 0.4."""
    rows = (np.arange(size) + 0.5) / size
    inverse = np.clip((rows - 0.4) / height_m, 0, None)
    depth = np.clip((inverse - 1 / FAR_M) / (1 / NEAR_M - 1 / FAR_M), 0, 1)
    return np.broadcast_to(depth[:, None], (size, size)).copy()


def test_best_height_finds_the_one_camera_of_every_scene(ceilings):
    depths, heights = np.stack([ramp(1.5)] * 3), np.full(3, 1.5)
    assert ceilings.best_height(depths, heights) == 1.5
    assert ceilings.one_camera_scores(depths, heights, 1.5)["depth_rmse"] == 0
    assert ceilings.one_camera_scores(depths, heights, 1.8)["depth_rmse"] > 0.01


def test_best_height_is_the_grid_height_that_scores_best(ceilings):
    """Three cameras: the search picks the grid height that the kit's own depth RMSE scores best."""
    heights = np.array([1.4, 1.6, 1.8])
    depths = np.stack([ramp(height) for height in heights])
    rmse = [ceilings.one_camera_scores(depths, heights, assumed)["depth_rmse"] for assumed in ceilings.HEIGHT_GRID]
    best = ceilings.best_height(depths, heights)
    assert best == ceilings.HEIGHT_GRID[int(np.argmin(rmse))]
    assert 1.4 < best < 1.8


def test_at_the_stored_size_the_mask_ceiling_is_perfect(ceilings, small_dataset, capsys):
    results = ceilings.main(["--data", str(small_dataset), "--size", "64", "--samples", "4"])
    assert results["samples"] == 4
    assert {scores["mask_iou"] for scores in results["mask"].values()} == {1.0}
    assert results["depth"]["assumed_height_m"] in ceilings.HEIGHT_GRID
    assert 0 < results["depth"]["depth_rmse"] < 0.2
    assert "one camera height" in capsys.readouterr().out


def test_depth_without_cameras_is_not_scored(ceilings, small_dataset, tmp_path):
    """A MiDaS-depth dataset's cameras (the default one every background gets) drew nothing."""
    manifest = json.loads((small_dataset / "data_manifest.json").read_text())
    assert set(ceilings.camera_heights(small_dataset)) == {bg["id"] for bg in manifest["backgrounds"]}
    manifest["generation"]["depth"]["source"] = "midas"
    (tmp_path / "data_manifest.json").write_text(json.dumps(manifest))
    assert ceilings.camera_heights(tmp_path) is None


def test_thin_parts_are_the_parts_narrower_than_the_width(ceilings):
    """Full-height bars at 28 px, read at 12 px (7 / 3 source pixels per output pixel): a 2 px bar
    (columns 10 and 11) is thin, and the zone spans the output columns over source columns 8 to 13;
    a 6 px bar is not thin at all."""
    narrow, wide = np.zeros((28, 28), np.uint8), np.zeros((28, 28), np.uint8)
    narrow[:, 10:12] = 1
    wide[:, 10:16] = 1
    zone = ceilings.thin_parts(narrow, 12)
    assert zone.all(axis=0).tolist() == [column in (3, 4, 5) for column in range(12)]
    assert zone.any(axis=0).tolist() == zone.all(axis=0).tolist()
    assert not ceilings.thin_parts(wide, 12).any()


def test_where_errors_are_hand_case(ceilings):
    """Image 0: a 2x2 target; the estimate misses (0, 0), inside the zone, and adds (3, 3), outside:
    IoU 3/5, 4/5 with the zone made right, 3/4 with the rest made right. Image 1: empty, right (1.0)."""
    targets = np.zeros((2, 4, 4), bool)
    targets[0, :2, :2] = True
    estimates = targets.copy()
    estimates[0, 0, 0], estimates[0, 3, 3] = False, True
    zone = np.zeros_like(targets)
    zone[0, 0, 0] = True
    split = ceilings.where_errors_are(estimates, targets, zone)
    assert split["zone_share_of_pixels"] == 1 / 32
    assert split["zone_share_of_errors"] == 0.5
    assert split["mask_iou"] == pytest.approx((0.6 + 1) / 2)
    assert split["mask_iou_right_in_zone"] == pytest.approx((0.8 + 1) / 2)
    assert split["mask_iou_right_elsewhere"] == pytest.approx((0.75 + 1) / 2)


def test_the_outline_is_one_pixel_either_side_of_the_edge(ceilings):
    target = np.zeros((7, 7), bool)
    target[2:5, 2:5] = True  # a 3x3 square: all of it but its centre, and the ring around it
    edges = ceilings.outline(target)
    expected = np.zeros((7, 7), bool)
    expected[1:6, 1:6] = True
    expected[3, 3] = False
    assert np.array_equal(edges, expected)


def test_small_objects_are_scored_apart(ceilings):
    """At 96 px a 7x7 object (49 px) is small, a 10x10 one is not; each image's IoU goes to its group."""
    targets = np.zeros((3, 96, 96), bool)
    targets[0, :7, :7] = targets[1, :10, :10] = targets[2, :10, :10] = True
    estimates = targets.copy()
    estimates[0, :7, 7:14] = True  # IoU 1/2
    estimates[2, :5, :10] = False  # IoU 1/2
    scores = ceilings.small_object_scores(estimates, targets)
    assert scores == pytest.approx({"share_of_images": 1 / 3, "mask_iou_small": 0.5, "mask_iou_rest": 0.75})


def test_a_checkpoints_errors_are_split_on_the_samples_evaluate_scores(ceilings, small_dataset, tmp_path):
    """The script's IoU for a checkpoint is the one `evaluate` gives on the same samples; a size other
    than the checkpoint's is refused with the size to pass."""
    torch.manual_seed(0)
    path = tmp_path / "last.pt"
    config = TrainConfig(data=str(small_dataset), out=str(tmp_path), sizes=(32,))
    untrained_checkpoint(path, config)
    results = ceilings.main(["--data", str(small_dataset), "--size", "32", "--samples", "4", "--checkpoint", str(path)])
    scored = evaluate(DatasetInfo.open(small_dataset), path, limit=4, threshold_samples=4, progress=False)
    split = results["thin_parts"]["checkpoint"]
    assert split["mask_iou"] == pytest.approx(scored["metrics"]["mask_iou"])
    assert results["outline"]["mask_iou"] == pytest.approx(scored["metrics"]["mask_iou"])
    assert split["mask_iou"] <= min(split["mask_iou_right_in_zone"], split["mask_iou_right_elsewhere"])
    assert results["thin_parts"]["perfect reading"]["mask_iou"] == pytest.approx(
        results["mask"]["outline at the pixel centre"]["mask_iou"]
    )
    with pytest.raises(ValueError, match="scored at 32 px; pass that --size"):
        ceilings.main(["--data", str(small_dataset), "--size", "64", "--samples", "4", "--checkpoint", str(path)])
