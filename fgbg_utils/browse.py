"""Looking at a trained model's predictions, sample by sample.

`predict_split` runs a checkpoint over a split once and keeps every sample's images, targets,
mask probabilities, predicted depth and per-sample scores (`SplitPredictions`). The figures
(`prediction_grid`, `learning_curves`, `metric_distributions`, `worst_cases`) and the widget
browser (`PredictionBrowser`) only read those arrays, so moving a slider never reruns the model.

The browser draws each view with Matplotlib's Agg canvas into PNG bytes shown in an
``ipywidgets.Image``: no interactive Matplotlib backend is involved, so the same code renders in
Jupyter, Colab and Voilà. Where no widget frontend runs (GitHub's notebook view, nbconvert),
`show_browser` also displays a static PNG of the current view (see `static_wanted`).
"""

from __future__ import annotations

import contextlib
import csv
import html
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from .checkpoints import latest_checkpoint, load_checkpoint, state_digest
from .data import FgBgDataset, evenly_spaced, evenly_spaced_positions, make_loader
from .dataset_info import DatasetInfo
from .evaluate import SCORES_FORMAT, evaluate, load_model, prepare_scoring
from .metrics import ID_KEYS, MetricAccumulator, mask_stats
from .predict import predict_batch
from .run_logs import read_metrics
from .runtime import in_colab
from .train import train
from .train_config import TrainConfig
from .transforms import prepare_batch
from .viz import figure_png, overlay_mask

COLUMNS = ("bg", "fg_bg", "true mask", "predicted mask", "true depth", "predicted depth", "depth error")
"""The panels of one sample, left to right, in every figure and in the browser."""
SORTS = ("index", "worst IoU")
DEPTH_COLORMAPS = ("magma", "viridis", "plasma", "turbo", "gray")
DEPTH_ERROR_MAX = 0.5
"""The depth error map's colour scale is fixed at 0..0.5 (on the 0..1 depth scale), so maps of
different samples compare at a glance."""
METRIC_CHUNK = 64
"""Samples scored at once by `SplitPredictions.from_arrays` (bounds the float64 temporaries)."""
DOM_CLASSES = {
    "widget": "fgbg-browser",
    "image": "fgbg-image",
    "sample": "fgbg-sample",
    "split": "fgbg-split",
    "sort": "fgbg-sort",
    "threshold": "fgbg-threshold",
    "overlay": "fgbg-overlay",
    "colormap": "fgbg-colormap",
    "metrics": "fgbg-metrics",
}
"""CSS classes of the browser's parts (stable: browser tests find the widgets by them)."""
STATIC_VARIABLE = "FGBG_STATIC"
SCORE_KEYS = (
    "mask_iou",
    "mask_dice",
    "depth_rmse",
    "depth_mae",
    "depth_abs_rel",
    "depth_delta1",
    "depth_ssim",
    "depth_object_rmse",
)


# --- predictions ----------------------------------------------------------------------------


