"""Scoring a trained checkpoint on a split, beside the two baselines it has to beat.

* the difference mask: ``max_c |fg_bg - bg| > t``, with ``t`` chosen on the TRAINING split of
  the same family (``unseen_test`` -> ``unseen_train``, ``test`` -> ``train``): choosing it on
  the split being scored would leak the test labels into the baseline;
* the background depth: the bg's own depth map (``bg/bg_XXX_depth.png`` / 255) as the
  prediction, right everywhere but under the object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoints import load_checkpoint, state_digest
from .data import FgBgDataset, evenly_spaced, evenly_spaced_positions
from .dataset_info import DatasetInfo
from .loaders import make_loader
from .memory import release_freed_memory
from .metrics import MetricAccumulator, background_depth, choose_difference_threshold, difference_mask
from .models import build_model, load_weights
from .precision import amp_dtype, autocast
from .progress import progress_bar
from .resume import trained_on
from .runtime import choose_device
from .store import member_names, read_png, write_json_atomic, write_png
from .train import task_outputs
from .train_config import split_names
from .transforms import BatchNormaliser, make_transforms, prepare_batch, resize_nearest

THRESHOLD_CANDIDATES = tuple(np.round(np.arange(0.02, 0.52, 0.02), 2).tolist())
SCORED = {"model": "probs", "difference_mask": "binary", "background_depth": "probs"}
"""How each scored prediction's mask is given (the depth baseline has none)."""
TRAINING_SPLIT = {"unseen_test": "unseen_train", "unseen_train": "unseen_train", "test": "train", "train": "train"}
SCORES_FORMAT = 1
"""The format of the scores `evaluate` returns and writes (a cached score of another format is scored again)."""


def threshold_split(split: str) -> str:
    """The training split of `split`'s family, where the difference threshold is chosen."""
    return TRAINING_SPLIT.get(split, "train")


def evaluation_size(config: dict, dataset_size: int, size: int | None = None) -> int:
    """`size` when given (to score checkpoints trained at different sizes against the same targets),
    else the checkpoint's final training size, else the dataset's."""
    if size is not None:
        if size < 32:
            raise ValueError(f"size: {size} is below 32 pixels")
        return int(size)
    sizes = config.get("sizes") or []
    return int(sizes[-1]) if sizes else int(dataset_size)


def refuse_training_samples(info: DatasetInfo, scored: FgBgDataset, state: dict, checkpoint: str | Path) -> None:
    """Raise if the scored split holds samples the checkpoint was trained on, unless it is that very
    training split (asked for to see the fit). A model trained on the random split and scored on
    ``unseen_test`` would otherwise be graded partly on what it learnt from. Another dataset than
    the checkpoint's own holds none of them (`trained_on`)."""
    train_split, own_test = split_names(state["config"].get("split", "unseen"))
    if scored.split_name == train_split or not trained_on(state, info):
        return
    seen = np.intersect1d(scored.samples, info.split(train_split)[1])
    if len(seen):
        raise ValueError(
            f"{checkpoint}: trained on {train_split!r}, which holds {len(seen):,} of the {len(scored.samples):,} "
            f"samples of {scored.split_name!r}; score it on {own_test!r}"
        )


def check_outputs(json_out: str | Path | None, save_predictions: str | Path | None) -> None:
    """Refuse output paths that cannot be written before scoring, not after it."""
    if json_out is not None:
        if Path(json_out).is_dir():
            raise ValueError(f"{json_out}: a folder; the results go to a file (e.g. {Path(json_out) / 'scores.json'})")
        _check_writable_folder(Path(json_out).parent, json_out)
    if save_predictions is not None:
        if Path(save_predictions).exists() and not Path(save_predictions).is_dir():
            raise ValueError(f"{save_predictions}: a file; predictions go to a folder")
        _check_writable_folder(Path(save_predictions), save_predictions)


