"""Build the dataset: prepare the source assets, write one zip shard per background in
parallel, then index.csv and the manifest.

A shard is the unit of work, of resumption and of slicing: shard b holds every sample of
background b, its placements drawn from a generator seeded with (seed, b) alone, so any shard
can be (re)built on its own, by any process or machine, and comes out byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .build_assets import prepare_assets
from .compose import MASK_THRESHOLD, MIN_HEIGHT_FRACTION, Box, compose, prepare_foreground, sample_box
from .dataset_info import DatasetInfo
from .depth import DepthSource, GroundCamera, make_depth_source
from .manifest import (
    INDEX_LAYOUT,
    MEMBERS,
    SAMPLE_KINDS,
    Manifest,
    background_kind,
    byte_counts,
    dataset_statistics,
    index_rows,
    is_import,
    library_versions,
    read_manifest,
    sample_kinds,
    shard_entries,
    write_manifest,
)
from .progress import progress_bar
from .runtime import Profile, worker_context
from .splits import write_splits
from .stats import ChannelHistogram
from .store import (
    INDEX_NAME,
    MANIFEST_NAME,
    ShardWriter,
    encode_jpeg,
    encode_png_gray,
    member_names,
    read_png,
    read_shard_meta,
    remove_partials,
    sha256_file,
    shard_name,
    write_index,
)

FLIPS = 2


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the bytes of a build (and so its fingerprint)."""

    n_bg: int = 100
    n_fg: int = 100
    placements: int = 20
    size: int = 224
    seed: int = 0
    depth: str = "geometric"
    jpeg_quality: int = 90
    bg_dir: str | None = None
    fg_dir: str | None = None
    key_border: bool = False

    @property
    def per_background(self) -> int:
        return self.n_fg * FLIPS * self.placements

    @property
    def samples(self) -> int:
        return self.n_bg * self.per_background

    def validate(self) -> None:
        for name in ("n_bg", "n_fg", "placements"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if not 32 <= self.size <= 1024:
            raise ValueError("--size must be between 32 and 1024 pixels")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("--jpeg-quality must be between 1 and 100")
        if self.depth == "geometric" and self.bg_dir:
            raise ValueError(
                "geometric depth is exact only for the demo scenes: use --depth prior or midas with --bg-dir"
            )


@dataclass
class BuildResult:
    root: Path
    samples_built: int
    samples_total: int
    seconds: float
    shards_built: list[int] = field(default_factory=list)
    shards_kept: list[int] = field(default_factory=list)
    manifest: Path | None = None

    @property
    def rate(self) -> float:
        return self.samples_built / self.seconds if self.seconds > 0 else float("nan")


# --- one shard ----------------------------------------------------------------------------

_worker_state: dict = {}


def _worker_init(progress) -> None:
    cv2.setNumThreads(1)
    _worker_state["progress"] = progress


def load_foregrounds(root: Path, assets: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """Prepared (plain, flipped) foregrounds of a dataset, loaded once per process."""
    key = (str(root), tuple(f["sha256"] for f in assets["foregrounds"]))
    if _worker_state.get("fg_key") != key:
        rgba = [read_png(root / f["file"]) for f in assets["foregrounds"]]
        _worker_state["fgs"] = [(prepare_foreground(image), prepare_foreground(image, flip=True)) for image in rgba]
        _worker_state["fg_key"] = key
    return _worker_state["fgs"]


def build_shard(config: BuildConfig, root: Path, assets: dict, bg: int, source: DepthSource | None = None) -> dict:
    """Write shard `bg` (all samples of background `bg`) and return its meta with sha256."""
    source = source or make_depth_source(config.depth)
    progress = _worker_state.get("progress")
    bg_info = assets["backgrounds"][bg]
    bg_rgb = read_png(root / bg_info["file"])
    bg_depth = read_png(root / bg_info["depth_file"])
    camera = GroundCamera(**bg_info["camera"])
    fgs = load_foregrounds(root, assets)
    rng = np.random.default_rng([config.seed, bg])
    counter = ShardStatistics(bg_rgb, bg_depth, source.local)
    rows, sizes = [], {"fg_bg": 0, "mask": 0, "depth": 0}
    writer = ShardWriter(root / shard_name(bg))
    pending: list[tuple[int, int, int, object, tuple[np.ndarray, np.ndarray]]] = []
    """(sample, fg, flip, box, composite) awaiting their depth: gathered to the depth source's batch size."""

    def write_pending() -> None:
        depths = source.composites(
            [c[0] for *_, c in pending],
            [c[1] for *_, c in pending],
            [box.as_tuple() for *_, box, _ in pending],
            bg_rgb,
            bg_depth,
            camera,
        )
        for (sample, fg, flip, box, (fg_bg, mask)), depth in zip(pending, depths, strict=True):
            encoded = (encode_jpeg(fg_bg, config.jpeg_quality), encode_png_gray(mask), encode_png_gray(depth))
            for name, data, kind in zip(member_names(sample), encoded, ("fg_bg", "mask", "depth"), strict=True):
                writer.add(name, data)
                sizes[kind] += len(data)
            counter.add(box, fg_bg, mask, depth)
            rows.append([sample, bg, fg, flip, box.x, box.y, box.w, box.h])
        if progress is not None:
            progress.put(len(pending))
        pending.clear()

    try:
        for fg, variants in enumerate(fgs):
            relative_height = assets["foregrounds"][fg]["relative_height"]
            for flip, image in enumerate(variants):
                first = bg * config.per_background + (fg * FLIPS + flip) * config.placements
                for k in range(config.placements):
                    box = sample_box(rng, image[0].shape[:2], relative_height, camera, config.size)
                    pending.append((first + k, fg, flip, box, compose(bg_rgb, image, box)))
                if len(pending) >= source.batch_size:
                    write_pending()
        if pending:
            write_pending()
        statistics = counter.totals()
        meta = {
            "bg": bg,
            "fingerprint": asdict(config),
            "assets": assets_digest(assets, bg),
            "samples": len(rows),
            "rows": rows,
            "bytes": sizes,
            "statistics": {kind: hist.to_dict() for kind, hist in statistics.items()},
        }
        digest = writer.close(meta)
    except BaseException:
        writer.abort()
        raise
    return {"sha256": digest, "meta": meta}


class ShardStatistics:
    """Exact histograms of one shard's composites, counted box by box.

    A composite equals its background outside the pasted box (and so does its depth, for a
    local depth source), so each sample costs the histograms of its box, not of a whole image.
    fg_bg is counted as composed, before JPEG encoding.
    """

    def __init__(self, bg_rgb: np.ndarray, bg_depth: np.ndarray, local_depth: bool):
        self.bg_rgb, self.bg_depth, self.local_depth = bg_rgb, bg_depth, local_depth
        self.fg_bg, self.depth = ChannelHistogram(3), ChannelHistogram(1)
        self.samples = self.foreground_pixels = 0

    def add(self, box: Box, fg_bg: np.ndarray, mask: np.ndarray, depth: np.ndarray) -> None:
        region = (slice(box.y, box.y + box.h), slice(box.x, box.x + box.w))
        self.fg_bg.add(fg_bg[region])
        self.fg_bg.add(self.bg_rgb[region], sign=-1)
        if self.local_depth:
            self.depth.add(depth[region])
            self.depth.add(self.bg_depth[region], sign=-1)
        else:
            self.depth.add(depth)
        self.foreground_pixels += int(np.count_nonzero(mask[region]))
        self.samples += 1

    def totals(self) -> dict[str, ChannelHistogram]:
        background = ChannelHistogram(3)
        background.add(self.bg_rgb)
        self.fg_bg.counts += self.samples * background.counts
        if self.local_depth:
            base = ChannelHistogram(1)
            base.add(self.bg_depth)
            self.depth.counts += self.samples * base.counts
        mask = ChannelHistogram(1)
        mask.counts[0, 255] = self.foreground_pixels
        mask.counts[0, 0] = self.samples * self.bg_rgb.shape[0] * self.bg_rgb.shape[1] - self.foreground_pixels
        return {"fg_bg": self.fg_bg, "mask": mask, "depth": self.depth}


# --- the whole build ----------------------------------------------------------------------


def shard_ids(n_bg: int, part: tuple[int, int] | None) -> list[int]:
    """The shards of slice (i, n): every n-th background starting at i (all when part is None)."""
    if part is None:
        return list(range(n_bg))
    i, n = part
    if not 0 <= i < n:
        raise ValueError(f"--shard {i}/{n}: i must be in 0..{n - 1}")
    return list(range(i, n_bg, n))


def assets_digest(assets: dict, bg: int) -> str:
    """sha256 over what shard `bg` is drawn from: its background (image and camera) and every
    foreground (image, kind, relative height). The settings alone do not fix them: a file of
    --bg-dir can change under the same name, and another revision of the kit draws other demo
    assets. The background's depth map is left out: MiDaS on a GPU need not repeat it bit for bit."""
    background = {k: v for k, v in assets["backgrounds"][bg].items() if k not in ("file", "source", "depth_sha256")}
    foregrounds = [{k: v for k, v in fg.items() if k not in ("file", "source")} for fg in assets["foregrounds"]]
    return hashlib.sha256(json.dumps([background, foregrounds], sort_keys=True).encode()).hexdigest()


def finished_shard(root: Path, config: BuildConfig, bg: int) -> dict | None:
    """The meta of shard `bg` if it is whole and from this very configuration, else None.

    A shard from other settings is an error: mixing it in would corrupt the dataset.
    """
    path = root / shard_name(bg)
    if not path.exists():
        return None
    meta = read_shard_meta(path)
    if meta.get("fingerprint") != asdict(config):
        raise ValueError(
            f"{path}: built with other settings ({meta.get('fingerprint')}); use another --out or delete it"
        )
    return meta


def refuse_another_dataset(root: Path, config: BuildConfig) -> None:
    """Raise, before anything is written, if `root` holds a whole dataset other than `config`'s
    build (another build, an import): building there would overwrite its assets."""
    if not (root / MANIFEST_NAME).exists():
        return
    manifest = read_manifest(root)
    generation = manifest["generation"]
    if is_import(manifest):
        raise ValueError(
            f"{root}: holds a dataset imported from {generation['imported_from']}; build into another folder"
        )
    if generation.get("parameters") != asdict(config):
        raise ValueError(
            f"{root}: holds a dataset built with other settings ({generation.get('parameters')}); "
            "use another --out or delete it"
        )


def make_dataset(
    root: Path,
    config: BuildConfig = BuildConfig(),
    workers: int | None = None,
    part: tuple[int, int] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
    depth_options: dict | None = None,
) -> BuildResult:
    """Build (or resume) the dataset in `root`; with `part=(i, n)` only slice i of n.

    Finished shards from an earlier run with the same settings are kept, so rerunning a killed
    build finishes it. A whole build ends with index.csv and data_manifest.json; a slice ends
    with its own slice manifest, and `merge` joins slices.
    """
    config.validate()
    root = Path(root)
    refuse_another_dataset(root, config)
    wanted = shard_ids(config.n_bg, part)
    metas = {bg: meta for bg in wanted if (meta := finished_shard(root, config, bg)) is not None}

    def make_room() -> None:
        """Once the inputs passed their checks: a bad input leaves no empty folder and keeps a whole
        dataset's manifest."""
        root.mkdir(parents=True, exist_ok=True)
        remove_partials(root)
        if part is None:
            (root / MANIFEST_NAME).unlink(missing_ok=True)  # whole again only when this run ends

    started = time.perf_counter()
    source = make_depth_source(config.depth, **(depth_options or {}))
    workers = 1 if config.depth == "midas" else max(1, workers or os.cpu_count() or 1)  # midas: one model, this process
    context = worker_context()
    queue = context.Queue() if workers > 1 else None
    pool = (
        ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(queue,))
        if workers > 1
        else None
    )
    try:
        mapper = pool.map if pool else map
        assets = prepare_assets(config, root, source, skip_bad=skip_bad, mapper=mapper, before_writing=make_room)
        drawn_from = {bg: assets_digest(assets, bg) for bg in metas}
        metas = {bg: meta for bg, meta in metas.items() if meta.get("assets") == drawn_from[bg]}
        kept = list(metas)
        todo = [bg for bg in wanted if bg not in metas]
        total = len(todo) * config.per_background
        with progress_bar(total=total, enabled=progress, unit="sample", desc="building", smoothing=0.1) as bar:
            if pool is None:
                _worker_init(None)
                results = []
                for bg in todo:
                    results.append(build_shard(config, root, assets, bg, source))
                    bar.update(config.per_background)
            else:
                results = _build_in_pool(pool, queue, bar, [(config, root, assets, bg) for bg in todo])
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    metas.update((result["meta"]["bg"], result["meta"]) for result in results)
    digests = {result["meta"]["bg"]: result["sha256"] for result in results}
    shards = [metas[bg] for bg in wanted]
    manifest = assemble_manifest(root, config, assets, shards, digests, part)
    name = MANIFEST_NAME if part is None else slice_manifest_name(part)
    if part is None:
        write_index(root / INDEX_NAME, index_rows(shards))
    write_manifest(root / name, manifest)  # a manifest means the dataset is whole
    if part is None:
        write_splits(root)
    seconds = time.perf_counter() - started
    samples_built = len(todo) * config.per_background
    return BuildResult(root, samples_built, config.samples, seconds, todo, kept, manifest=root / name)


def _build_in_pool(pool: ProcessPoolExecutor, queue, bar, tasks: list[tuple]) -> list[dict]:
    """Run shard tasks in the pool, moving the bar as workers report samples.

    A worker that dies (killed, out of memory) fails the build with BrokenProcessPool instead
    of leaving it waiting forever.
    """
    pending = {pool.submit(build_shard, *task) for task in tasks}
    results = []
    while pending:
        done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
        results += [future.result() for future in done]
        while not queue.empty():
            bar.update(queue.get())
    bar.n = bar.total
    bar.refresh()
    return results


def profile_config(profile: Profile, **overrides) -> BuildConfig:
    """The build of a run profile (demo assets), with any field overridden."""
    sizes = {name: getattr(profile, name) for name in ("n_bg", "n_fg", "placements", "size")}
    return BuildConfig(**{**sizes, **overrides})


def ensure_dataset(root: Path, config: BuildConfig, workers: int | None = None) -> DatasetInfo:
    """The dataset in `root`, opened: a whole dataset already there is used as it is (your own build
    or an import, whatever `config` says); otherwise `config` is built there, or a killed build of it
    finished. Lets every notebook run on its own."""
    root = Path(root)
    if (root / MANIFEST_NAME).exists():
        info = DatasetInfo.open(root)
        if info.parameters != asdict(config):
            print(f"{root}: using the dataset there ({info.samples:,} samples), not a new build")
        return info
    print_summary(make_dataset(root, config, workers=workers))
    return DatasetInfo.open(root)


def slice_manifest_name(part: tuple[int, int]) -> str:
    return f"data_manifest.slice-{part[0]}-of-{part[1]}.json"


def assemble_manifest(
    root: Path, config: BuildConfig, assets: dict, metas: list[dict], digests: dict, part=None
) -> Manifest:
    """The manifest of the shards described by `metas`: counts, formats, statistics, checksums."""
    source = make_depth_source(config.depth) if config.depth != "midas" else None
    digests = {m["bg"]: digests.get(m["bg"]) or sha256_file(root / shard_name(m["bg"])) for m in metas}
    shards = shard_entries(root, metas, digests)
    samples = sum(m["samples"] for m in metas)
    return Manifest(
        name="fgbg dataset",
        slice=None if part is None else {"index": part[0], "of": part[1]},
        kinds={
            "bg": background_kind(config.size, len(assets["backgrounds"])),
            "fg": {
                "type": "PNG",
                "mode": "RGBA",
                "channels": 4,
                "dims": "variable (cropped to the object)",
                "count": len(assets["foregrounds"]),
                "note": f"used as is and mirrored: {FLIPS} variants each",
            },
            **sample_kinds(
                config.size,
                samples,
                fg_bg={"quality": config.jpeg_quality},
                mask={},
                depth={"values": "see generation.depth.encoding"},
            ),
        },
        counts={
            "backgrounds": config.n_bg,
            "foregrounds": config.n_fg,
            "flips": FLIPS,
            "placements": config.placements,
            "samples_per_background": config.per_background,
            "samples": samples,
            "shards": len(shards),
            "images": dict.fromkeys(SAMPLE_KINDS, samples),
        },
        bytes=byte_counts(root, metas, shards, ("bg", "fg")),
        layout={
            "shard": "shard_{bg:03d}.zip (one per background, members stored uncompressed, plus meta.json)",
            "members": MEMBERS,
            "bg": "bg/bg_{bg:03d}.png",
            "bg_depth": "bg/bg_{bg:03d}_depth.png",
            "fg": "fg/fg_{fg:03d}.png",
            "index": INDEX_LAYOUT,
            "sample_id": "sample = bg * samples_per_background + (fg * 2 + flip) * placements + k",
        },
        generation={
            "parameters": asdict(config),
            "assets": "user files"
            if config.bg_dir or config.fg_dir
            else "procedural demo assets (fgbg_utils.demo_assets)",
            "placement": "foot row uniform over ground rows where the object is at least "
            f"{MIN_HEIGHT_FRACTION:.0%} of the frame tall; x uniform; fully inside the frame; "
            "random generator seeded with (seed, bg)",
            "scale_rule": "pixel height = relative_height * (foot_row + 0.5 - horizon * size): perspective, "
            "larger lower in the frame; clamped to fit the frame",
            "blend": "alpha blending with premultiplied colour; foreground resized bilinearly from the "
            "smallest level of its halving pyramid (area-averaged) that is at least the target size",
            "mask_threshold": f"pasted alpha >= {MASK_THRESHOLD}",
            "depth": source.describe() if source else {"source": "midas", "exact": False},
            "versions": library_versions(),
        },
        statistics=dataset_statistics(root, metas, assets["backgrounds"]),
        shards=shards,
        backgrounds=assets["backgrounds"],
        foregrounds=assets["foregrounds"],
        skipped=assets["skipped"],
    )


def print_summary(result: BuildResult, file=sys.stdout) -> None:
    kept = f", {len(result.shards_kept)} shards kept from an earlier run" if result.shards_kept else ""
    print(
        f"{result.root}: {result.samples_total:,} samples (fg_bg + mask + depth each){kept}; "
        f"built {result.samples_built:,} in {result.seconds:.1f} s = {result.rate:,.0f} samples/s",
        file=file,
    )
