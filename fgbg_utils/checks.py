"""Checking a built dataset against its manifest, and recomputing its statistics from the files."""

from __future__ import annotations

import os
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
from tqdm.auto import tqdm

from .build import load_foregrounds
from .compose import Box, compose
from .dataset_info import DatasetInfo
from .manifest import is_import, read_manifest
from .runtime import worker_context
from .stats import ChannelHistogram
from .store import (
    INDEX_NAME,
    MANIFEST_NAME,
    decode_image,
    member_names,
    read_index,
    read_png,
    read_shard_meta,
    sha256_file,
)


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


def _shard_statistics(task: tuple[Path, dict]) -> dict[str, ChannelHistogram]:
    """Histograms of one shard from its files: fg_bg re-composed from index rows and assets
    (the build's definition) and decoded from its JPEGs (what a loader sees); mask and depth
    decoded from their lossless PNGs. An import has no composites: its fg_bg statistics are its
    stored JPEGs' as decoded (for fg_bg re-encoded at import, the import's own figures were
    taken before encoding, a few 1e-5 away)."""
    path, manifest = task
    cv2.setNumThreads(1)
    root = path.parent
    meta = read_shard_meta(path)
    bg_info = manifest["backgrounds"][meta["bg"]]
    bg = read_png(root / bg_info["file"])
    foregrounds = load_foregrounds(root, manifest)
    imported = is_import(manifest)
    statistics = {kind: ChannelHistogram(3) for kind in ("fg_bg", "fg_bg_decoded")}
    statistics.update(mask=ChannelHistogram(1), depth=ChannelHistogram(1))
    with zipfile.ZipFile(path) as archive:
        for sample, _, fg, flip, x, y, w, h in meta["rows"]:
            if not imported:
                statistics["fg_bg"].add(compose(bg, foregrounds[fg][flip], Box(x, y, w, h))[0])
            kinds = ("fg_bg" if imported else "fg_bg_decoded", "mask", "depth")
            for kind, name, channels in zip(kinds, member_names(sample), (3, 1, 1), strict=True):
                statistics[kind].add(decode_image(archive.read(name), f"{path}:{name}", channels))
    return {kind: hist for kind, hist in statistics.items() if hist.pixels}


def recompute_statistics(info: DatasetInfo, workers: int | None = None, progress: bool = True) -> dict[str, dict]:
    """Exact mean/std/histograms of every kind, from the dataset's files rather than the manifest.

    For a build, adds `fg_bg_decoded`: the statistics of the stored JPEGs as decoded, which differ
    from the composites' by the JPEG error (a few 1e-4 in the mean, up to 1e-3 in the std). An
    import's fg_bg statistics are its decoded JPEGs' already.
    """
    root, manifest = info.root, info.manifest
    tasks = [(root / entry["file"], manifest) for entry in manifest["shards"]]
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    with ProcessPoolExecutor(workers, mp_context=worker_context()) as pool:
        parts = list(
            tqdm(
                pool.map(_shard_statistics, tasks),
                total=len(tasks),
                desc="statistics",
                unit="shard",
                disable=not progress,
            )
        )
    statistics = {"bg": ChannelHistogram(3)}
    for info in manifest["backgrounds"]:
        statistics["bg"].add(read_png(root / info["file"]))
    for part in parts:
        for kind, hist in part.items():
            statistics.setdefault(kind, ChannelHistogram(hist.channels)).merge(hist)
    return {kind: hist.to_dict() for kind, hist in statistics.items()}
