"""Checking a built dataset against its manifest, and recomputing its statistics from the files."""

from __future__ import annotations

import multiprocessing as mp
import os
import zipfile
from pathlib import Path

import cv2
from tqdm.auto import tqdm

from .stats import ChannelHistogram, empty_statistics, merge_statistics
from .store import INDEX_NAME, MANIFEST_NAME, SHARD_META, decode_image, read_index, read_manifest, read_png, sha256_file


def verify_dataset(root: Path, progress: bool = True) -> list[str]:
    """Every problem found, one sentence each naming the file; an empty list means all is well.

    Checks that every shard and asset file exists with its recorded sha256 and sample count,
    that the manifest's counts add up, and that index.csv has one row per sample.
    """
    root = Path(root)
    manifest = read_manifest(root)
    problems = []
    counts = manifest["counts"]
    expected = counts["backgrounds"] * counts["foregrounds"] * counts["flips"] * counts["placements"]
    if counts["samples"] != expected:
        problems.append(f"{root / MANIFEST_NAME}: counts.samples is {counts['samples']}, its factors give {expected}")
    if len(manifest["shards"]) != counts["backgrounds"]:
        problems.append(
            f"{root / MANIFEST_NAME}: lists {len(manifest['shards'])} shards for {counts['backgrounds']} backgrounds"
        )
    for entry in tqdm(manifest["shards"], desc="verifying shards", unit="shard", disable=not progress):
        path = root / entry["file"]
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        if sha256_file(path) != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest (corrupt or replaced)")
            continue
        with zipfile.ZipFile(path) as archive:
            members = len(archive.namelist()) - 1
        if members != 3 * entry["samples"]:
            problems.append(f"{path}: holds {members} images, the manifest says {3 * entry['samples']}")
    for info in manifest["backgrounds"] + manifest["foregrounds"]:
        for key, digest in (("file", "sha256"), ("depth_file", "depth_sha256")):
            if key not in info:
                continue
            path = root / info[key]
            if not path.exists():
                problems.append(f"{path}: missing")
            elif sha256_file(path) != info[digest]:
                problems.append(f"{path}: sha256 differs from the manifest")
    index = root / INDEX_NAME
    if not index.exists():
        problems.append(f"{index}: missing")
    else:
        rows = read_index(index)
        if len(rows) != counts["samples"]:
            problems.append(f"{index}: {len(rows)} rows for {counts['samples']} samples")
        elif [r["sample"] for r in rows] != list(range(counts["samples"])):
            problems.append(f"{index}: sample ids are not 0..{counts['samples'] - 1} in order")
    return problems


def _shard_statistics(path: Path) -> dict[str, ChannelHistogram]:
    cv2.setNumThreads(1)
    statistics = empty_statistics()
    del statistics["bg"]
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name == SHARD_META:
                continue
            kind = name.split("/", 1)[0]
            statistics[kind].add(decode_image(archive.read(name), f"{path}:{name}", 3 if kind == "fg_bg" else 1))
    return statistics


def recompute_statistics(root: Path, workers: int | None = None, progress: bool = True) -> dict[str, dict]:
    """Exact mean/std/histograms of every kind, decoded from the stored files (not the manifest)."""
    root = Path(root)
    manifest = read_manifest(root)
    paths = [root / entry["file"] for entry in manifest["shards"]]
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths)))
    with mp.get_context().Pool(workers) as pool:
        parts = list(
            tqdm(
                pool.imap(_shard_statistics, paths),
                total=len(paths),
                desc="statistics",
                unit="shard",
                disable=not progress,
            )
        )
    statistics = merge_statistics(parts)
    for info in manifest["backgrounds"]:
        statistics["bg"].add(read_png(root / info["file"]))
    return {kind: hist.to_dict() for kind, hist in statistics.items()}
