"""Figures of a split's predictions and of a training run.

Each sample is drawn as seven panels (`COLUMNS`): inputs, true and predicted mask, true and predicted
depth and the depth error. `prediction_grid`, `worst_cases` and `sample_figure` (the browser's view)
share `draw_sample`; `metric_distributions` and `learning_curves` plot scores.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .data import evenly_spaced_positions
from .runs import read_run_metrics
from .split_predictions import SplitPredictions
from .viz import overlay_mask

COLUMNS = ("bg", "fg_bg", "true mask", "predicted mask", "true depth", "predicted depth", "depth error")
"""The panels of one sample, left to right, in every figure and in the browser."""
DEPTH_COLORMAPS = ("magma", "viridis", "plasma", "turbo", "gray")
DEPTH_ERROR_MAX = 0.5
"""The depth error map's colour scale is fixed at 0..0.5 (on the 0..1 depth scale), so maps of
different samples compare at a glance."""


def draw_sample(
    axes: Sequence,
    predictions: SplitPredictions,
    i: int,
    threshold: float = 0.5,
    overlay: bool = False,
    colormap: str = DEPTH_COLORMAPS[0],
) -> None:
    """Sample i's seven panels (`COLUMNS`) into seven axes, scores in the titles."""
    scores = predictions.mask_scores(threshold)
    predicted = predictions.predicted_mask(i, threshold)
    fg_bg = overlay_mask(predictions.fg_bg[i], predicted) if overlay else predictions.fg_bg[i]
    rmse = predictions.metrics["depth_rmse"][i]
    sample = int(predictions.ids["sample"][i])
    panels = (
        (predictions.bg[i], {}, "bg"),
        (fg_bg, {}, f"fg_bg #{sample}" + (" + predicted mask" if overlay else "")),
        (predictions.mask[i], {"cmap": "gray", "vmin": 0, "vmax": 1}, "true mask"),
        (predicted, {"cmap": "gray", "vmin": 0, "vmax": 1}, f"mask > {threshold:.2f}, IoU {scores['iou'][i]:.2f}"),
        (predictions.depth[i], {"cmap": colormap, "vmin": 0, "vmax": 255}, "true depth"),
        (predictions.depth_pred[i], {"cmap": colormap, "vmin": 0, "vmax": 1}, f"predicted, RMSE {rmse:.3f}"),
        (predictions.depth_error(i), {"cmap": "inferno", "vmin": 0, "vmax": DEPTH_ERROR_MAX}, "|depth error|"),
    )
    for axis, (image, style, title) in zip(axes, panels, strict=True):
        axis.imshow(image, interpolation="nearest", **style)
        axis.set_title(title, fontsize=8)
        axis.set_xticks([])  # a frame, no ticks: an all-white mask still shows its edge
        axis.set_yticks([])
    if overlay:
        axes[1].contour(predictions.mask[i], levels=[0.5], colors="lime", linewidths=0.8)


def prediction_grid(
    predictions: SplitPredictions,
    indices: Iterable[int] | None = None,
    threshold: float = 0.5,
    overlay: bool = False,
    colormap: str = DEPTH_COLORMAPS[0],
    size: float = 1.8,
    title: str | None = None,
):
    """One row per sample (default: six evenly spaced), the seven `COLUMNS`. Returns the figure."""
    indices = evenly_spaced_positions(len(predictions), 6) if indices is None else list(indices)
    height = (size + 0.35) * len(indices) + 0.4
    figure, axes = plt.subplots(len(indices), len(COLUMNS), figsize=(size * len(COLUMNS), height), squeeze=False)
    for row, i in zip(axes, indices, strict=True):
        draw_sample(row, predictions, i, threshold, overlay, colormap)
    figure.suptitle(title or f"{predictions.split}: {len(indices)} of {len(predictions)} samples", fontsize=10)
    # fixed margins (inches: the title and the first row's panel titles, 0.35 per row); tight_layout is slow
    figure.subplots_adjust(left=0.005, right=0.995, bottom=0.01, top=1 - 0.75 / height, wspace=0.06, hspace=0.3)
    return figure