def _check_writable_folder(folder: Path, wanted: str | Path) -> None:
    """`folder` exists and is writable, or can be made: its nearest existing ancestor is a writable folder."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{wanted}: cannot be written, {existing} is a file")
    if not os.access(existing, os.W_OK):
        raise ValueError(f"{wanted}: cannot be written, {existing} is not writable")


def load_model(checkpoint: dict, device: torch.device, path: str | Path = "checkpoint") -> torch.nn.Module:
    """The checkpoint's network with its weights, for evaluation (`load_weights` names `path` if they
    are another revision's)."""
    name = checkpoint["config"]["model"]
    return load_weights(build_model(name), checkpoint["model"], path, name).to(device).eval()


def raw_images(batch: dict, transform) -> dict:
    """bg and fg_bg back on the 0..1 scale (the difference baseline needs unnormalised pixels)."""
    return {kind: transform.denormalise(batch[kind]).clamp(0.0, 1.0) for kind in ("bg", "fg_bg")}


class BackgroundDepths:
    """Each background's stored depth map at `size` (nearest, like the depth targets), on the device."""

    def __init__(self, info: DatasetInfo, size: int, device: torch.device):
        self.root, self.files, self.size, self.device = info.root, info.backgrounds, size, device
        self.cache: dict[int, torch.Tensor] = {}

    def __call__(self, bg_ids: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.one(int(i)) for i in bg_ids])

    def one(self, bg: int) -> torch.Tensor:
        if bg not in self.cache:
            depth = torch.from_numpy(read_png(self.root / self.files[bg]["depth_file"])).float().div(255.0)
            depth = resize_nearest(depth[None], self.size)
            self.cache[bg] = background_depth(depth).to(self.device)
        return self.cache[bg]


@dataclass
class Scoring:
    """What scoring a checkpoint on a dataset needs: the checkpoint, its model in eval mode on
    `device`, the evaluation size, and the uint8 transform and device normaliser of that size."""

    info: DatasetInfo
    device: torch.device
    state: dict
    size: int
    transform: object
    normaliser: BatchNormaliser
    model: torch.nn.Module


def prepare_scoring(
    info: DatasetInfo, checkpoint: str | Path, device: str | None = None, size: int | None = None
) -> Scoring:
    """Load `checkpoint` (weights only) and set up the evaluation transform (at `evaluation_size`)."""
    device = choose_device(device)
    state = load_checkpoint(checkpoint, map_location=device)
    size = evaluation_size(state["config"], info.size, size)
    transform = make_transforms(size, train=False, stats=info.statistics, output="uint8")
    normaliser = BatchNormaliser(info.statistics).to(device)
    model = load_model(state, device, checkpoint)
    return Scoring(info, device, state, size, transform, normaliser, model)


def choose_threshold(info: DatasetInfo, split: str, transform, batch_size: int, limit: int | None) -> dict:
    """The difference threshold with the best dataset-level IoU on `split` (a training split)."""
    dataset = evenly_spaced(FgBgDataset(info, split, transform=transform), limit)
    loader = make_loader(dataset, batch_size=batch_size, workers=0, device="cpu")
    normaliser = BatchNormaliser(transform.stats)
    batches = (prepare_batch(batch, "cpu", normaliser) for batch in loader)
    pairs = ({**raw_images(batch, transform), "mask": batch["mask"]} for batch in batches)
    choice = choose_difference_threshold(pairs, THRESHOLD_CANDIDATES, split=split)
    return {"threshold": choice.threshold, "threshold_split": split, "threshold_train_iou": choice.iou}


def save_prediction(folder: Path, sample: int, outputs: dict, row: int) -> None:
    """Predicted mask (0/255) and depth (0..255) as PNGs named like the dataset's members."""
    _, mask_name, depth_name = member_names(sample)
    mask = (torch.sigmoid(outputs["mask"][row, 0].float()) > 0.5).to(torch.uint8) * 255
    depth = (outputs["depth"][row, 0].float().clamp(0, 1) * 255).round().to(torch.uint8)
    write_png(folder / mask_name, mask.cpu().numpy())
    write_png(folder / depth_name, depth.cpu().numpy())


