"""Finding or making the run a notebook looks at, and its scores beside the baselines.

Notebooks 06-08 share these: the latest checkpoint that still loads (`ensure_run` trains a fallback when
there is none), the scores file of a split (`load_or_evaluate` reuses it only for the same weights,
dataset and options), the scores table and the metrics a run logged.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from .checkpoints import latest_checkpoint, load_checkpoint, state_digest
from .dataset_info import DatasetInfo
from .evaluate import SCORES_FORMAT, evaluate, load_model
from .run_logs import read_metrics
from .runtime import runs_dir
from .train import train
from .train_config import TrainConfig

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


def fallback_run(data_dir: str | Path, profile: str, minutes: float | None) -> TrainConfig:
    """The short run notebooks 07 and 08 train when notebook 06's run is not there: `minutes` of the
    CPU recipe (or two tiny steps when None, as in the smoke profile), into one folder per profile so
    the two notebooks train it once between them."""
    return TrainConfig(
        data=str(data_dir),
        out=str(runs_dir() / profile / "visualize_train"),
        sizes=(64, 96) if minutes else (32,),
        minutes=minutes,
        steps=None if minutes else 2,
        batch_size=32 if minutes else 8,
        checkpoint_every_minutes=None,
        val_samples=256 if minutes else 8,
        progress=minutes is not None,
    )


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
