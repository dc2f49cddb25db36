"""The course's plain dataset layout: import what students built by hand, export for tests.

`import_course_layout` converts `bg/ fg_bg/ mask/ depth/` folders (background of sample i by
number, or a CSV mapping) into the kit's indexed format (shards, index.csv,
data_manifest.json), checking every file before writing anything and naming each bad one;
`export_course_layout` writes a built dataset back out in that layout.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from .depth import GeometricDepth, GroundCamera
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
from .runtime import worker_context
from .splits import write_splits
from .stats import ChannelHistogram
from .store import (
    INDEX_NAME,
    MANIFEST_NAME,
    SPLITS_NAME,
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
    write_png,
)

COURSE_FOLDERS = ("bg", "fg_bg", "mask", "depth")
COURSE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
MASK_CUT = 128
"""Course masks are thresholded here: value >= 128 is foreground (255), the rest 0."""
IMPORT_JPEG_QUALITY = 90


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: img_2 before img_10 (and as plain sort
    for zero-padded names)."""
    parts = re.split(r"(\d+)", name)
    return ([int(p) if i % 2 else p.lower() for i, p in enumerate(parts)], name)


def _list_course_images(folder: Path, problems: list[str]) -> list[Path]:
    if not folder.is_dir():
        problems.append(f"{folder}: folder not found (the course layout has bg/, fg_bg/, mask/ and depth/)")
        return []
    images = []
    for path in folder.iterdir():
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() in COURSE_SUFFIXES:
            images.append(path)
        else:
            problems.append(f"{path}: not a JPEG or PNG file name (.jpg, .jpeg, .png)")
    if not images:
        problems.append(f"{folder}: holds no JPEG or PNG images")
    return sorted(images, key=lambda p: natural_key(p.name))


def _last_number(path: Path) -> int | None:
    numbers = re.findall(r"\d+", path.stem)
    return int(numbers[-1]) if numbers else None


