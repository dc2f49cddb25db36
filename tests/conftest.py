"""Session fixtures, and how `make test` shares the cores between pytest-xdist workers (`-n auto --dist loadfile`).

Each test file runs whole in one worker, so its module and session fixtures are built once there.
The notebooks and tests/test_browser.py (Voilà running notebook 07) run together in one worker, in
order, because they read and write the same runs/<profile>/ folder. Each worker, and what it starts,
gets its share of the cores for torch, so that the workers do not oversubscribe them.
"""

import os
from pathlib import Path

import pytest

from fgbg_utils.build import BuildConfig, make_dataset
from fgbg_utils.runs import ensure_run
from fgbg_utils.train_config import TrainConfig

SMALL = BuildConfig(n_bg=3, n_fg=4, placements=3, size=64, seed=5)

SHARED_RUNS_FOLDER = "runs/<profile>"
"""The scheduling unit of the notebooks and of the tests that run one."""

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    import torch

    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(_threads)  # subprocesses and notebook kernels
    torch.set_num_threads(_threads)


def scheduling_unit(nodeid: str) -> str:
    """The file of a test, or one unit for every notebook and tests/test_browser.py."""
    path = nodeid.split("::", 1)[0]
    if path.endswith(".ipynb") or path.endswith("test_browser.py"):
        return SHARED_RUNS_FOLDER
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadfile`, with the notebooks as one unit (xdist_group marks don't reach pytest 9's node ids)."""
    from xdist.scheduler import LoadScopeScheduling

    class NotebooksTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scheduling_unit(nodeid)

    return NotebooksTogether(config, log)


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