def worst_cases(predictions: SplitPredictions, k: int = 6, threshold: float = 0.5, **options):
    """The `k` samples with the lowest IoU at `threshold`, worst first, as a `prediction_grid`."""
    worst = predictions.order("worst IoU", threshold)[:k]
    title = f"{predictions.split}: the {len(worst)} lowest mask IoUs of {len(predictions)} samples"
    return prediction_grid(predictions, worst, threshold, title=title, **options)


def metric_distributions(predictions: SplitPredictions, threshold: float = 0.5, bins: int = 20):
    """Histograms of the per-sample mask IoU and depth RMSE with their mean and median."""
    iou = predictions.mask_scores(threshold)["iou"]
    rmse = predictions.metrics["depth_rmse"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3))
    for axis, values, name, limits, colour in (
        (axes[0], iou, f"mask IoU (threshold {threshold:.2f})", (0.0, 1.0), "tab:green"),
        (axes[1], rmse, "depth RMSE (0..1 scale)", (0.0, max(float(rmse.max()), 1e-3)), "tab:red"),
    ):
        axis.hist(values, bins=bins, range=limits, color=colour, alpha=0.75)
        axis.axvline(float(np.mean(values)), color="black", label=f"mean {np.mean(values):.3f}")
        axis.axvline(float(np.median(values)), color="black", linestyle="--", label=f"median {np.median(values):.3f}")
        axis.set_xlabel(name)
        axis.set_ylabel("samples")
        axis.legend(fontsize=8)
    figure.suptitle(f"{predictions.split}: per-sample scores of {len(predictions)} samples", fontsize=10)
    figure.tight_layout()
    return figure


LEARNING_PANELS = (
    (
        "training loss",
        (
            "train_total",
            "train_mask_bce",
            "train_mask_dice",
            "train_mask_lovasz",
            "train_depth_l1",
            "train_depth_ssim",
            "train_depth_ground",
        ),
    ),
    ("mask (validation)", ("val_mask_iou", "val_mask_dice")),
    ("depth error (validation)", ("val_depth_rmse", "val_depth_mae")),
    ("depth δ1 (validation)", ("val_depth_delta1",)),
)


def learning_curves(run_dir: str | Path):
    """Training loss and validation scores against the step, from a run folder's metrics;
    dotted lines mark where progressive resizing changed the image size."""
    rows = read_run_metrics(run_dir)
    steps = [row["step"] for row in rows]
    figure, axes = plt.subplots(1, len(LEARNING_PANELS), figsize=(4 * len(LEARNING_PANELS), 3.2))
    split = next((row["val_split"] for row in rows if "val_split" in row), "validation")
    for axis, (title, keys) in zip(axes, LEARNING_PANELS, strict=True):
        for key in keys:
            if any(key in row for row in rows):
                values = [row.get(key, np.nan) for row in rows]
                axis.plot(
                    steps, values, marker="o", markersize=3, linewidth=2 if key == "train_total" else 1, label=key
                )
        for before, after in itertools.pairwise(rows):
            if before.get("size") != after.get("size"):
                axis.axvline(before["step"], color="gray", linestyle=":", linewidth=1)
        axis.set_title(title.replace("validation", split), fontsize=10)
        axis.set_xlabel("step")
        if axis.lines:
            axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def sample_figure(
    predictions: SplitPredictions,
    i: int,
    threshold: float = 0.5,
    overlay: bool = False,
    colormap: str = DEPTH_COLORMAPS[0],
    size: float = 1.9,
) -> Figure:
    """Sample i's seven panels in a figure outside pyplot (nothing is shown or kept open)."""
    figure = Figure(figsize=(size * len(COLUMNS), size + 0.35))
    axes = figure.subplots(1, len(COLUMNS))
    draw_sample(axes, predictions, i, threshold, overlay, colormap)
    figure.subplots_adjust(left=0.005, right=0.995, bottom=0.02, top=0.86, wspace=0.06)  # tight_layout: 3x slower
    return figure
