"""Checkpoints of untrained weights, for tests that need a checkpoint to score, not a trained model."""

from pathlib import Path

from fgbg_utils.checkpoints import CHECKPOINT_FORMAT, save_checkpoint
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.models import build_model
from fgbg_utils.train_config import TrainConfig


def untrained_checkpoint(path: Path, config: TrainConfig) -> Path:
    """`config.model` with freshly drawn weights, saved at step 0 as a run of `config` on its dataset."""
    info = DatasetInfo.open(config.data)
    payload = {
        "format_version": CHECKPOINT_FORMAT,
        "model": build_model(config.model).state_dict(),
        "config": config.to_dict(),
        "step": 0,
        "dataset": info.identity,
        "statistics": info.statistics,
    }
    save_checkpoint(path, payload)
    return path
