"""TensorBoard logs of a run: the tags and values a short run leaves, the preview grid, a resume that
appends without logging a step twice, and rank 0 alone writing."""

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fgbg_utils.checkpoints import load_checkpoint, step_checkpoint
from fgbg_utils.data import FgBgDataset, evenly_spaced
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.distributed import Distributed
from fgbg_utils.losses import LossWeights
from fgbg_utils.tensorboard_log import LOG_EVERY_STEPS, preview_grid
from fgbg_utils.train import run_training, train
from fgbg_utils.train_config import TrainConfig


def short_config(data: Path, out: Path, **changes) -> TrainConfig:
    base = TrainConfig(
        data=str(data),
        out=str(out),
        sizes=(32,),
        batch_size=4,
        steps=12,
        checkpoint_every_steps=4,
        checkpoint_every_minutes=None,
        val_samples=8,
        augment=False,
        workers=0,
        deterministic=True,
        progress=False,
    )
    return replace(base, **changes)


def read_board(out: Path) -> EventAccumulator:
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def reference_learning_rates(config: TrainConfig) -> list[float]:
    """The learning rate of each step (0-based) of a one-cycle schedule like the run's, from torch alone."""
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps)
    rates = []
    for _ in range(config.steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.fixture(scope="module")
def short_run(small_dataset, tmp_path_factory) -> tuple[TrainConfig, Path]:
    out = tmp_path_factory.mktemp("board") / "run"
    config = short_config(small_dataset, out)
    train(config)
    return config, out


def test_a_short_run_logs_every_loss_term_the_rate_speed_metrics_and_a_grid(short_run):
    config, out = short_run
    events = read_board(out)
    scalars, images = set(events.Tags()["scalars"]), events.Tags()["images"]
    assert {f"loss/{name}" for name in (*LossWeights().to_dict(), "total")} <= scalars
    assert {"train/lr", "train/images_per_s", "train/size", "val/mask_iou", "val/depth_rmse"} <= scalars
    assert images == ["val/preview"]
    assert [image.step for image in events.Images("val/preview")] == [4, 8, 12]

    rates = reference_learning_rates(config)
    logged = events.Scalars("train/lr")
    assert [event.step for event in logged] == [1, *range(LOG_EVERY_STEPS, config.steps + 1, LOG_EVERY_STEPS)]
    for event in logged:  # the rate step N trained with
        assert event.value == pytest.approx(rates[event.step - 1], rel=1e-6)
    assert all(event.value > 0 for event in events.Scalars("train/images_per_s"))

    rows = json.loads((out / "metrics.json").read_text())
    ious = {event.step: event.value for event in events.Scalars("val/mask_iou")}
    assert ious == {row["step"]: pytest.approx(row["val_mask_iou"], rel=1e-6) for row in rows}


def test_the_grid_shows_the_first_validation_samples_in_six_columns(short_run, small_dataset):
    config, out = short_run
    image = read_board(out).Images("val/preview")[-1]
    shown = min(4, len(evenly_spaced(FgBgDataset(DatasetInfo.open(small_dataset), "unseen_test"), config.val_samples)))
    size, padding = 32, 2
    assert (image.width, image.height) == (6 * (size + padding) + padding, shown * (size + padding) + padding)


def test_preview_grid_places_each_picture_in_its_row_and_column():
    loaded = {
        "bg": torch.full((2, 3, 8, 8), 255, dtype=torch.uint8),
        "fg_bg": torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
        "mask": torch.ones(2, 1, 8, 8, dtype=torch.uint8),
        "depth": torch.full((2, 1, 8, 8), 51, dtype=torch.uint8),
    }
    predicted = {"mask": torch.full((2, 1, 8, 8), 0.25), "depth": torch.full((2, 1, 8, 8), 0.75)}
    grid = preview_grid(loaded, predicted)
    assert grid.shape == (3, 2 * 10 + 2, 6 * 10 + 2)
    expected = [1.0, 0.0, 1.0, 0.25, 0.2, 0.75]
    for row in range(2):
        for column, value in enumerate(expected):
            cell = grid[:, 2 + 10 * row : 10 + 10 * row, 2 + 10 * column : 10 + 10 * column]
            assert torch.allclose(cell, torch.tensor(value)), (row, column)
    only_mask = preview_grid(loaded, {"mask": predicted["mask"]})
    assert torch.equal(only_mask[:, 2:10, 52:60], torch.zeros(3, 8, 8))  # no depth predicted: black


def test_a_resumed_run_appends_without_logging_a_step_twice(small_dataset, tmp_path):
    config = short_config(small_dataset, tmp_path / "run")
    train(config)
    for step in (8, 12):  # as if killed after step 4's checkpoint: steps 5 to 12 were logged already
        step_checkpoint(config.out, step).unlink()
    (tmp_path / "run" / "checkpoints" / "last.pt").unlink()
    assert load_checkpoint(step_checkpoint(config.out, 4))["step"] == 4
    train(replace(config, resume=True))
    assert len(list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))) == 2
    events = read_board(tmp_path / "run")
    for tag in events.Tags()["scalars"]:
        steps = [event.step for event in events.Scalars(tag)]
        assert steps == sorted(set(steps)), tag
    assert [event.step for event in events.Scalars("val/mask_iou")] == [4, 8, 12]
    assert [image.step for image in events.Images("val/preview")] == [4, 8, 12]
    rates = reference_learning_rates(config)
    assert [event.value for event in events.Scalars("train/lr")] == pytest.approx([rates[0], rates[9]], rel=1e-6)


def test_other_ranks_write_no_board(small_dataset, tmp_path):
    config = short_config(small_dataset, tmp_path / "rank1", steps=2, checkpoint_every_steps=None)
    config.validate()
    run_training(config, None, Distributed(rank=1, world=1), DatasetInfo.open(config.data), time.perf_counter())
    assert not (tmp_path / "rank1").exists()
