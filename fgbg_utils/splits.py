"""The two splits of a dataset, made from its index alone, so they are the same on every machine.

- ``random``: the course's split, a seeded random permutation of the sample ids cut
  (1 - test_fraction) : test_fraction (70:30 by default).
- ``unseen``: a seeded `test_fraction` of the backgrounds and of the foregrounds are held out;
  test samples use a held-out background AND a held-out foreground, train samples neither;
  samples that mix the two are left out (counted in ``counts.left_out``). A dataset imported
  from the course layout does not know its samples' foregrounds: its test samples are those of
  the held-out backgrounds.

The build, merge and import write them to splits.json (`write_splits`); readers take them from
`DatasetInfo.splits`, which recomputes them in memory when that file is missing or stale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset_info import DEFAULT_SEED, DEFAULT_TEST_FRACTION, DatasetInfo
from .store import SPLITS_NAME, write_json_atomic


def _held_out(rng: np.random.Generator, count: int, fraction: float) -> np.ndarray:
    """A seeded choice of round(fraction * count) ids, at least one and leaving at least one."""
    n = min(max(1, int(round(fraction * count))), count - 1)
    return np.sort(rng.choice(count, size=n, replace=False))


def compute_splits(info: DatasetInfo, seed: int = DEFAULT_SEED, test_fraction: float = DEFAULT_TEST_FRACTION) -> dict:
    """Both splits of the dataset `info` describes (see the module's doc)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    samples = info.index["sample"].astype(np.int64)
    n_test = int(round(len(samples) * test_fraction))
    permutation = np.random.default_rng([seed, 0]).permutation(len(samples))
    return {
        "seed": seed,
        "test_fraction": test_fraction,
        "samples": len(samples),
        "dataset": info.parameters,
        "random": {
            "train": np.sort(samples[permutation[n_test:]]).tolist(),
            "test": np.sort(samples[permutation[:n_test]]).tolist(),
        },
        "unseen": _unseen_split(info, seed, test_fraction),
    }


def _unseen_split(info: DatasetInfo, seed: int, test_fraction: float) -> dict:
    """The `unseen` part; where the dataset has too few backgrounds or foregrounds to hold any out,
    empty and marked ``unavailable`` (the random split still serves)."""
    index = info.index
    samples = index["sample"].astype(np.int64)
    rng = np.random.default_rng([seed, 1])
    n_bg, n_fg = len(info.backgrounds), len(info.foregrounds)
    foregrounds_known = not info.is_import
    if n_bg < 2 or (foregrounds_known and n_fg < 2):
        reason = f"{info.root}: an unseen split needs at least 2 backgrounds and 2 foregrounds; use the random split"
        return {"unavailable": reason, "train": [], "test": []}
    held_bg = _held_out(rng, n_bg, test_fraction)
    held_fg = _held_out(rng, n_fg, test_fraction) if foregrounds_known else np.zeros(0, dtype=np.int64)
    test_bg = np.isin(index["bg"], held_bg)
    test_fg = np.isin(index["fg"], held_fg) if foregrounds_known else test_bg
    unseen_test = samples[test_bg & test_fg]
    unseen_train = samples[~test_bg & ~test_fg]
    return {
        "held_out_bg": held_bg.tolist(),
        "held_out_fg": held_fg.tolist(),
        "counts": {
            "train": len(unseen_train),
            "test": len(unseen_test),
            "left_out": len(samples) - len(unseen_train) - len(unseen_test),
        },
        "train": unseen_train.tolist(),
        "test": unseen_test.tolist(),
    }


def splits_are_fresh(splits: dict, info: DatasetInfo) -> bool:
    """Whether `splits` were made for this dataset (same build settings and sample count)."""
    return splits.get("dataset") == info.parameters and splits.get("samples") == info.samples


def write_splits(root: Path, seed: int = DEFAULT_SEED, test_fraction: float = DEFAULT_TEST_FRACTION) -> dict:
    """Compute the splits of the dataset in `root` and write them to root/splits.json (atomically).
    For the build, merge and import, once their manifest is written."""
    splits = compute_splits(DatasetInfo.open(root), seed, test_fraction)
    write_json_atomic(Path(root) / SPLITS_NAME, splits)
    return splits
