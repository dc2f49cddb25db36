"""A checkpoint applied to one dataset split, every sample kept.

`predict_split` runs the model over a split once (through `fgbg_utils.predict.predict_batch`) and keeps
each sample's images, targets, mask probabilities, predicted depth and per-sample scores as
`SplitPredictions`. Figures and the browser only read those arrays, so a new view never reruns the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import FgBgDataset, evenly_spaced
from .dataset_info import DatasetInfo
from .evaluate import prepare_scoring
from .loaders import make_loader
from .metrics import ID_KEYS, MetricAccumulator, mask_stats
from .predict import predict_batch
from .transforms import prepare_batch

SORTS = ("index", "worst IoU")
METRIC_CHUNK = 64
"""Samples scored at once by `SplitPredictions.from_arrays` (bounds the float64 temporaries)."""


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
