from pathlib import Path

import pytest

from fgbg_utils.build import BuildConfig, make_dataset
from fgbg_utils.runs import ensure_run
from fgbg_utils.train_config import TrainConfig

SMALL = BuildConfig(n_bg=3, n_fg=4, placements=3, size=64, seed=5)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A whole small demo build, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("small") / "data"
    make_dataset(root, SMALL, workers=2, progress=False)
    return root


@pytest.fixture(scope="session")
def trained_run(small_dataset, tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, checkpoint) of a 2-step run, made by ensure_run because the run asked for is missing."""
    folder = tmp_path_factory.mktemp("trained_run")
    fallback = TrainConfig(
        data=str(small_dataset),
        out=str(folder / "fallback"),
        sizes=(32,),
        batch_size=4,
        steps=2,
        checkpoint_every_steps=1,
        checkpoint_every_minutes=None,
        val_samples=4,
        augment=False,
        workers=0,
        progress=False,
    )
    return ensure_run(folder / "missing", fallback)
