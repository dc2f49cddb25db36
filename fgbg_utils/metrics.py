"""Evaluation metrics for the mask and depth heads, a per-split accumulator, and the two baselines.

Conventions (written here once, used everywhere):

Mask
    * A prediction is binarised explicitly: `mask_metrics` takes *logits* and thresholds
      ``sigmoid(logits) > threshold``; `mask_metrics_from_probs` takes probabilities;
      `mask_stats` takes an already binary mask (the difference baseline). The comparison is
      strict (``>``), so a probability of exactly 0.5 is background.
    * Targets are used as given (``target > 0.5`` only guards against float noise); no sigmoid
      is ever applied to a target.
    * IoU = |P & T| / |P | T| and Dice = 2|P & T| / (|P| + |T|), computed **per image** and
      then averaged (``mask_iou``, ``mask_dice``: every image counts once, so small foregrounds
      matter) and **dataset-level** from summed counts (``mask_iou_dataset``,
      ``mask_dice_dataset``: every pixel counts once, large foregrounds dominate).
    * Empty-mask convention: prediction and target both empty -> IoU = Dice = 1 (a correct
      "nothing here"); exactly one of them empty -> 0. Dataset-level sums follow the same
      rule (no foreground pixel anywhere in either -> 1).

Depth (``pred`` and ``target`` Bx1xHxW in [0, 1], the stored 8-bit inverse depth / 255)
    * ``depth_rmse``, ``depth_mae``, ``depth_ssim`` on that [0, 1] scale, the scale the course
      compares (other write-ups' [0, 1] may be min-max rescaled per image: not comparable).
    * ``depth_abs_rel``, ``depth_rmse_m``, ``depth_rmse_log``, ``depth_delta1..3`` on metric
      depth, decoded exactly as `fgbg_utils.depth.decode_depth` does (`decode_depth_torch`),
      following monodepth2's ``compute_errors``: AbsRel = mean(|gt - pred| / gt),
      delta_k = mean(max(gt / pred, pred / gt) < 1.25^k). Metres, not the [0, 1] values,
      because the encoded value is 0 at the sky and the far plane (division by zero), while
      metres lie in [NEAR_M, FAR_M] = [2, 100]. Every pixel counts (the sky is a valid 100 m).
      Predictions are clamped to [0, 1] before decoding (outside it the decoding is not a
      depth). Constant maps are fine: nothing divides by a spatial variance.
    * All are computed per image and averaged over images (monodepth2's convention);
      ``depth_rmse_pooled`` is the RMSE over all pixels of the split instead.
    * ``depth_object_rmse`` and ``depth_object_delta1``: the same over the true mask's pixels only,
      averaged over the images that have any. The object covers a few percent of an image, so
      whole-image scores barely see it: the background-depth baseline is right everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from fgbg_utils.depth import FAR_M, NEAR_M
from fgbg_utils.losses import ssim

MASK_FROM = ("logits", "probs", "binary")
ID_KEYS = ("sample", "bg_id", "fg_id", "flip")
DELTA_BASE = 1.25


# --- mask --------------------------------------------------------------------------------------


def binarize(mask: Tensor, mask_from: str = "logits", threshold: float = 0.5) -> Tensor:
    """Boolean foreground of a predicted mask given as logits, probabilities or already binary."""
    if mask_from == "logits":
        return torch.sigmoid(mask.float()) > threshold
    if mask_from == "probs":
        return mask > threshold
    if mask_from == "binary":
        return mask.bool() if mask.dtype == torch.bool else mask > 0.5
    raise ValueError(f"unknown mask_from {mask_from!r}: choose one of {', '.join(MASK_FROM)}")


def _per_image_shape(x: Tensor) -> tuple[int, ...]:
    """(batch, H, W) for B x 1 x H x W and B x H x W alike."""
    return (x.shape[0], *x.shape[2:]) if x.dim() == 4 and x.shape[1] == 1 else tuple(x.shape)


def mask_stats(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-image counts and scores of a binary prediction (B, ...) against a {0, 1} target.

    Returns float64 tensors of shape (B,): ``iou``, ``dice`` (empty convention in the module
    docstring) and the counts ``intersection``, ``union``, ``pred_area``, ``target_area`` that
    dataset-level scores are summed from.
    """
    if _per_image_shape(pred) != _per_image_shape(target):
        raise ValueError(f"mask prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    pred = pred.bool().flatten(1)
    target = (target > 0.5).flatten(1).to(pred.device)
    intersection = (pred & target).sum(1).double()
    union = (pred | target).sum(1).double()
    pred_area, target_area = pred.sum(1).double(), target.sum(1).double()
    total = pred_area + target_area
    one = torch.ones_like(union)
    iou = torch.where(union > 0, intersection / union.clamp_min(1), one)
    dice = torch.where(total > 0, 2 * intersection / total.clamp_min(1), one)
    return {
        "iou": iou,
        "dice": dice,
        "intersection": intersection,
        "union": union,
        "pred_area": pred_area,
        "target_area": target_area,
    }


def summarize_mask(stats: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-image means and dataset-level scores from per-image `mask_stats` (as NumPy arrays)."""
    inter, union = float(np.sum(stats["intersection"])), float(np.sum(stats["union"]))
    total = float(np.sum(stats["pred_area"]) + np.sum(stats["target_area"]))
    return {
        "mask_iou": float(np.mean(stats["iou"])),
        "mask_dice": float(np.mean(stats["dice"])),
        "mask_iou_dataset": inter / union if union > 0 else 1.0,
        "mask_dice_dataset": 2 * inter / total if total > 0 else 1.0,
    }


def _numpy(stats: dict[str, Tensor]) -> dict[str, np.ndarray]:
    return {key: value.detach().cpu().double().numpy() for key, value in stats.items()}


def mask_metrics(logits: Tensor, target: Tensor, threshold: float = 0.5) -> dict[str, float]:
    """Mask scores of a batch from LOGITS (``sigmoid(logits) > threshold``): per-image mean and
    dataset-level IoU and Dice (see the module docstring)."""
    return summarize_mask(_numpy(mask_stats(binarize(logits, "logits", threshold), target)))


def mask_metrics_from_probs(probs: Tensor, target: Tensor, threshold: float = 0.5) -> dict[str, float]:
    """As `mask_metrics`, for PROBABILITIES in [0, 1] (``probs > threshold``)."""
    return summarize_mask(_numpy(mask_stats(binarize(probs, "probs", threshold), target)))


# --- depth -------------------------------------------------------------------------------------


def decode_depth_torch(values: Tensor) -> Tensor:
    """[0, 1] inverse-depth values (8-bit code / 255) to metres, as `fgbg_utils.depth.decode_depth`.

    Values are clamped to [0, 1] first, so the result always lies in [NEAR_M, FAR_M].
    """
    scaled = values.double().clamp(0.0, 1.0)
    return 1.0 / (1.0 / FAR_M + scaled * (1.0 / NEAR_M - 1.0 / FAR_M))


def depth_stats(pred: Tensor, target: Tensor, ssim_window: int = 7, region: Tensor | None = None) -> dict[str, Tensor]:
    """Per-image depth errors, float64 tensors of shape (B,) (conventions in the module docstring).

    Keys: ``rmse``, ``mae``, ``mse``, ``ssim`` on the [0, 1] scale; ``abs_rel``, ``rmse_m``,
    ``rmse_log``, ``delta1``, ``delta2``, ``delta3`` on metres; with `region` (the true mask, same
    shape), ``object_rmse`` and ``object_delta1`` over its pixels (NaN where it is empty).
    """
    if pred.shape != target.shape:
        raise ValueError(f"depth prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    target = target.to(pred.device)
    pred64, target64 = pred.double(), target.double()
    error = (pred64 - target64).flatten(1)
    mse = error.pow(2).mean(1)
    gt_m, pred_m = decode_depth_torch(target).flatten(1), decode_depth_torch(pred).flatten(1)
    ratio = torch.maximum(gt_m / pred_m, pred_m / gt_m)
    stats = {
        "rmse": mse.sqrt(),
        "mae": error.abs().mean(1),
        "mse": mse,
        # float32 (within 1e-5 of float64): a float64 depthwise convolution has no fast CPU kernel and
        # cost three quarters of scoring a batch at 224 px
        "ssim": ssim(pred.float(), target.float(), window=ssim_window).double(),
        "abs_rel": ((gt_m - pred_m).abs() / gt_m).mean(1),
        "rmse_m": (gt_m - pred_m).pow(2).mean(1).sqrt(),
        "rmse_log": (gt_m.log() - pred_m.log()).pow(2).mean(1).sqrt(),
    }
    for k in (1, 2, 3):
        stats[f"delta{k}"] = (ratio < DELTA_BASE**k).double().mean(1)
    if region is not None:
        if _per_image_shape(region) != _per_image_shape(target):  # a mask with or without its channel
            raise ValueError(f"depth region {tuple(region.shape)} and target {tuple(target.shape)} differ in shape")
        inside = (region.to(pred.device) > 0.5).reshape(error.shape).double()
        pixels = inside.sum(1)
        share = torch.where(pixels > 0, 1.0 / pixels, torch.nan)
        stats["object_rmse"] = ((error.pow(2) * inside).sum(1) * share).sqrt()
        stats["object_delta1"] = ((ratio < DELTA_BASE).double() * inside).sum(1) * share
    return stats


def summarize_depth(stats: dict[str, np.ndarray]) -> dict[str, float]:
    """Means over images of per-image `depth_stats` (as NumPy arrays), plus the pooled RMSE."""
    summary = {
        f"depth_{key}": float(np.mean(value)) for key, value in stats.items() if key != "mse" and "object" not in key
    }
    summary["depth_rmse_pooled"] = float(np.sqrt(np.mean(stats["mse"])))
    for key in ("object_rmse", "object_delta1"):
        values = stats.get(key)
        if values is not None and not np.isnan(values).all():
            summary[f"depth_{key}"] = float(np.nanmean(values))
    return summary


def depth_metrics(pred: Tensor, target: Tensor, ssim_window: int = 7) -> dict[str, float]:
    """Depth scores of a batch (pred and target in [0, 1]), averaged over its images."""
    return summarize_depth(_numpy(depth_stats(pred, target, ssim_window)))


# --- accumulator -------------------------------------------------------------------------------


class MetricAccumulator:
    """Collects per-image metrics batch by batch for one split.

    ``update(outputs, batch)`` takes a model's outputs (``"mask"`` as logits by default, see
    ``mask_from``; ``"depth"`` in [0, 1]; either may be absent, e.g. for a one-task model or a
    baseline) and the loader's batch. Per-image values are kept (with the batch's id columns
    ``sample``, ``bg_id``, ``fg_id``, ``flip`` when present) so a viewer can sort the worst
    cases; dataset-level IoU/Dice come from the summed counts, so the result does not depend
    on how the split was batched.
    """

    def __init__(self, split: str, threshold: float = 0.5, mask_from: str = "logits", ssim_window: int = 7):
        if mask_from not in MASK_FROM:
            raise ValueError(f"unknown mask_from {mask_from!r}: choose one of {', '.join(MASK_FROM)}")
        self.split = split
        self.threshold = threshold
        self.mask_from = mask_from
        self.ssim_window = ssim_window
        self.reset()

    def reset(self) -> None:
        self._columns: dict[str, list[np.ndarray]] = {}
        self._tasks: tuple[bool, bool] | None = None
        self.count = 0

    def __len__(self) -> int:
        return self.count

    @torch.no_grad()
    def update(self, outputs: dict[str, Tensor], batch: dict) -> None:
        tasks = ("mask" in outputs, "depth" in outputs)
        if not any(tasks):
            raise ValueError("outputs hold neither 'mask' nor 'depth'")
        if self._tasks is not None and tasks != self._tasks:
            raise ValueError(f"outputs changed tasks between batches: {self._tasks} then {tasks}")
        self._tasks = tasks
        rows: dict[str, np.ndarray] = {}
        if tasks[0]:
            binary = binarize(outputs["mask"], self.mask_from, self.threshold)
            rows.update({f"mask_{k}": v for k, v in _numpy(mask_stats(binary, batch["mask"])).items()})
        if tasks[1]:
            stats = depth_stats(outputs["depth"], batch["depth"], self.ssim_window, batch.get("mask"))
            rows.update({f"depth_{k}": v for k, v in _numpy(stats).items()})
        size = len(next(iter(rows.values())))
        for key in ID_KEYS:
            if key in batch:
                rows[key] = np.asarray(torch.as_tensor(batch[key]).cpu()).reshape(size)
        for key, value in rows.items():
            self._columns.setdefault(key, []).append(value)
        self.count += size

    def per_image(self) -> dict[str, np.ndarray]:
        """One array per metric (and id column), one entry per image in update order."""
        return {key: np.concatenate(parts) for key, parts in self._columns.items()}

    def summary(self) -> dict[str, float | str]:
        """``split``, ``images`` and the split's scores (names in the module docstring)."""
        result: dict[str, float | str] = {"split": self.split, "images": self.count}
        if not self.count:
            return result
        columns = self.per_image()
        for prefix, summarize in (("mask_", summarize_mask), ("depth_", summarize_depth)):
            stats = {k[len(prefix) :]: v for k, v in columns.items() if k.startswith(prefix)}
            if stats:
                result.update(summarize(stats))
        return result


