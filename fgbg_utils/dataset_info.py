"""A dataset folder opened once: `DatasetInfo.open(root)`.

The manifest is read and checked once, index.csv is parsed once into compact arrays (and hashed
from the same bytes), and the splits and the dataset's identity are worked out on demand. The
dataset classes, the trainer, evaluation, checks and the browser take this handle instead of a
path, so one run reads each file once. Readers never write: splits.json is written by the build,
merge and import (`splits.write_splits`); a missing or stale one is recomputed in memory.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from .manifest import is_import, read_manifest
from .store import INDEX_COLUMNS, INDEX_NAME, SPLITS_NAME

NUMERIC_COLUMNS = ("sample", "bg", "fg", "flip", "x", "y", "w", "h")
SPLIT_NAMES = ("train", "test", "unseen_train", "unseen_test")
DEFAULT_SEED, DEFAULT_TEST_FRACTION = 0, 0.3


def _shard_number(text: str) -> int:
    if not (text.startswith("shard_") and text.endswith(".zip")):
        raise ValueError(f"not a shard name: {text!r}")
    return int(text[6:-4])


def parse_index(path: Path, data: bytes, expected: int) -> dict[str, np.ndarray]:
    """index.csv's bytes as compact int32 NumPy columns: sample, bg, fg, flip, x, y, w, h and shard
    (the shard's number, which is its background's id). Member names are not kept: they follow
    from the sample id (`fgbg_utils.store.member_names`). 400,000 rows take 14 MB.

    Its rows must be `expected` (the manifest's count): an index cut short by a copy would
    otherwise be read, and split, as a smaller dataset.
    """
    header = data.split(b"\n", 1)[0].decode(errors="replace").strip().split(",")
    if tuple(header) != INDEX_COLUMNS:
        raise ValueError(f"{path}: columns {header} are not {list(INDEX_COLUMNS)}")
    try:
        table = np.loadtxt(
            io.StringIO(data.decode()),
            delimiter=",",
            skiprows=1,
            usecols=range(9),
            converters={8: _shard_number},
            dtype=np.int32,
            ndmin=2,
        )
    except ValueError as error:
        raise ValueError(f"{path}: not a readable index ({error})") from None
    if len(table) != expected:
        raise ValueError(
            f"{path}: {len(table):,} samples, but the manifest counts {expected:,}; cut short? copy the dataset again"
        )
    columns = {name: np.ascontiguousarray(table[:, i]) for i, name in enumerate((*NUMERIC_COLUMNS, "shard"))}
    if not np.array_equal(columns["shard"], columns["bg"]):
        row = int(np.flatnonzero(columns["shard"] != columns["bg"])[0])
        raise ValueError(
            f"{path}: row {row + 1} names shard {columns['shard'][row]} for background {columns['bg'][row]}"
        )
    return columns


class DatasetInfo:
    """A dataset's manifest, index and, on demand, splits and identity (see the module's doc)."""

    def __init__(self, root: Path, manifest: dict, index: dict[str, np.ndarray], index_sha256: str):
        self.root, self.manifest, self.index, self.index_sha256 = Path(root), manifest, index, index_sha256

    @classmethod
    def open(cls, root: str | Path) -> DatasetInfo:
        root = Path(root)
        manifest = read_manifest(root)
        path = root / INDEX_NAME
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; build the dataset first (python -m fgbg_utils make-dataset)")
        data = path.read_bytes()
        index = parse_index(path, data, int(manifest["counts"]["samples"]))
        return cls(root, manifest, index, hashlib.sha256(data).hexdigest())

    def __repr__(self) -> str:
        return f"DatasetInfo({str(self.root)!r}: {self.samples:,} samples at {self.size} px)"

    @property
    def parameters(self) -> dict:
        """The settings the dataset was built (or imported) with."""
        return self.manifest["generation"]["parameters"]

    @property
    def size(self) -> int:
        """Side of the stored images in pixels."""
        return int(self.parameters["size"])

    @property
    def samples(self) -> int:
        return int(self.manifest["counts"]["samples"])

    @property
    def statistics(self) -> dict:
        return self.manifest["statistics"]

    @property
    def depth_source(self) -> str:
        """geometric, prior, midas or imported (see `fgbg_utils.depth`)."""
        return self.manifest["generation"]["depth"]["source"]

    @property
    def is_import(self) -> bool:
        return is_import(self.manifest)

    @property
    def jpeg_quality(self) -> int | None:
        """The JPEG quality the builder saved fg_bg with, or None for a dataset it did not build."""
        quality = self.parameters.get("jpeg_quality")
        return int(quality) if quality is not None else None

    @property
    def backgrounds(self) -> list[dict]:
        return self.manifest["backgrounds"]

    @property
    def foregrounds(self) -> list[dict]:
        return self.manifest["foregrounds"]

    @property
    def cameras(self) -> list[dict]:
        """Each background's camera (horizon, height, focal) as the manifest records it."""
        return [info["camera"] for info in self.backgrounds]

    @property
    def identity(self) -> dict:
        """What makes two folders the same dataset (a resume on a moved copy; which samples a checkpoint
        trained on): build settings, sample count and index.csv's sha256, whose rows fix every sample's
        background, foreground, flip and box. A copy keeps them, and so does the same course folder
        imported twice; two imports of other pictures of the same shape do not."""
        return {"parameters": self.parameters, "samples": self.samples, "index_sha256": self.index_sha256}

    @cached_property
    def splits(self) -> dict:
        """splits.json when it was made for this dataset, else the same splits computed in memory."""
        from .splits import compute_splits, splits_are_fresh

        path = self.root / SPLITS_NAME
        if path.exists():
            try:
                stored = json.loads(path.read_text())
            except json.JSONDecodeError:
                stored = None
            if stored is not None and splits_are_fresh(stored, self):
                return stored
        return compute_splits(self, DEFAULT_SEED, DEFAULT_TEST_FRACTION)

    def split(self, split: str | Sequence[int]) -> tuple[str, np.ndarray]:
        """(split name, sample ids) for a split name ("all", SPLIT_NAMES) or an explicit list of ids."""
        if isinstance(split, str):
            if split == "all":
                return split, self.index["sample"].astype(np.int64)
            if split not in SPLIT_NAMES:
                raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLIT_NAMES)} or pass sample ids")
            family, part = ("unseen", split[len("unseen_") :]) if split.startswith("unseen_") else ("random", split)
            if "unavailable" in self.splits[family]:
                raise ValueError(self.splits[family]["unavailable"])
            return split, np.asarray(self.splits[family][part], dtype=np.int64)
        return "custom", np.asarray(list(split), dtype=np.int64)

    def positions(self, samples: np.ndarray) -> np.ndarray:
        """Row positions of sample ids in the index (rows are normally in sample order)."""
        ids = self.index["sample"]
        if len(ids) and ids[0] == 0 and np.array_equal(ids, np.arange(len(ids), dtype=ids.dtype)):
            positions = np.asarray(samples, dtype=np.int64)
            bad = (positions < 0) | (positions >= len(ids))
        else:
            order = np.argsort(ids, kind="stable")
            found = np.minimum(np.searchsorted(ids, samples, sorter=order), len(ids) - 1)
            positions = order[found].astype(np.int64)
            bad = ids[positions] != samples
        if bad.any():
            raise ValueError(f"{self.root}: sample ids not in index.csv: {np.asarray(samples)[bad][:10].tolist()}")
        return positions
