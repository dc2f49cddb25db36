"""Joining slice builds (`make-dataset --shard I/N`) into one dataset."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

from .build import BuildConfig, assemble_manifest, assets_digest, finished_shard
from .manifest import index_rows, read_manifest_file, write_manifest
from .splits import write_splits
from .store import INDEX_NAME, MANIFEST_NAME, atomic_path, write_index


def _copy_atomic(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def merge(root: Path, sources: list[Path] = ()) -> Path:
    """Join slice builds into one dataset in `root`: copy in the shards of `sources` (other
    folders holding slices), check that every shard is there and from the same settings, then
    write index.csv and data_manifest.json."""
    root = Path(root)
    missing = [str(folder) for folder in map(Path, sources) if not folder.is_dir()]
    if missing:
        raise FileNotFoundError(f"merge: no such folder: {', '.join(missing)}")
    slices = []
    for folder in [root, *map(Path, sources)]:
        for path in sorted(folder.glob("data_manifest.slice-*-of-*.json")):
            slices.append((folder, path, read_manifest_file(path)))
    if not slices:
        raise FileNotFoundError(f"{root}: no slice manifests (data_manifest.slice-I-of-N.json) to merge")
    root.mkdir(parents=True, exist_ok=True)
    first = slices[0][2]
    config = BuildConfig(**first["generation"]["parameters"])
    digests = {}
    for folder, path, manifest in slices:
        if manifest["generation"]["parameters"] != asdict(config):
            raise ValueError(f"{path}: built with other settings than {slices[0][1]}; slices must share every setting")
        for kind in ("backgrounds", "foregrounds"):
            if [a["sha256"] for a in manifest[kind]] != [a["sha256"] for a in first[kind]]:
                raise ValueError(f"{path}: its {kind} differ from {slices[0][1]}")
        for entry in manifest["shards"]:
            target = root / entry["file"]
            if folder != root and not target.exists():
                _copy_atomic(folder / entry["file"], target)
            digests[entry["bg"]] = entry["sha256"]
        for info in manifest["backgrounds"] + manifest["foregrounds"]:
            for key in ("file", "depth_file"):
                if key in info and not (root / info[key]).exists():
                    _copy_atomic(folder / info[key], root / info[key])
    metas = {bg: finished_shard(root, config, bg) for bg in range(config.n_bg) if bg in digests}
    missing = [bg for bg in range(config.n_bg) if metas.get(bg) is None]
    if missing:
        raise ValueError(f"{root}: shards {missing} are missing; build them with --shard I/N first")
    assets = {k: first[k] for k in ("backgrounds", "foregrounds", "skipped")}
    drawn_from = {bg: assets_digest(assets, bg) for bg in metas}
    other = [bg for bg, meta in metas.items() if meta.get("assets") != drawn_from[bg]]
    if other:
        raise ValueError(
            f"{root}: shards {other} were drawn from other assets than {slices[0][1]} lists (another kit "
            "revision, or a file changed in place); rebuild them with --shard I/N"
        )
    shards = [metas[bg] for bg in range(config.n_bg)]
    manifest = assemble_manifest(root, config, assets, shards, digests)
    manifest.generation["depth"] = first["generation"]["depth"]
    write_index(root / INDEX_NAME, index_rows(shards))
    write_manifest(root / MANIFEST_NAME, manifest)  # a manifest means the dataset is whole
    write_splits(root)
    return root / MANIFEST_NAME