@dataclass(eq=False)
class SplitPredictions:
    """One split's samples at the evaluation size, with the model's outputs and scores.

    Arrays have one row per sample: ``bg`` and ``fg_bg`` uint8 (N, S, S, 3); ``mask`` uint8
    (N, S, S) 0/1; ``depth`` uint8 (N, S, S), the stored inverse depth 0..255; ``mask_prob``
    float32 (N, S, S), sigmoid of the mask logits; ``depth_pred`` float32 (N, S, S), the depth
    head's output on the 0..1 scale. ``ids`` holds ``sample``, ``bg_id``, ``fg_id``, ``flip``;
    ``metrics`` the per-sample scores of `fgbg_utils.metrics` at a mask threshold of 0.5
    (``mask_iou``, ``mask_dice``, ``depth_rmse``, ``depth_delta1``, ...).
    """

    split: str
    size: int
    bg: np.ndarray
    fg_bg: np.ndarray
    mask: np.ndarray
    mask_prob: np.ndarray
    depth: np.ndarray
    depth_pred: np.ndarray
    ids: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    checkpoint: str = ""
    step: int = 0
    _scores: dict[float, dict[str, np.ndarray]] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_arrays(
        cls,
        split: str,
        bg: np.ndarray,
        fg_bg: np.ndarray,
        mask: np.ndarray,
        mask_prob: np.ndarray,
        depth: np.ndarray,
        depth_pred: np.ndarray,
        ids: Mapping[str, np.ndarray] | None = None,
        checkpoint: str = "",
        step: int = 0,
    ) -> SplitPredictions:
        """Predictions from arrays (formats in the class doc), scored with `MetricAccumulator`."""
        count, size = len(mask), mask.shape[-1]
        shapes = {"bg": (size, size, 3), "fg_bg": (size, size, 3), "mask": (size, size)}
        shapes |= {"mask_prob": (size, size), "depth": (size, size), "depth_pred": (size, size)}
        arrays = {"bg": bg, "fg_bg": fg_bg, "mask": mask, "mask_prob": mask_prob, "depth": depth}
        arrays["depth_pred"] = depth_pred
        for name, array in arrays.items():
            if array.shape != (count, *shapes[name]):
                raise ValueError(f"{name}: shape {array.shape}, expected {(count, *shapes[name])}")
        if count == 0:
            raise ValueError(f"split {split!r}: no samples")
        ids = {key: np.asarray(value) for key, value in (ids or {"sample": np.arange(count)}).items()}
        accumulator = MetricAccumulator(split, mask_from="probs")
        for start in range(0, count, METRIC_CHUNK):
            rows = slice(start, start + METRIC_CHUNK)
            outputs = {
                "mask": torch.from_numpy(mask_prob[rows][:, None]).float(),
                "depth": torch.from_numpy(depth_pred[rows][:, None]).float(),
            }
            targets = {
                "mask": torch.from_numpy(mask[rows][:, None]).float(),
                "depth": torch.from_numpy(depth[rows][:, None]).float().div(255.0),
            }
            accumulator.update(outputs, targets)
        metrics = {key: value for key, value in accumulator.per_image().items() if key not in ID_KEYS}
        return cls(
            split=split,
            size=size,
            bg=bg.astype(np.uint8, copy=False),
            fg_bg=fg_bg.astype(np.uint8, copy=False),
            mask=mask.astype(np.uint8, copy=False),
            mask_prob=mask_prob.astype(np.float32, copy=False),
            depth=depth.astype(np.uint8, copy=False),
            depth_pred=depth_pred.astype(np.float32, copy=False),
            ids=ids,
            metrics=metrics,
            checkpoint=checkpoint,
            step=step,
        )

    def __len__(self) -> int:
        return len(self.mask)

    def sample(self, i: int) -> dict[str, np.ndarray]:
        """Sample i's arrays: bg, fg_bg, mask, mask_prob, depth, depth_pred."""
        names = ("bg", "fg_bg", "mask", "mask_prob", "depth", "depth_pred")
        return {name: getattr(self, name)[i] for name in names}

    def predicted_mask(self, i: int, threshold: float = 0.5) -> np.ndarray:
        """Sample i's predicted foreground: probability > threshold (the metrics' strict rule)."""
        return self.mask_prob[i] > threshold

    def depth_error(self, i: int) -> np.ndarray:
        """|predicted - true depth| of sample i on the 0..1 scale."""
        return np.abs(self.depth_pred[i] - self.depth[i].astype(np.float32) / 255.0)

    def mask_scores(self, threshold: float = 0.5) -> dict[str, np.ndarray]:
        """Per-sample ``iou`` and ``dice`` at `threshold` (`fgbg_utils.metrics.mask_stats`), cached."""
        key = round(float(threshold), 6)
        if key not in self._scores:
            stats = mask_stats(torch.from_numpy(self.mask_prob > key), torch.from_numpy(self.mask))
            self._scores[key] = {name: stats[name].numpy() for name in ("iou", "dice")}
        return self._scores[key]

    def order(self, sort: str = "index", threshold: float = 0.5) -> np.ndarray:
        """Sample positions in split order (``index``) or by ascending IoU at `threshold`
        (``worst IoU``; ties keep split order)."""
        if sort == "index":
            return np.arange(len(self))
        if sort == "worst IoU":
            return np.argsort(self.mask_scores(threshold)["iou"], kind="stable")
        raise ValueError(f"unknown sort {sort!r}: choose one of {', '.join(SORTS)}")


