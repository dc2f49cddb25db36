"""The resume policy: a run continues from its newest checkpoint as it was configured, on the same
dataset wherever that now lies; options set otherwise are refused by name rather than dropped."""

from __future__ import annotations

from pathlib import Path

from .checkpoints import (
    checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
)
from .dataset_info import DatasetInfo
from .train_config import (
    SESSION_FIELDS,
    TrainConfig,
)


def trained_on(checkpoint: dict, info: DatasetInfo) -> bool:
    """Whether `checkpoint` was trained on the dataset `info` opens (`DatasetInfo.identity`: the same
    build settings, sample count and index.csv, wherever the folder now is)."""
    return checkpoint["dataset"] == info.identity


def options_a_resume_would_ignore(config: TrainConfig, stored: dict, given: set[str] | None = None) -> list[str]:
    """The options of `config` that differ from the run's (`stored`, as it was asked for): a resume takes
    those from the checkpoint, so they would be dropped unseen. `given` limits the check to the options
    written on a command line; from Python, every field counts (``steps=None`` stands for the run's)."""
    mine, theirs = config.to_dict(), TrainConfig.from_dict(stored).to_dict()
    return [
        f"{name} {mine[name]!r} (the run's: {theirs[name]!r})"
        for name in mine
        if name not in SESSION_FIELDS
        and (given is None or name in given)
        and not (name == "steps" and mine[name] is None)
        and mine[name] != theirs[name]
    ]


def resolve_config(
    config: TrainConfig, resume: bool, info: DatasetInfo, given: set[str] | None = None
) -> tuple[TrainConfig, tuple[Path, dict] | None]:
    """The config to run and the checkpoint to continue from (its path and contents): on resume the
    checkpoint's config wins except for SESSION_FIELDS, so the schedule cannot drift; another
    dataset, or options set otherwise (`options_a_resume_would_ignore`), are refused rather than
    silently dropped."""
    if not resume:
        if config.steps is None and config.minutes is None:
            raise ValueError("give steps or minutes")
        return config, None
    path = latest_checkpoint(config.out)
    if path is None:
        raise FileNotFoundError(f"{checkpoint_dir(config.out)}: no checkpoint to resume from")
    checkpoint = load_checkpoint(path)
    if not trained_on(checkpoint, info):
        raise ValueError(
            f"{config.data}: not the dataset {path} was trained on (other build settings, sample count or "
            "index.csv); resume on that dataset"
        )
    if ignored := options_a_resume_would_ignore(config, checkpoint["config"], given):
        raise ValueError(
            f"{config.out}: a resume continues the run as it was configured, and these options differ from it: "
            f"{'; '.join(ignored)}. Give the run's values (or leave them out on the command line), or start a "
            "new run (another --out) to change them"
        )
    merged = checkpoint["config"] | {name: getattr(config, name) for name in SESSION_FIELDS}
    return TrainConfig.from_dict(merged), (path, checkpoint)