# --- baselines ---------------------------------------------------------------------------------


def difference_mask(bg: Tensor, fg_bg: Tensor, threshold: float) -> Tensor:
    """Boolean (..., 1, H, W) mask where ``max over channels |fg_bg - bg| > threshold``.

    The change-detection baseline any learned mask must beat. Inputs are (..., C, H, W) images
    in [0, 1], NOT normalised (normalisation would weight the channels differently).
    """
    return (fg_bg.float() - bg.float()).abs().amax(dim=-3, keepdim=True) > threshold


class ThresholdChoice(NamedTuple):
    threshold: float
    """The candidate with the best dataset-level IoU (ties go to the smaller threshold)."""
    iou: float
    """Its dataset-level IoU on the data it was chosen on."""
    scores: dict[float, float]
    """Dataset-level IoU of every candidate."""


def _pair(item) -> tuple[Tensor, Tensor, Tensor]:
    if isinstance(item, dict):
        return item["bg"], item["fg_bg"], item["mask"]
    bg, fg_bg, mask = item
    return bg, fg_bg, mask


def choose_difference_threshold(
    pairs_iterable: Iterable, candidates: Sequence[float], split: str = "train"
) -> ThresholdChoice:
    """The `difference_mask` threshold with the best dataset-level IoU over the given batches.

    ``pairs_iterable`` yields loader batches (dicts with ``bg``, ``fg_bg``, ``mask``) or
    ``(bg, fg_bg, mask)`` tuples, from the TRAINING split: choosing on test data would leak it
    into the baseline, so ``split="test"`` or ``"unseen_test"`` is refused. Each batch is read once.
    """
    if split in ("test", "unseen_test"):
        raise ValueError(f"choose the difference threshold on training data, never on the test split ({split})")
    thresholds = sorted({float(c) for c in candidates})
    if not thresholds:
        raise ValueError("no candidate thresholds")
    inter = np.zeros(len(thresholds))
    union = np.zeros(len(thresholds))
    seen = False
    with torch.no_grad():
        for item in pairs_iterable:
            bg, fg_bg, mask = _pair(item)
            diff = (fg_bg.float() - bg.float()).abs().amax(dim=-3, keepdim=True)
            if _per_image_shape(diff) != _per_image_shape(mask):
                raise ValueError(f"images {tuple(fg_bg.shape)} and mask {tuple(mask.shape)} do not match")
            target = (mask > 0.5).to(diff.device).reshape(diff.shape)
            for i, t in enumerate(thresholds):
                pred = diff > t
                inter[i] += float((pred & target).sum())
                union[i] += float((pred | target).sum())
            seen = True
    if not seen:
        raise ValueError("no batches to choose the threshold on")
    ious = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    best = int(np.argmax(ious))
    return ThresholdChoice(thresholds[best], float(ious[best]), dict(zip(thresholds, ious.tolist(), strict=True)))


def background_depth(bg_depth: Tensor) -> Tensor:
    """The depth baseline: predict the background's own depth (the scene without the foreground).

    Right everywhere except under the pasted object, so it shows how much of a depth score
    comes from the background alone; a learned model must beat it inside the mask.
    """
    return bg_depth.float().clone()
