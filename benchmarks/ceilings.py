"""What a perfect model would score on a dataset at one size: the ceilings the data itself sets, for
reading the README's targets and any model's scores against them.

* Mask. At a smaller size the targets are the stored mask read at each pixel's centre (the kit's
  nearest-exact resize), and the images are read at the same centres: the kit's INTER_LINEAR takes
  the four source pixels around each centre and, when it shrinks, averages no area. So a resized
  image shows the outline where it passes each centre, thin parts dashed just as in the targets.
  Scored: the stored mask read bilinearly at each centre, over one half (what a model could at
  best recover from such images), and how much of each pixel the object covers, over one half
  (the mask resized by area averaging: what an area-averaged image would show, blind to the
  dashes).
* Depth, for datasets drawn with a camera per background (the demo's `geometric` depth): the
  depth of the ground, and of everything standing on it, scales with the camera's height, which
  the images barely show (the demo's ground textures vary in scale far more than its cameras vary
  in height). Scored: the true depth map with every depth but the sky's scaled as if each scene
  had been taken from one camera height, the one that scores best on the training split.

* Thin parts. The 0.5 reading knows the outline; the images show only how much of each pixel the
  object covers times its contrast with what is behind it. Where a part is thinner than a pixel, a
  faint line can be a thin part in a strong colour or a wider part in a faint one. Reported: how
  much of the image such parts take, and, with ``--checkpoint``, how much of a model's error lies
  there and what its IoU would be with that error (or all the rest) made right.
* With ``--checkpoint``, the same split of its errors for the outline (the pixels within one pixel
  of the target's edge), and its IoU on small objects (under `SMALL_SHARE` of the frame) and the rest.

Scores use the kit's own metrics, on evenly spaced samples of the test split.

    python benchmarks/ceilings.py --data runs/demo/data --size 96 [--checkpoint RUN/checkpoints/last.pt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from fgbg_utils.data import FgBgDataset, evenly_spaced_positions
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.depth import FAR_M, NEAR_M
from fgbg_utils.manifest import read_manifest
from fgbg_utils.metrics import depth_stats, mask_stats, summarize_depth, summarize_mask
from fgbg_utils.runtime import runs_dir
from fgbg_utils.split_predictions import predict_split
from fgbg_utils.transforms import make_transforms

HEIGHT_GRID = np.round(np.arange(1.0, 2.5001, 0.01), 2)
"""Candidate camera heights (m) for the one-height model."""
THIN_WIDTH = 5
"""Parts of the stored mask narrower than this many source pixels are thin (about two output pixels
from 224 to 96 px)."""


def resized(image: np.ndarray, size: int, interpolation: int) -> np.ndarray:
    return cv2.resize(image, (size, size), interpolation=interpolation)


def perfect_masks(mask: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """The two perfect estimates of the stored {0, 1} mask's target at `size`."""
    mask = mask.astype(np.float32)
    return {
        "outline at the pixel centre": resized(mask, size, cv2.INTER_LINEAR) > 0.5,
        "coverage over one half": resized(mask, size, cv2.INTER_AREA) > 0.5,
    }


def thin_parts(mask: np.ndarray, size: int, width: int = THIN_WIDTH) -> np.ndarray:
    """The pixels at `size` that touch a part of the stored {0, 1} `mask` narrower than `width` source
    pixels (what an opening with a `width` disc removes), or the two source pixels around it."""
    mask = mask > 0
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))
    thin = mask & (cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, disc) == 0)
    around = cv2.dilate(thin.astype(np.uint8), np.ones((5, 5), np.uint8))
    return resized(around.astype(np.float32), size, cv2.INTER_AREA) > 0


SMALL_SHARE = 50 / 96**2
"""A small object covers under 0.54 % of the frame: 50 px at 96 px, 272 px at 224 px."""


def outline(target: np.ndarray) -> np.ndarray:
    """The pixels within one pixel of the {0, 1} `target`'s edge: its 3 x 3 dilation minus its erosion."""
    kernel, target = np.ones((3, 3), np.uint8), target.astype(np.uint8)
    return cv2.dilate(target, kernel) != cv2.erode(target, kernel)


