from pathlib import Path

import pytest

from fgbg_utils.build import BuildConfig, make_dataset

SMALL = BuildConfig(n_bg=3, n_fg=4, placements=3, size=64, seed=5)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A whole small demo build, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("small") / "data"
    make_dataset(root, SMALL, workers=2, progress=False)
    return root