def evaluate(
    info: DatasetInfo,
    checkpoint: str | Path,
    split: str | None = None,
    json_out: str | Path | None = None,
    save_predictions: str | Path | None = None,
    batch_size: int = 32,
    device: str | None = None,
    threshold_samples: int | None = 2048,
    progress: bool = True,
    limit: int | None = None,
    size: int | None = None,
) -> dict:
    """Metrics of a checkpoint on `split` (by default the test split of the family it was trained
    on; never one holding its training samples, see `refuse_training_samples`) and of both baselines
    on the same samples, at `size` (`evaluation_size`). The model runs under the mixed precision its
    training validated in (`fgbg_utils.precision`: bf16 or fp16 on CUDA unless it trained with
    ``amp=False``, none on the CPU), so its scores here are those its validation saw.

    `limit` scores only that many evenly spaced samples of the split (the same ones on every
    call, so several checkpoints can be compared on a budget); their ids are in the result's
    ``sample_ids``. The threshold is chosen on at most `threshold_samples` evenly spaced samples
    of the training split (`threshold_split`). Returns (and writes to `json_out`) a dict naming
    the split, the checkpoint, the size, the number of samples, the model's metrics and the
    baselines'.
    """
    check_outputs(json_out, save_predictions)
    scoring = prepare_scoring(info, checkpoint, device, size)
    device, state = scoring.device, scoring.state
    size, transform, normaliser, model = scoring.size, scoring.transform, scoring.normaliser, scoring.model
    split = split or split_names(state["config"].get("split", "unseen"))[1]
    dataset = FgBgDataset(info, split, transform=transform)
    if len(dataset) == 0:
        raise ValueError(f"{info.root}: split {dataset.split_name!r} has no samples")
    refuse_training_samples(info, dataset, state, checkpoint)
    positions = evenly_spaced_positions(len(dataset), limit)
    threshold = choose_threshold(info, threshold_split(split), transform, batch_size, threshold_samples)
    mode = state["config"].get("mode", "joint")
    scores = {name: MetricAccumulator(dataset.split_name, mask_from=kind) for name, kind in SCORED.items()}
    bg_depths = BackgroundDepths(info, size, device)
    dtype = amp_dtype(device, state["config"].get("amp"))
    loader = make_loader(evenly_spaced(dataset, limit), batch_size=batch_size, workers=0, device=device)
    with torch.no_grad():
        for batch in progress_bar(loader, enabled=progress, desc=f"evaluate {split}"):
            batch = prepare_batch(batch, device, normaliser)
            with autocast(device, dtype):
                outputs = model(batch["bg"], batch["fg_bg"])
            scores["model"].update(task_outputs(outputs, mode), batch)
            raw = raw_images(batch, transform)
            scores["difference_mask"].update(
                {"mask": difference_mask(raw["bg"], raw["fg_bg"], threshold["threshold"])}, batch
            )
            scores["background_depth"].update({"depth": bg_depths(batch["bg_id"])}, batch)
            if save_predictions is not None:
                for row, sample in enumerate(batch["sample"].tolist()):
                    save_prediction(Path(save_predictions), sample, outputs, row)
            release_freed_memory()
    result = {
        "format_version": SCORES_FORMAT,
        "split": dataset.split_name,
        "checkpoint": str(checkpoint),
        "model": state["config"]["model"],
        "step": state["step"],
        "weights_sha256": state_digest(state["model"]),
        "dataset": info.identity,
        "size": size,
        "samples": len(positions),
        "limit": limit,
        **({"sample_ids": dataset.samples[positions].tolist()} if limit is not None else {}),
        "metrics": scores["model"].summary(),
        "baselines": {
            "difference_mask": {**scores["difference_mask"].summary(), **threshold},
            "background_depth": scores["background_depth"].summary(),
        },
        "threshold_split": threshold["threshold_split"],
    }
    if json_out is not None:
        write_json_atomic(Path(json_out), result)
    return result
