"""data_manifest.json: one schema with a format number, one writer, one reader.

A manifest says what a dataset folder holds (kinds, counts, bytes, layout, how it was generated,
exact statistics, per-shard sha256). Build, merge and import each fill a `Manifest` from the
parts below and write it with `write_manifest`, last, so a manifest on disk means the dataset
is whole. `read_manifest` refuses a manifest of another format number by name: nothing is
released yet, so the kit reads exactly the format it writes.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

from . import __version__
from .stats import ChannelHistogram, merge_statistics
from .store import MANIFEST_NAME, member_names, read_png, shard_name, write_json_atomic

FORMAT_VERSION = 1
"""The manifest format this kit writes and reads."""

SAMPLE_KINDS = ("fg_bg", "mask", "depth")
MEMBERS = {
    "fg_bg": "fg_bg/{sample:07d}.jpg",
    "mask": "mask/{sample:07d}.png",
    "depth": "depth/{sample:07d}.png",
}
INDEX_LAYOUT = "index.csv: sample,bg,fg,flip,x,y,w,h,shard,fg_bg,mask,depth"


@dataclass
class Manifest:
    """The manifest's sections, in the order they are written."""

    name: str
    kinds: dict
    counts: dict
    bytes: dict
    layout: dict
    generation: dict
    statistics: dict
    shards: list[dict]
    backgrounds: list[dict]
    foregrounds: list[dict] = field(default_factory=list)
    skipped: list = field(default_factory=list)
    slice: dict | None = None

    @classmethod
    def from_dict(cls, values: dict) -> Manifest:
        """The sections of a manifest read by `read_manifest` (its format number checked there)."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "format_version": FORMAT_VERSION,
            "slice": self.slice,
            "kinds": self.kinds,
            "counts": self.counts,
            "bytes": self.bytes,
            "layout": self.layout,
            "generation": self.generation,
            "statistics": self.statistics,
            "shards": self.shards,
            "backgrounds": self.backgrounds,
            "foregrounds": self.foregrounds,
            "skipped": self.skipped,
        }


def write_manifest(path: Path, manifest: Manifest) -> Path:
    """Write `manifest` atomically to `path` (a dataset's data_manifest.json or a slice's)."""
    write_json_atomic(Path(path), manifest.to_dict())
    return Path(path)


def read_manifest_file(path: Path) -> dict:
    """A manifest file as a dict, refused by name when unreadable or of another format."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a readable manifest ({error}); rebuild or copy the dataset again") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: manifest format {version}, written by another version of the kit (this one reads "
            f"format {FORMAT_VERSION}): rebuild the dataset"
        )
    return manifest


def read_manifest(root: Path) -> dict:
    """The manifest of the dataset in `root`."""
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: no manifest; build the dataset first (python -m fgbg_utils make-dataset)")
    return read_manifest_file(path)


def is_import(manifest: dict) -> bool:
    """Whether a dataset was imported from the course layout (`course_layout.import_course_layout`): it
    has no foregrounds, and its samples' foreground and flip are unknown (-1 in index.csv)."""
    return "imported_from" in manifest.get("generation", {})


def index_rows(metas: Iterable[dict]) -> Iterator[list]:
    """index.csv's rows for the shards described by `metas` (their meta.json)."""
    for meta in metas:
        for row in meta["rows"]:
            yield [*row, shard_name(meta["bg"]), *member_names(row[0])]


def library_versions() -> dict:
    import cv2
    import numpy as np
    import PIL

    return {
        "fgbg_utils": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "pillow": PIL.__version__,
    }


def shard_entries(root: Path, metas: list[dict], digests: dict[int, str]) -> list[dict]:
    """One entry per shard: file, background, samples, bytes and sha256 (from `digests` by background)."""
    return [
        {
            "file": shard_name(meta["bg"]),
            "bg": meta["bg"],
            "samples": meta["samples"],
            "bytes": (Path(root) / shard_name(meta["bg"])).stat().st_size,
            "sha256": digests[meta["bg"]],
        }
        for meta in metas
    ]


def dataset_statistics(root: Path, metas: list[dict], backgrounds: list[dict]) -> dict:
    """Exact statistics of every kind: the shards' histograms added up, plus the backgrounds' pixels."""
    statistics = merge_statistics(
        [{kind: ChannelHistogram.from_dict(h) for kind, h in m["statistics"].items()} for m in metas]
    )
    for info in backgrounds:
        statistics["bg"].add(read_png(Path(root) / info["file"]))
    return {kind: hist.to_dict() for kind, hist in statistics.items()}


def byte_counts(root: Path, metas: list[dict], shards: list[dict], asset_folders: tuple[str, ...]) -> dict:
    """Bytes per sample kind, in shards, in the source assets (hidden partial files left out), in all."""
    kinds = {kind: sum(m["bytes"][kind] for m in metas) for kind in SAMPLE_KINDS}
    assets = sum(
        p.stat().st_size
        for folder in asset_folders
        for p in (Path(root) / folder).iterdir()
        if not p.name.startswith(".")
    )
    in_shards = sum(s["bytes"] for s in shards)
    return {**kinds, "shards": in_shards, "assets": assets, "total": in_shards + assets}


def sample_kinds(size: int, samples: int, fg_bg: dict, mask: dict, depth: dict) -> dict:
    """The fg_bg, mask and depth entries of `kinds`; the arguments add or override their fields."""
    dims = [size, size]
    gray = {"type": "PNG", "mode": "L", "channels": 1, "dims": dims, "count": samples}
    return {
        "fg_bg": {"type": "JPEG", "mode": "RGB", "channels": 3, "dims": dims, "count": samples, **fg_bg},
        "mask": {**gray, "values": "0 background, 255 foreground", **mask},
        "depth": {**gray, **depth},
    }


def background_kind(size: int, count: int) -> dict:
    return {"type": "PNG", "mode": "RGB", "channels": 3, "dims": [size, size], "count": count}
