"""The dataset handle: one read of each file, typed accessors, splits and identity, readers never write."""

import json
import shutil

import numpy as np
import pytest

from fgbg_utils.data import FgBgDataset
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.splits import compute_splits, write_splits
from fgbg_utils.store import INDEX_NAME, SPLITS_NAME, read_index, sha256_file


@pytest.fixture
def data(small_dataset, tmp_path):
    """A private copy of the shared small build, for tests that change its files."""
    root = tmp_path / "data"
    shutil.copytree(small_dataset, root)
    return root


def test_accessors_read_the_manifest_and_index(small_dataset):
    info = DatasetInfo.open(small_dataset)
    manifest = json.loads((small_dataset / "data_manifest.json").read_text())
    rows = read_index(small_dataset / INDEX_NAME)
    assert info.size == manifest["generation"]["parameters"]["size"] == 64
    assert info.samples == len(rows) == len(info.index["sample"])
    assert info.jpeg_quality == 90 and not info.is_import and info.depth_source == "geometric"
    assert info.cameras == [b["camera"] for b in manifest["backgrounds"]]
    for column in ("sample", "bg", "fg", "flip", "x", "y", "w", "h"):
        assert info.index[column].tolist() == [row[column] for row in rows]
    assert info.index_sha256 == sha256_file(small_dataset / INDEX_NAME)


def test_the_build_writes_the_splits_readers_use(small_dataset):
    info = DatasetInfo.open(small_dataset)
    stored = json.loads((small_dataset / SPLITS_NAME).read_text())
    assert stored == compute_splits(info) == info.splits


def test_splits_are_disjoint_and_reproducible(small_dataset):
    info = DatasetInfo.open(small_dataset)
    splits = compute_splits(info, seed=1)
    n = info.samples
    train, test = set(splits["random"]["train"]), set(splits["random"]["test"])
    assert not train & test and train | test == set(range(n)) and len(test) == round(0.3 * n)
    unseen, index = splits["unseen"], info.index
    u_train, u_test = np.array(unseen["train"]), np.array(unseen["test"])
    assert len(u_train) and len(u_test)
    assert set(index["bg"][u_test]) <= set(unseen["held_out_bg"])
    assert set(index["fg"][u_test]) <= set(unseen["held_out_fg"])
    assert not set(index["bg"][u_train]) & set(unseen["held_out_bg"])
    assert not set(index["fg"][u_train]) & set(unseen["held_out_fg"])
    assert unseen["counts"]["train"] + unseen["counts"]["test"] + unseen["counts"]["left_out"] == n
    assert compute_splits(info, seed=1) == splits
    assert compute_splits(info, seed=2)["random"]["test"] != splits["random"]["test"]
    dataset = FgBgDataset(info, split="unseen_test")
    assert dataset.split_name == "unseen_test" and len(dataset) == len(info.splits["unseen"]["test"])
    explicit = FgBgDataset(info, split=[5, 2])
    assert explicit.split_name == "custom" and [explicit[i]["sample"] for i in range(2)] == [5, 2]
    with pytest.raises(ValueError, match="unknown split"):
        FgBgDataset(info, split="validation")


def test_readers_never_write_splits(data):
    (data / SPLITS_NAME).unlink()
    info = DatasetInfo.open(data)
    FgBgDataset(info, "unseen_test")
    assert info.splits == compute_splits(info) and not (data / SPLITS_NAME).exists()


def test_stale_or_broken_splits_are_recomputed_in_memory(data):
    expected = write_splits(data, seed=2)
    assert DatasetInfo.open(data).splits == expected  # a fresh file is used as it is, whatever its seed
    stale = {**expected, "samples": 34, "random": {"train": [], "test": []}}
    (data / SPLITS_NAME).write_text(json.dumps(stale))
    assert DatasetInfo.open(data).splits == compute_splits(DatasetInfo.open(data))
    assert json.loads((data / SPLITS_NAME).read_text()) == stale  # left as it was
    (data / SPLITS_NAME).write_text('{"cut sh')
    assert DatasetInfo.open(data).splits["samples"] == expected["samples"]


def test_an_index_cut_short_is_named(data):
    whole = (data / INDEX_NAME).read_text()
    total = len(whole.splitlines()) - 1
    (data / INDEX_NAME).write_text("\n".join(whole.splitlines()[:35]) + "\n")
    with pytest.raises(ValueError, match=f"{data / INDEX_NAME}: 34 samples, but the manifest counts {total:,}"):
        DatasetInfo.open(data)


def test_identity_follows_the_index_not_the_folder(small_dataset, data):
    assert DatasetInfo.open(data).identity == DatasetInfo.open(small_dataset).identity
    lines = (data / INDEX_NAME).read_text().splitlines()
    first = lines[1].split(",")
    first[4] = str(int(first[4]) + 1)  # another box for sample 0: another dataset
    (data / INDEX_NAME).write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    assert DatasetInfo.open(data).identity != DatasetInfo.open(small_dataset).identity