def _pair(fg_bg: list[Path], others: list[Path], kind: str, problems: list[str]) -> list[Path | None]:
    """The `kind` file of each fg_bg: by identical stems, else by the last number in the name,
    else by sorted order (only when the counts agree). Unmatched files on either side are named."""
    half = max(1, len(fg_bg) // 2)
    if not others:
        return [None] * len(fg_bg)  # the empty or missing folder is reported already
    keyings: list[Callable[[Path], object]] = [lambda p: p.stem, _last_number]
    for key in keyings:
        mine, theirs = [key(p) for p in fg_bg], {key(p): p for p in others}
        if None in theirs or None in mine or len(theirs) != len(others) or len(set(mine)) != len(mine):
            continue
        if len(set(mine) & set(theirs)) < min(half, len(others)):
            continue
        matched = [theirs.get(k) for k in mine]
        for path, other in zip(fg_bg, matched, strict=True):
            if other is None:
                problems.append(f"{path}: no {kind} file for it in {others[0].parent}")
        for k in sorted(set(theirs) - set(mine), key=str):
            problems.append(f"{theirs[k]}: a {kind} with no fg_bg of the same name")
        return matched
    if len(others) == len(fg_bg):
        return list(others)
    problems.append(
        f"{others[0].parent}: {len(others)} {kind} files for {len(fg_bg)} fg_bg images, and their names do not "
        "correspond (same stems or same numbers), so the missing ones cannot be named"
    )
    return [None] * len(fg_bg)


def _read_mapping(mapping: Path, fg_bg: list[Path], bgs: list[Path], problems: list[str]) -> list[int]:
    """Background index of each fg_bg from a CSV with columns fg_bg,bg (file names)."""
    by_name = {p.name: i for i, p in enumerate(bgs)}
    wanted = {p.name for p in fg_bg}
    found: dict[str, int] = {}
    try:
        with open(mapping, newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"fg_bg", "bg"} <= set(reader.fieldnames or ()):
                problems.append(f"{mapping}: needs columns fg_bg,bg; has {reader.fieldnames}")
                return [-1] * len(fg_bg)
            for line, row in enumerate(reader, start=2):
                name, bg = Path(row["fg_bg"] or "").name, Path(row["bg"] or "").name
                if name not in wanted:
                    problems.append(f"{mapping}:{line}: fg_bg {name!r} is not in the fg_bg folder")
                elif name in found:
                    problems.append(f"{mapping}:{line}: fg_bg {name!r} is mapped twice")
                elif bg not in by_name:
                    problems.append(f"{mapping}:{line}: bg {bg!r} is not in the bg folder")
                else:
                    found[name] = by_name[bg]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        problems.append(f"{mapping}: cannot be read as CSV ({error})")
        return [-1] * len(fg_bg)
    for path in fg_bg:
        if path.name not in found:
            problems.append(f"{path}: not in the mapping {mapping}")
    return [found.get(p.name, -1) for p in fg_bg]


def _decode_file(path: Path, gray: bool) -> tuple[np.ndarray, bool]:
    """(uint8 image, colour) of a JPEG/PNG: RGB, or one channel when `gray` (16-bit scaled to 8,
    an image with equal channels taken as is, a coloured one converted by luminance and
    flagged). ValueError naming the file when it does not decode."""
    data = path.read_bytes()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ValueError(f"{path}: not a decodable image (corrupt, truncated or not an image)")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    colour = False
    if gray:
        if image.ndim == 3:
            colour = not (np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if colour else np.ascontiguousarray(image[..., 0])
    else:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image, colour


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    shrink = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _is_keepable_jpeg(path: Path, size: int) -> bool:
    try:
        with Image.open(path) as image:
            return image.format == "JPEG" and image.mode == "RGB" and image.size == (size, size)
    except (OSError, UnidentifiedImageError):
        return False


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) bounding box of the nonzero pixels; (0, 0, 0, 0) for an empty mask."""
    points = cv2.findNonZero(mask)
    if points is None:
        return 0, 0, 0, 0
    x, y, w, h = cv2.boundingRect(points)
    return int(x), int(y), int(w), int(h)


def _load_sample(paths: tuple[Path, Path, Path], size: int | None, dims: tuple[int, int]) -> dict:
    """Decode and convert one sample. `dims` (h, w) is what its images must measure as found
    (its background's); with `size` they are then resized to size x size."""
    fg_bg_path, mask_path, depth_path = paths
    fg_bg, _ = _decode_file(fg_bg_path, gray=False)
    mask, _ = _decode_file(mask_path, gray=True)
    depth, colour_depth = _decode_file(depth_path, gray=True)
    found = {"fg_bg": fg_bg.shape[:2], "mask": mask.shape[:2], "depth": depth.shape[:2]}
    if any(shape != dims for shape in found.values()):
        listing = ", ".join(f"{kind} {w}x{h}" for kind, (h, w) in found.items())
        raise ValueError(f"{fg_bg_path}: size mismatch: {listing}, its background {dims[1]}x{dims[0]}")
    target = size or dims[0]
    fg_bg, depth = _resize(fg_bg, target), _resize(depth, target)
    mask = np.where(_resize(mask, target) >= MASK_CUT, 255, 0).astype(np.uint8)
    return {"fg_bg": fg_bg, "mask": mask, "depth": depth, "colour_depth": colour_depth}


def _check_samples(task: tuple[list[tuple[Path, Path, Path]], int | None, tuple[int, int]]) -> list[str]:
    """Problems of a batch of samples (a worker's share of the check that precedes writing)."""
    cv2.setNumThreads(1)
    samples, size, dims = task
    problems = []
    for paths in samples:
        try:
            _load_sample(paths, size, dims)
        except (ValueError, OSError) as error:
            problems.append(str(error))
    return problems


def _import_shard(task: dict) -> dict:
    """Write shard `task['bg']` from its course files; return its sha256 and meta."""
    cv2.setNumThreads(1)
    out, bg, size = Path(task["out"]), task["bg"], task["size"]
    statistics = {"fg_bg": ChannelHistogram(3), "mask": ChannelHistogram(1), "depth": ChannelHistogram(1)}
    rows, sources, sizes = [], [], {"fg_bg": 0, "mask": 0, "depth": 0}
    reencoded = colour_depths = 0
    writer = ShardWriter(out / shard_name(bg))
    try:
        for sample, paths in zip(task["samples"], task["paths"], strict=True):
            paths = tuple(Path(p) for p in paths)
            images = _load_sample(paths, task["size_arg"], tuple(task["dims"]))
            if _is_keepable_jpeg(paths[0], size):
                fg_bg_bytes = paths[0].read_bytes()
            else:
                fg_bg_bytes = encode_jpeg(images["fg_bg"], IMPORT_JPEG_QUALITY)
                reencoded += 1
            colour_depths += images["colour_depth"]
            encoded = (fg_bg_bytes, encode_png_gray(images["mask"]), encode_png_gray(images["depth"]))
            for name, data, kind in zip(member_names(sample), encoded, ("fg_bg", "mask", "depth"), strict=True):
                writer.add(name, data)
                sizes[kind] += len(data)
            for kind in statistics:
                statistics[kind].add(images[kind])
            rows.append([sample, bg, -1, -1, *mask_box(images["mask"])])
            sources.append([str(Path(p).relative_to(task["folder"])) for p in paths])
        meta = {
            "bg": bg,
            "fingerprint": task["fingerprint"],
            "samples": len(rows),
            "rows": rows,
            "sources": sources,
            "bytes": sizes,
            "reencoded_fg_bg": reencoded,
            "colour_depth": colour_depths,
            "statistics": {kind: hist.to_dict() for kind, hist in statistics.items()},
        }
        digest = writer.close(meta)
    except BaseException:
        writer.abort()
        raise
    return {"sha256": digest, "meta": meta}


def _shard_fingerprint(base: dict, paths: list[tuple[Path, Path, Path]]) -> dict:
    """The settings and the source files' names, sizes and modification times: a file replaced
    under the same name (and size) is imported again, without hashing every file on each rerun."""
    digest = hashlib.sha256()
    for triple in paths:
        for path in triple:
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return {**base, "sources_sha256": digest.hexdigest()}


def _run(function, tasks: list, workers: int):
    if workers <= 1 or len(tasks) <= 1:
        return [function(task) for task in tasks]
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=worker_context()) as pool:
        return list(pool.map(function, tasks))


def import_course_layout(
    folder: Path,
    out: Path,
    per_background: int = 4000,
    mapping: Path | None = None,
    size: int | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Convert a dataset built by hand in the course's plain layout into the kit's format.

    `folder` holds `bg/`, `fg_bg/`, `mask/` and `depth/` (JPEG or PNG). Files sort by name with
    embedded numbers compared by value (img_2 before img_10). mask and depth files are matched
    to fg_bg files by identical stems, else by the last number in their names, else by sorted
    order. The background of fg_bg number i (in sorted order) is bg number i // per_background,
    unless `mapping` names a CSV with columns `fg_bg,bg` (file names). Every background needs
    the same number of samples (verify_dataset counts backgrounds x samples per background).

    Written to `out`: `bg/bg_XXX.png` and, as the course layout has no background depth, the
    ground-plane PRIOR as `bg/bg_XXX_depth.png` (flagged in the manifest); one shard per
    background with the kit's member names; fg_bg kept byte for byte when it is already an RGB
    JPEG of the right size, else re-encoded (quality 90); masks thresholded at 128 and stored as
    0/255 PNG (course masks were often saved as JPEG, whose compression greys their edges: the
    threshold undoes most of it, not all); depth as 1-channel 8-bit PNG (16-bit scaled, colour
    converted by luminance and counted); index.csv with fg and flip -1 (unknown) and the mask's
    bounding box (0,0,0,0 when empty); data_manifest.json. `size` resizes every image to
    size x size (aspect not kept); without it all images must be square and of one size.

    Everything is decoded and checked first; problems (missing partner files, unreadable
    files, size mismatches, mapping errors) are raised together in one ValueError naming each
    file, before anything is written. Returns the manifest's path. A rerun keeps shards already
    imported from the same files (same names, sizes and modification times: files copied or
    extracted again are imported again) with the same settings.
    """
    folder, out = Path(folder).resolve(), Path(out)
    if out.resolve() == folder:
        raise ValueError(f"{out}: write the import to another folder than {folder}")
    if (out / MANIFEST_NAME).exists() and not is_import(read_manifest(out)):
        raise ValueError(f"{out}: holds a built dataset; import into another folder")
    if per_background < 1:
        raise ValueError("per_background must be at least 1")
    workers = max(1, workers or os.cpu_count() or 1)
    problems: list[str] = []
    listed = {name: _list_course_images(folder / name, problems) for name in COURSE_FOLDERS}
    bgs, fg_bgs = listed["bg"], listed["fg_bg"]
    masks = _pair(fg_bgs, listed["mask"], "mask", problems)
    depths = _pair(fg_bgs, listed["depth"], "depth", problems)
    if mapping is not None:
        bg_of = _read_mapping(Path(mapping), fg_bgs, bgs, problems)
    else:
        bg_of = [i // per_background for i in range(len(fg_bgs))]
    groups: dict[int, list[int]] = {}
    for i, b in enumerate(bg_of):
        if 0 <= b < len(bgs):
            groups.setdefault(b, []).append(i)
    if fg_bgs and bgs:
        unused = [bgs[b].name for b in range(len(bgs)) if b not in groups]
        if mapping is None and (len(fg_bgs) % per_background or len(bgs) != -(-len(fg_bgs) // per_background)):
            problems.append(
                f"{folder}: {len(fg_bgs)} fg_bg images at per_background={per_background} need "
                f"{-(-len(fg_bgs) // per_background)} full groups, and bg/ holds {len(bgs)} backgrounds "
                "(check per_background, or give a mapping CSV)"
            )
        elif unused:
            problems.append(f"{folder / 'bg'}: backgrounds with no fg_bg: {', '.join(unused[:10])}")
        counts = {b: len(members) for b, members in groups.items()}
        if len(set(counts.values())) > 1:
            listing = ", ".join(f"{bgs[b].name}: {n}" for b, n in sorted(counts.items())[:10])
            problems.append(
                f"{folder}: backgrounds have different numbers of samples ({listing}…); each needs the same"
            )

    # Backgrounds: decode, and fix the size everything must have.
    bg_images, bg_dims = [], []
    for path in bgs:
        try:
            image, _ = _decode_file(path, gray=False)
            bg_images.append(image)
            bg_dims.append(image.shape[:2])
        except (ValueError, OSError) as error:
            problems.append(str(error))
            bg_images.append(None)
            bg_dims.append(None)
    known = [d for d in bg_dims if d is not None]
    if size is None and known and (any(d != known[0] for d in known) or known[0][0] != known[0][1]):
        problems.append(
            f"{folder / 'bg'}: backgrounds are not all square and of one size ({sorted(set(known))[:4]}); "
            "pass size=N to resize everything to N x N"
        )
    target = size or (known[0][0] if known else 0)
    if size is not None and not 32 <= size <= 1024:
        problems.append(f"size={size}: must be between 32 and 1024 pixels")

    triples = {i: (fg_bgs[i], masks[i], depths[i]) for i in range(len(fg_bgs))}
    checkable = [
        (triples[i], bg_dims[bg_of[i]])
        for i in range(len(fg_bgs))
        if None not in triples[i] and 0 <= bg_of[i] < len(bgs) and bg_dims[bg_of[i]] is not None
    ]
    batch = max(1, min(500, -(-len(checkable) // (4 * workers))))
    tasks = []
    for start in range(0, len(checkable), batch):
        chunk = checkable[start : start + batch]
        by_dims: dict[tuple, list] = {}
        for paths, dims in chunk:
            by_dims.setdefault(dims, []).append(paths)
        tasks += [(samples, size, dims) for dims, samples in by_dims.items()]
    bar = tqdm(total=len(tasks), desc="checking", unit="batch", disable=not progress)
    for found in _run(_check_samples, tasks, workers if len(checkable) > 2000 else 1):
        problems += found
        bar.update()
    bar.close()
    if problems:
        listing = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  … and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise ValueError(f"{folder}: {len(problems)} problem(s), nothing was written:\n{listing}{more}")

    # Write: backgrounds with their prior depth, then one shard per background.
    out.mkdir(parents=True, exist_ok=True)
    remove_partials(out)
    (out / MANIFEST_NAME).unlink(missing_ok=True)  # an earlier import's; whole again only when this one ends
    (out / SPLITS_NAME).unlink(missing_ok=True)  # made for the earlier import's samples
    prior, camera = GeometricDepth(prior=True), GroundCamera()
    backgrounds = []
    for b, (path, image) in enumerate(zip(bgs, bg_images, strict=True)):
        image = _resize(image, target)
        image_path, depth_path = out / "bg" / f"bg_{b:03d}.png", out / "bg" / f"bg_{b:03d}_depth.png"
        write_png(image_path, image)
        write_png(depth_path, prior.background(image, camera, None))
        backgrounds.append(
            {
                "id": b,
                "file": f"bg/{image_path.name}",
                "depth_file": f"bg/{depth_path.name}",
                "depth_is_prior": True,
                "source": str(path.relative_to(folder)),
                "camera": camera.to_dict(),
                "sha256": sha256_file(image_path),
                "depth_sha256": sha256_file(depth_path),
            }
        )
    parameters = {"per_background": per_background, "mapping": str(mapping) if mapping else None, "size": target}
    base = {"imported_from": str(folder), **parameters}
    shard_tasks, metas, first = [], {}, 0
    for b in range(len(bgs)):
        members = groups[b]
        paths = [triples[i] for i in members]
        fingerprint = _shard_fingerprint(base, paths)
        samples = list(range(first, first + len(members)))
        first += len(members)
        shard = out / shard_name(b)
        if shard.exists():
            try:
                meta = read_shard_meta(shard)
            except ValueError:
                meta = {}
            if meta.get("fingerprint") == fingerprint:
                metas[b] = {"sha256": sha256_file(shard), "meta": meta}
                continue
        shard_tasks.append(
            {
                "out": str(out),
                "folder": str(folder),
                "bg": b,
                "samples": samples,
                "paths": [tuple(str(p) for p in t) for t in paths],
                "size": target,
                "size_arg": size,
                "dims": bg_dims[b],
                "fingerprint": fingerprint,
            }
        )
    bar = tqdm(total=len(shard_tasks), desc="importing", unit="shard", disable=not progress)
    for result in _run(_import_shard, shard_tasks, workers if len(fg_bgs) > 2000 else 1):
        metas[result["meta"]["bg"]] = result
        bar.update()
    bar.close()
    shards = [metas[b] for b in range(len(bgs))]
    write_index(out / INDEX_NAME, index_rows([s["meta"] for s in shards]))
    write_manifest(out / MANIFEST_NAME, _import_manifest(out, folder, parameters, target, backgrounds, shards))
    write_splits(out)
    return out / MANIFEST_NAME


def _import_manifest(
    out: Path, folder: Path, parameters: dict, size: int, backgrounds: list[dict], shards: list[dict]
) -> Manifest:
    """The manifest of an import, in the schema a build writes, where it applies."""
    metas = [s["meta"] for s in shards]
    samples = sum(m["samples"] for m in metas)
    per_background = metas[0]["samples"] if metas else 0
    entries = shard_entries(out, metas, {m["bg"]: s["sha256"] for s, m in zip(shards, metas, strict=True)})
    reencoded = sum(m["reencoded_fg_bg"] for m in metas)
    colour_depth = sum(m["colour_depth"] for m in metas)
    return Manifest(
        name="fgbg dataset (imported from the course layout)",
        kinds={
            "bg": background_kind(size, len(backgrounds)),
            "fg": {"type": "PNG", "mode": "RGBA", "channels": 4, "dims": None, "count": 0, "note": "none imported"},
            **sample_kinds(
                size,
                samples,
                fg_bg={
                    "quality": IMPORT_JPEG_QUALITY if reencoded == samples else "as imported",
                    "note": f"{samples - reencoded} kept byte for byte, {reencoded} re-encoded at quality "
                    f"{IMPORT_JPEG_QUALITY} (not an RGB JPEG of {size}x{size})",
                },
                mask={
                    "note": f"imported masks thresholded at {MASK_CUT} (value >= {MASK_CUT} is foreground); masks "
                    "saved as JPEG keep some compression error along their edges",
                },
                depth={"values": "as imported (see generation.depth)"},
            ),
        },
        counts={
            "backgrounds": len(backgrounds),
            "foregrounds": 1,
            "flips": 1,
            "placements": per_background,
            "samples_per_background": per_background,
            "samples": samples,
            "shards": len(entries),
            "images": dict.fromkeys(SAMPLE_KINDS, samples),
            "note": "imported: the foreground and flip of each sample are unknown (-1 in index.csv), so "
            "foregrounds and flips count as 1 and placements as the samples per background",
        },
        bytes=byte_counts(out, metas, entries, ("bg",)),
        layout={
            "shard": "shard_{bg:03d}.zip (one per background, members stored uncompressed, plus meta.json "
            "whose 'sources' list each sample's original fg_bg, mask and depth files)",
            "members": MEMBERS,
            "bg": "bg/bg_{bg:03d}.png",
            "bg_depth": "bg/bg_{bg:03d}_depth.png (ground-plane prior)",
            "index": f"{INDEX_LAYOUT} (fg, flip = -1: unknown; x,y,w,h = the mask's bounding box, 0,0,0,0 when empty)",
            "sample_id": "samples grouped by background, in sorted fg_bg order within each",
        },
        generation={
            "imported_from": str(folder),
            "parameters": parameters,
            "assets": "imported from the course layout (bg/, fg_bg/, mask/, depth/)",
            "mask_threshold": f"imported value >= {MASK_CUT}",
            "depth": {
                "source": "imported",
                "exact": False,
                "note": "fg_bg depth maps as found in the course layout's depth/ folder, converted to one 8-bit "
                "channel; their scale is whatever made them (the course used MiDaS: relative inverse depth), not "
                f"necessarily generation.depth.encoding. {colour_depth} were colour images converted by luminance.",
                "bg_depth": GeometricDepth(prior=True).describe(),
            },
            "statistics_note": "fg_bg statistics are of the imported images as decoded (before any re-encoding)",
            "versions": library_versions(),
        },
        statistics=dataset_statistics(out, metas, backgrounds),
        shards=entries,
        backgrounds=backgrounds,
    )


def export_course_layout(root: Path, folder: Path, backgrounds: int | None = None, mask_quality: int = 75) -> int:
    """Write (the first `backgrounds` backgrounds of) the built dataset in `root` out in the
    course's plain layout, as students had it: `bg/bg_XXX.png`, `fg_bg/NNNNNNN.jpg` (the stored
    JPEG bytes), `mask/NNNNNNN.jpg` (JPEG, lossy, as many course datasets saved them) and
    `depth/NNNNNNN.png`, fg_bg in sample order so that bg = index // per_background.

    For demonstrations and tests of `import_course_layout`. Returns the samples per background.
    """
    root, folder = Path(root), Path(folder)
    manifest = read_manifest(root)
    chosen = manifest["backgrounds"][:backgrounds] if backgrounds else manifest["backgrounds"]
    for info in chosen:
        write_png(folder / "bg" / f"bg_{info['id']:03d}.png", read_png(root / info["file"]))
        with zipfile.ZipFile(root / shard_name(info["id"])) as archive:
            for name in archive.namelist():
                kind, _, file = name.partition("/")
                if kind in ("fg_bg", "depth"):
                    (folder / kind).mkdir(parents=True, exist_ok=True)
                    (folder / kind / file).write_bytes(archive.read(name))
                elif kind == "mask":
                    mask = cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_GRAYSCALE)
                    _, data = cv2.imencode(".jpg", mask, [cv2.IMWRITE_JPEG_QUALITY, mask_quality])
                    (folder / "mask").mkdir(parents=True, exist_ok=True)
                    (folder / "mask" / file.replace(".png", ".jpg")).write_bytes(data.tobytes())
    return manifest["counts"]["samples_per_background"]