def small_object_scores(estimates: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """The share of images whose object is small (`SMALL_SHARE`) and the per-image IoU on them and the rest."""
    small = targets.reshape(len(targets), -1).mean(1) < SMALL_SHARE
    iou = mask_stats(torch.from_numpy(estimates), torch.from_numpy(targets))["iou"].numpy()
    return {
        "share_of_images": float(small.mean()),
        "mask_iou_small": float(iou[small].mean()) if small.any() else float("nan"),
        "mask_iou_rest": float(iou[~small].mean()) if (~small).any() else float("nan"),
    }


def mask_scores(estimates: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """The kit's mask scores of binary `estimates` (N x H x W) against `targets`."""
    stats = mask_stats(torch.from_numpy(estimates), torch.from_numpy(targets))
    return summarize_mask({k: v.numpy() for k, v in stats.items()})


def where_errors_are(estimates: np.ndarray, targets: np.ndarray, zone: np.ndarray) -> dict[str, float]:
    """How the wrong pixels of binary `estimates` split between `zone` and the rest: the zone's share
    of the pixels and of the wrong ones, and the per-image IoU as is, made right in the zone, and
    made right everywhere else."""
    wrong = estimates != targets

    def mean_iou(made: np.ndarray) -> float:
        return mask_scores(made, targets)["mask_iou"]

    return {
        "zone_share_of_pixels": float(zone.mean()),
        "zone_share_of_errors": float((wrong & zone).sum() / max(int(wrong.sum()), 1)),
        "mask_iou": mean_iou(estimates),
        "mask_iou_right_in_zone": mean_iou(np.where(zone, targets, estimates)),
        "mask_iou_right_elsewhere": mean_iou(np.where(zone, estimates, targets)),
    }


def one_camera_depth(depth: np.ndarray, true_height: float | np.ndarray, assumed_height: float) -> np.ndarray:
    """A [0, 1] inverse-depth map as a camera at `assumed_height` would have drawn the same scene: every
    depth but the sky's (0) multiplied by assumed / true height, clipped to the encoding's planes.
    Broadcasts: maps N x H x W with heights of shape (N, 1, 1)."""
    span = 1.0 / NEAR_M - 1.0 / FAR_M
    inverse = (1.0 / FAR_M + depth * span) * (true_height / assumed_height)
    return np.where(depth > 0, np.clip((inverse - 1.0 / FAR_M) / span, 0.0, 1.0), depth)


def camera_heights(root: Path) -> dict[int, float] | None:
    """Each background's camera height from the manifest, or None unless its depth is `geometric`
    (drawn from those cameras; a MiDaS map or a photo's has no camera to scale)."""
    manifest = read_manifest(root)
    if manifest["generation"]["depth"]["source"] != "geometric":
        return None
    return {int(bg["id"]): float(bg["camera"]["height_m"]) for bg in manifest["backgrounds"]}


def load_samples(root: Path, split: str, limit: int, size: int) -> dict[str, np.ndarray]:
    """Evenly spaced samples of `split`: the stored masks, their targets and the depth maps at `size`
    (in [0, 1]) as the kit's evaluation transform makes them, and the background ids."""
    dataset = FgBgDataset(DatasetInfo.open(root), split)
    transform = make_transforms(size, train=False, stats=read_manifest(root), output="uint8")
    masks, targets, depths, bg_ids = [], [], [], []
    for position in tqdm(evenly_spaced_positions(len(dataset), limit), desc=f"reading {split}", leave=False):
        arrays = dataset.load_arrays(position)
        at_size = transform.augment(**arrays)
        masks.append(arrays["mask"] > 0)
        targets.append(at_size["mask"] > 0)
        depths.append(at_size["depth"] / 255.0)
        bg_ids.append(int(dataset.index["bg"][dataset.positions[position]]))
    return {"mask": np.stack(masks), "target": np.stack(targets), "depth": np.stack(depths), "bg_id": np.array(bg_ids)}


def perfect_estimates(masks: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """`perfect_masks` of every stored mask, stacked per estimate (N x size x size each)."""
    per_mask = [perfect_masks(mask, size) for mask in masks]
    return {name: np.stack([estimates[name] for estimates in per_mask]) for name in per_mask[0]}


def one_camera_scores(depths: np.ndarray, heights: np.ndarray, assumed_height: float) -> dict[str, float]:
    """Depth scores of the one-camera maps against the true maps."""
    predicted = one_camera_depth(depths, heights[:, None, None], assumed_height)
    stats = depth_stats(torch.from_numpy(predicted)[:, None], torch.from_numpy(depths)[:, None])
    return summarize_depth({k: v.numpy() for k, v in stats.items()})


def best_height(depths: np.ndarray, heights: np.ndarray) -> float:
    """The one camera height of HEIGHT_GRID with the lowest mean per-image RMSE on these maps."""

    def mean_rmse(assumed: float) -> float:
        error = one_camera_depth(depths, heights[:, None, None], assumed) - depths
        return float(np.sqrt((error**2).mean(axis=(1, 2))).mean())

    return float(min(HEIGHT_GRID, key=mean_rmse))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=runs_dir() / "demo" / "data")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--split", default="unseen_test", help="the split scored")
    parser.add_argument("--fit-split", default="unseen_train", help="the split the one camera height is chosen on")
    parser.add_argument("--samples", type=int, default=900, help="evenly spaced samples of each split")
    parser.add_argument("--checkpoint", type=Path, default=None, help="also split this model's mask errors")
    args = parser.parse_args(argv)

    test = load_samples(args.data, args.split, args.samples, args.size)
    results: dict = {"size": args.size, "split": args.split, "samples": len(test["mask"])}
    estimates = perfect_estimates(test["mask"], args.size)
    results["mask"] = {name: mask_scores(estimate, test["target"]) for name, estimate in estimates.items()}
    print(f"{args.data}, {args.split}, {results['samples']} samples at {args.size} px")
    for name, scores in results["mask"].items():
        print(
            f"mask, {name}: IoU {scores['mask_iou']:.3f} per image ({scores['mask_iou_dataset']:.3f} over all pixels)"
        )
    zone = np.stack([thin_parts(mask, args.size) for mask in test["mask"]])
    reading = estimates["outline at the pixel centre"]
    results["thin_parts"] = {"perfect reading": where_errors_are(reading, test["target"], zone)}
    if args.checkpoint is not None:
        predicted = predict_split(
            args.checkpoint, DatasetInfo.open(args.data), args.split, limit=args.samples, progress=False
        )
        if predicted.mask_prob.shape != test["target"].shape:
            raise ValueError(f"{args.checkpoint}: it is scored at {predicted.mask_prob.shape[-1]} px; pass that --size")
        if not np.array_equal(predicted.mask > 0, test["target"]):
            raise ValueError(f"{args.checkpoint}: its targets are not the ones the ceilings were read against")
        estimate = predicted.mask_prob > 0.5
        results["thin_parts"]["checkpoint"] = where_errors_are(estimate, test["target"], zone)
        edges = np.stack([outline(target) for target in test["target"]])
        results["outline"] = where_errors_are(estimate, test["target"], edges)
        results["small_objects"] = small_object_scores(estimate, test["target"])
    for name, split in results["thin_parts"].items():
        print(
            f"thin parts (under {THIN_WIDTH} source px, and 2 px around): {split['zone_share_of_pixels']:.2%} of the "
            f"pixels, {split['zone_share_of_errors']:.0%} of the {name}'s wrong ones; its IoU {split['mask_iou']:.3f}, "
            f"{split['mask_iou_right_in_zone']:.3f} made right there, {split['mask_iou_right_elsewhere']:.3f} "
            "made right everywhere else"
        )
    if "outline" in results:
        edges, small = results["outline"], results["small_objects"]
        print(
            f"outline (within 1 px of the target's edge): {edges['zone_share_of_pixels']:.2%} of the pixels, "
            f"{edges['zone_share_of_errors']:.0%} of the checkpoint's wrong ones; IoU "
            f"{edges['mask_iou_right_in_zone']:.3f} made right there, {edges['mask_iou_right_elsewhere']:.3f} elsewhere"
        )
        print(
            f"small objects (under {SMALL_SHARE:.2%} of the frame): {small['share_of_images']:.0%} of the images, "
            f"IoU {small['mask_iou_small']:.3f} on them, {small['mask_iou_rest']:.3f} on the rest"
        )
    heights = camera_heights(args.data)
    if heights is None:
        print("depth: not drawn from a camera per background (the manifest's depth source is not geometric); skipped")
        return results
    fit = load_samples(args.data, args.fit_split, args.samples, args.size)
    assumed = best_height(fit["depth"], np.array([heights[int(i)] for i in fit["bg_id"]]))
    scores = one_camera_scores(test["depth"], np.array([heights[int(i)] for i in test["bg_id"]]), assumed)
    results["depth"] = {"assumed_height_m": assumed, "fit_split": args.fit_split, **scores}
    print(
        f"depth, true scene drawn from one camera height ({assumed:.2f} m, best on {args.fit_split}): "
        f"RMSE {scores['depth_rmse']:.4f} per image ({scores['depth_rmse_pooled']:.4f} pooled), "
        f"δ1 {scores['depth_delta1']:.3f}"
    )
    return results


if __name__ == "__main__":
    main()