def predict_split(
    checkpoint_path: str | Path,
    info: DatasetInfo,
    split: str = "unseen_test",
    limit: int | None = None,
    device: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> SplitPredictions:
    """Run a checkpoint over `split` at its evaluation size (as `fgbg_utils.evaluate.evaluate`)
    and keep every sample's arrays and scores. `limit` keeps that many evenly spaced samples
    (memory: about 8 * S * S bytes per sample plus the images)."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    scoring = prepare_scoring(info, checkpoint_path, device)
    device, state, model, normaliser = scoring.device, scoring.state, scoring.model, scoring.normaliser
    dataset = FgBgDataset(info, split, transform=scoring.transform)
    split_name = dataset.split_name
    if len(dataset) == 0:
        raise ValueError(f"{info.root}: split {split_name!r} has no samples")
    dataset = evenly_spaced(dataset, limit)
    loader = make_loader(dataset, batch_size=batch_size, workers=0, device=device)
    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"predict {split_name}", disable=not progress):
            inputs = prepare_batch(batch, device, normaliser)
            outputs = predict_batch(model, inputs["bg"], inputs["fg_bg"])
            arrays = {
                "bg": batch["bg"].permute(0, 2, 3, 1),
                "fg_bg": batch["fg_bg"].permute(0, 2, 3, 1),
                "mask": batch["mask"][:, 0],
                "depth": batch["depth"][:, 0],
                "mask_prob": outputs["mask_prob"][:, 0],
                "depth_pred": outputs["depth"][:, 0],
                **{key: batch[key] for key in ID_KEYS},
            }
            for name, value in arrays.items():
                parts.setdefault(name, []).append(value.cpu().numpy())
    joined = {name: np.concatenate(values) for name, values in parts.items()}
    ids = {key: joined.pop(key) for key in ID_KEYS}
    return SplitPredictions.from_arrays(
        split_name, **joined, ids=ids, checkpoint=str(checkpoint_path), step=int(state["step"])
    )


# --- runs and scores ------------------------------------------------------------------------


def loadable_checkpoint(run_dir: str | Path) -> Path | None:
    """The run's latest checkpoint if the current code can load its weights, else None (a run
    made before the model changed is named with the reason, and skipped)."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return None
    try:
        load_model(load_checkpoint(checkpoint), torch.device("cpu"), checkpoint)
    except (OSError, RuntimeError, KeyError, ValueError) as error:  # RuntimeError: a file torch.load cannot read
        reason = " ".join(str(error).split()).removeprefix(f"{checkpoint}: ")  # named once, below
        reason = reason if len(reason) <= 160 else reason[:157] + "..."
        print(f"{checkpoint}: does not load into the current model code ({reason}); not used")
        return None
    return checkpoint


def ensure_run(run_dir: str | Path, fallback: TrainConfig) -> tuple[Path, Path]:
    """(run folder, checkpoint) to look at: `run_dir`'s latest checkpoint (the one notebook 06
    scores), else the fallback run's, else `fallback` trained first, so a notebook that needs a
    model runs on its own. Checkpoints in the fallback folder that no longer load are set aside
    by the fresh run (`fgbg_utils.train.set_aside_previous_checkpoints`)."""
    for folder in (Path(run_dir), Path(fallback.out)):
        checkpoint = loadable_checkpoint(folder)
        if checkpoint is not None:
            return folder, checkpoint
    train(fallback)
    checkpoint = latest_checkpoint(fallback.out)
    if checkpoint is None:
        raise FileNotFoundError(f"{fallback.out}: training wrote no checkpoint")
    return Path(fallback.out), checkpoint


def eval_file(split: str) -> str:
    """The scores file of a split in a run folder (notebook 06 writes ``eval_unseen.json``)."""
    return "eval_unseen.json" if split == "unseen_test" else f"eval_{split}.json"


def load_or_evaluate(
    run_dir: str | Path, info: DatasetInfo, checkpoint: str | Path, split: str = "unseen_test", **options
) -> dict:
    """The scores of `checkpoint` on `split` beside the baselines: ``run_dir/eval_file(split)``
    when it scored these very weights on this split of this dataset, with the same `limit` and
    `size` (notebook 06 writes it), else `fgbg_utils.evaluate.evaluate`, written there. Weights,
    not the step: another run trained into the same folder for as many steps has other weights."""
    path = Path(run_dir) / eval_file(split)
    weights = state_digest(load_checkpoint(checkpoint)["model"])
    if path.exists():
        result = json.loads(path.read_text())
        wanted = {
            "format_version": SCORES_FORMAT,
            "split": split,
            "weights_sha256": weights,
            "dataset": info.identity,
            "limit": options.get("limit"),
        }
        if options.get("size") is not None:
            wanted["size"] = options["size"]
        if all(result.get(key) == value for key, value in wanted.items()):
            return result
    return evaluate(info, checkpoint, split=split, json_out=path, **options)


