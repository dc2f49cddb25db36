"""Predictions made up for the tests of predictions, figures and the browser, and a numpy IoU to check them by."""

import numpy as np

from fgbg_utils.split_predictions import SplitPredictions


def synthetic(split: str = "synthetic", count: int = 6, size: int = 12, seed: int = 0) -> SplitPredictions:
    """Random images; a square object per sample; probabilities that overlap between object and
    background, so every threshold gives other masks and IoUs."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((count, size, size), np.uint8)
    for i in range(count):
        side = 2 + i % 5
        top, left = rng.integers(0, size - side, 2)
        mask[i, top : top + side, left : left + side] = 1
    prob = (0.6 * rng.random(mask.shape) + 0.4 * mask).astype(np.float32)
    return SplitPredictions.from_arrays(
        split,
        bg=rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8),
        fg_bg=rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8),
        mask=mask,
        mask_prob=prob,
        depth=rng.integers(0, 256, (count, size, size), dtype=np.uint8),
        depth_pred=rng.random((count, size, size)).astype(np.float32),
        ids={
            "sample": np.arange(100, 100 + count),
            "bg_id": np.arange(count) % 3,
            "fg_id": np.arange(count) % 2,
            "flip": np.arange(count) % 2,
        },
    )


def numpy_iou(prob: np.ndarray, mask: np.ndarray, threshold: float) -> float:
    predicted, target = prob > threshold, mask > 0
    union = np.logical_or(predicted, target).sum()
    return 1.0 if union == 0 else np.logical_and(predicted, target).sum() / union