def scores_table(result: dict, keys: Sequence[str] = SCORE_KEYS) -> str:
    """The model's and the baselines' scores as a fixed-width table (a dash: not measured)."""
    scored = {"model": result["metrics"], **result["baselines"]}
    widths = [max(15, len(key) + 2) for key in keys]
    lines = [f"{'':18s}" + "".join(f"{key:>{width}s}" for key, width in zip(keys, widths, strict=True))]
    for name, values in scored.items():
        cells = "".join(
            f"{values[key]:>{width}.4f}" if key in values else f"{'-':>{width}s}"
            for key, width in zip(keys, widths, strict=True)
        )
        lines.append(f"{name:18s}{cells}")
    return "\n".join(lines)


def read_run_metrics(run_dir: str | Path) -> list[dict]:
    """The validation rows a training run logged: metrics.json, else metrics.csv (numbers parsed)."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    if rows:
        return rows
    path = run_dir / "metrics.csv"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: no metrics.json or metrics.csv (has the run validated yet?)")
    with path.open(newline="") as handle:
        return [{key: _number(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def _number(text: str) -> float | int | str:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value


# --- drawing --------------------------------------------------------------------------------


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


# --- the browser ----------------------------------------------------------------------------


class PredictionBrowser:
    """An ipywidgets browser over predicted splits: pick a split, an order (split order or worst
    IoU first), a sample, the mask threshold (the predicted mask and its IoU/Dice are recomputed
    from the stored probabilities), a mask overlay on fg_bg and the depth colour map.

    The controls are attributes (`sample`, `split`, `sort`, `threshold`, `overlay`,
    `colormap`), the view is `image` (PNG bytes) and `metrics` (HTML); `widget` is the whole
    box, ready for `show_browser` or `display`.
    """

    def __init__(
        self,
        predictions: SplitPredictions | Iterable[SplitPredictions],
        threshold: float = 0.5,
        colormap: str = DEPTH_COLORMAPS[0],
        dpi: int = 100,
    ):
        if isinstance(predictions, SplitPredictions):
            predictions = [predictions]
        self.predictions = {p.split: p for p in predictions}
        if not self.predictions:
            raise ValueError("no predictions to browse")
        self.dpi = dpi
        first = next(iter(self.predictions.values()))
        labels = {"style": {"description_width": "initial"}}  # whole descriptions, not cut to a fixed width
        self.split = widgets.Dropdown(options=list(self.predictions), description="split", **labels)
        self.sort = widgets.ToggleButtons(options=list(SORTS), description="order", **labels)
        self.sample = widgets.IntSlider(
            value=0, min=0, max=len(first) - 1, description="sample", continuous_update=False, **labels
        )
        self.threshold = widgets.FloatSlider(
            value=threshold, min=0.05, max=0.95, step=0.05, description="threshold", continuous_update=False, **labels
        )
        self.overlay = widgets.Checkbox(value=False, description="overlay mask on fg_bg", **labels)
        self.colormap = widgets.Dropdown(
            options=list(DEPTH_COLORMAPS), value=colormap, description="depth colours", **labels
        )
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.metrics = widgets.HTML()
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.split, self.sort]),
                widgets.HBox([self.sample, self.threshold]),
                widgets.HBox([self.overlay, self.colormap]),
                self.image,
                self.metrics,
            ]
        )
        for name, css in DOM_CLASSES.items():
            getattr(self, name).add_class(css)
        self._holding = False
        self.split.observe(self._split_changed, names="value")
        self.sort.observe(self._sort_changed, names="value")
        for control in (self.sample, self.threshold, self.overlay, self.colormap):
            control.observe(lambda _change: self.render(), names="value")
        self.render()

    @property
    def current(self) -> SplitPredictions:
        return self.predictions[self.split.value]

    @property
    def index(self) -> int:
        """The shown sample's position in its split's predictions (the slider walks the order)."""
        return int(self.current.order(self.sort.value, self.threshold.value)[self.sample.value])

    @property
    def png(self) -> bytes:
        return bytes(self.image.value)

    def predicted_mask(self) -> np.ndarray:
        """The shown sample's predicted mask at the current threshold."""
        return self.current.predicted_mask(self.index, self.threshold.value)

    def controls(self) -> list[str]:
        """One line per control: its description, its kind and its choices."""
        lines = []
        for control in (self.split, self.sort, self.sample, self.threshold, self.overlay, self.colormap):
            kind = type(control).__name__
            if hasattr(control, "options"):
                choices = ", ".join(str(option) for option in control.options)
            elif isinstance(control, widgets.FloatSlider):
                choices = f"{control.min:.2f}..{control.max:.2f} step {control.step:.2f}"
            elif isinstance(control, widgets.IntSlider):
                choices = "0..samples-1"
            else:
                choices = "on/off"
            lines.append(f"{control.description}: {kind} ({choices})")
        return lines

    def _split_changed(self, _change) -> None:
        with self._held():
            self.sample.max = len(self.current) - 1
            self.sample.value = 0
        self.render()

    def _sort_changed(self, _change) -> None:
        with self._held():
            self.sample.value = 0
        self.render()

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """Change several controls with one redraw at the end (each change would redraw)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def render(self) -> None:
        """Redraw the image and the scores of the current choice."""
        if self._holding:
            return
        predictions, i, threshold = self.current, self.index, self.threshold.value
        figure = sample_figure(predictions, i, threshold, self.overlay.value, self.colormap.value)
        self.image.value = figure_png(figure, dpi=self.dpi)
        self.metrics.value = self.metrics_html(predictions, i, threshold)

    def metrics_html(self, predictions: SplitPredictions, i: int, threshold: float) -> str:
        scores = predictions.mask_scores(threshold)
        ids = {key: int(value[i]) for key, value in predictions.ids.items()}
        source = (
            f" (bg {ids['bg_id']}, fg {ids['fg_id']}{', mirrored' if ids.get('flip') else ''})"
            if "bg_id" in ids
            else ""
        )
        order = html.escape(self.sort.value)
        cells = (
            ("split", "split", html.escape(predictions.split)),
            ("position", "position", f"{self.sample.value} in 0..{len(predictions) - 1} ({order})"),
            ("sample", "sample", f"{ids['sample']}{source}"),
            ("threshold", "threshold", f"{threshold:.2f}"),
            ("IoU", "iou", f"{scores['iou'][i]:.4f}"),
            ("Dice", "dice", f"{scores['dice'][i]:.4f}"),
            ("depth RMSE", "depth-rmse", f"{predictions.metrics['depth_rmse'][i]:.4f}"),
            ("depth δ1", "depth-delta1", f"{predictions.metrics['depth_delta1'][i]:.4f}"),
        )
        head = "".join(f'<th style="padding:0 10px">{name}</th>' for name, _, _ in cells)
        body = "".join(f'<td class="fgbg-{css}" style="padding:0 10px">{value}</td>' for _, css, value in cells)
        return f"<table><tr>{head}</tr><tr>{body}</tr></table>"

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def in_voila() -> bool:
    """True in a kernel Voilà started: it sets VOILA_PREHEAT (pre-heated or not) and, per request,
    SERVER_SOFTWARE=voila/<version>."""
    return "VOILA_PREHEAT" in os.environ or os.environ.get("SERVER_SOFTWARE", "").startswith("voila")


def static_wanted(static: bool | None = None) -> bool:
    """Whether `show_browser` adds a static PNG: `static` when given, else $FGBG_STATIC ("0" or
    "1"), else yes except on Colab and in Voilà, where the live widget always renders. The
    kernel cannot tell whether a frontend will render widgets (GitHub and nbconvert show only
    stored outputs), so a notebook run for the record keeps the static copy."""
    if static is not None:
        return static
    value = os.environ.get(STATIC_VARIABLE)
    if value is not None:
        return value.strip().lower() not in ("", "0", "false", "no")
    return not (in_colab() or in_voila())


def enable_colab_widgets() -> None:
    """On Colab, turn on the widget manager that renders ipywidgets 8; elsewhere nothing."""
    try:
        from google.colab import output  # only importable on Colab
    except ImportError:
        return
    output.enable_custom_widget_manager()


def show_browser(browser: PredictionBrowser, static: bool | None = None) -> None:
    """Display the browser, and (see `static_wanted`) a static copy of its current view and
    scores for readers whose viewer runs no widgets."""
    from IPython.display import HTML, Image, display

    if in_colab():
        enable_colab_widgets()
    display(browser.widget)
    if static_wanted(static):
        display(Image(data=browser.png, format="png"), HTML(browser.metrics.value))
