"""The dataset section the assignment asks for: kinds, counts, size, statistics, sample grids."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .compose import MASK_THRESHOLD
from .dataset_info import DatasetInfo
from .manifest import is_import
from .store import INDEX_NAME, read_index, read_png, read_sample, write_bytes_atomic, write_png

GRID_KINDS = ("bg", "fg", "fg_mask", "fg_bg", "mask", "depth")
GRID_TITLES = {"bg": "bg", "fg": "fg", "fg_mask": "fg mask", "fg_bg": "fg_bg", "mask": "fg_bg mask", "depth": "depth"}


def on_checkerboard(rgba: np.ndarray, cell: int = 8) -> np.ndarray:
    """A transparent image over a grey checkerboard, so its alpha shows."""
    h, w = rgba.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    board = np.where(((ys // cell) + (xs // cell)) % 2 == 0, 200.0, 150.0)[..., None]
    alpha = rgba[..., 3:4] / 255.0
    return np.rint(rgba[..., :3] * alpha + board * (1 - alpha)).astype(np.uint8)


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    """An RGB tile of size x size: the image scaled to fit, centred on white."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    h, w = image.shape[:2]
    scale = size / max(h, w)
    resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    tile = np.full((size, size, 3), 255, np.uint8)
    top, left = (size - resized.shape[0]) // 2, (size - resized.shape[1]) // 2
    tile[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return tile


def grid_kinds(manifest: dict) -> tuple[str, ...]:
    """The kinds a sample grid shows: all of GRID_KINDS, or without the foreground's two where the
    dataset has none (imported from the course layout)."""
    return tuple(k for k in GRID_KINDS if k not in ("fg", "fg_mask")) if is_import(manifest) else GRID_KINDS


def sample_tiles(root: Path, rows: list[dict], manifest: dict, size: int) -> dict[str, list[np.ndarray]]:
    """For each chosen sample, one tile per kind in `grid_kinds`."""
    tiles: dict[str, list[np.ndarray]] = {kind: [] for kind in grid_kinds(manifest)}
    for row in rows:
        images = read_sample(root, row)
        tiles["bg"].append(_fit(read_png(root / manifest["backgrounds"][row["bg"]]["file"]), size))
        if "fg" in tiles:
            fg = read_png(root / manifest["foregrounds"][row["fg"]]["file"])
            if row["flip"]:
                fg = fg[:, ::-1]
            tiles["fg"].append(_fit(on_checkerboard(fg), size))
            tiles["fg_mask"].append(_fit(np.where(fg[..., 3] >= MASK_THRESHOLD * 255, 255, 0).astype(np.uint8), size))
        for kind in ("fg_bg", "mask", "depth"):
            tiles[kind].append(_fit(images[kind], size))
    return tiles


def grid(tiles: list[np.ndarray], columns: int, gap: int = 2) -> np.ndarray:
    rows = -(-len(tiles) // columns)
    size = tiles[0].shape[0]
    sheet = np.full((rows * (size + gap) - gap, columns * (size + gap) - gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * (size + gap) : r * (size + gap) + size, c * (size + gap) : c * (size + gap) + size] = tile
    return sheet


def pick_samples(rows: list[dict], count: int) -> list[dict]:
    """`count` samples spread evenly over the dataset (different backgrounds and foregrounds)."""
    step = max(1, len(rows) // count)
    return [rows[(i * step + i * 37) % len(rows)] for i in range(min(count, len(rows)))]


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.4f}" for v in values)


def write_report(info: DatasetInfo, out: Path | None = None, samples: int = 8, tile: int = 112) -> Path:
    """Write report/README.md and its PNG grids for the dataset `info` opens; return the README path."""
    root, manifest = info.root, info.manifest
    out = Path(out) if out else root / "report"
    chosen = pick_samples(read_index(root / INDEX_NAME), samples)
    tiles = sample_tiles(root, chosen, manifest, tile)
    shown = tuple(tiles)
    for kind in shown:
        write_png(out / f"grid_{kind}.png", grid(tiles[kind], columns=min(4, len(chosen))))
    overview = [tiles[kind][i] for i in range(len(chosen)) for kind in shown]
    write_png(out / "samples.png", grid(overview, columns=len(shown)))

    kinds, counts, stats = manifest["kinds"], manifest["counts"], manifest["statistics"]
    mib = manifest["bytes"]["total"] / 2**20
    recipe = (
        f"{counts['backgrounds']} backgrounds x {counts['foregrounds']} foregrounds"
        f" x {counts['flips']} (as is and mirrored) x {counts['placements']} placements"
        if not is_import(manifest)
        else f"{counts['backgrounds']} backgrounds x {counts['samples_per_background']:,} imported samples each"
    )
    lines = [
        "## Dataset",
        "",
        f"{recipe} = **{counts['samples']:,} fg_bg images**, with as many masks and depth maps.",
        "",
        "| kind | type | channels | dimension | count |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, info in kinds.items():
        dims = "x".join(map(str, info["dims"])) if isinstance(info["dims"], list) else info["dims"]
        kind_type = info["type"] + (f" (quality {info['quality']})" if "quality" in info else "")
        lines.append(f"| {name} | {kind_type} {info['mode']} | {info['channels']} | {dims} | {info['count']:,} |")
    lines += [
        "",
        f"Total size: **{mib:,.1f} MiB** in {counts['shards']} zip shards plus the source assets "
        f"(fg_bg {manifest['bytes']['fg_bg'] / 2**20:,.1f} MiB, masks {manifest['bytes']['mask'] / 2**20:,.1f} MiB, "
        f"depth {manifest['bytes']['depth'] / 2**20:,.1f} MiB).",
        "",
        "Statistics over every pixel, on the 0..1 scale (value / 255):",
        "",
        "| kind | mean | std |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {kind} | {_fmt(s['mean'])} | {_fmt(s['std'])} |" for kind, s in stats.items()]
    depth = manifest["generation"]["depth"]
    encoding = depth.get("encoding", {})
    lines += [
        "",
        f"Depth: source `{depth['source']}`"
        + (" (exact for the scene model)" if depth.get("exact") else "")
        + f"; {encoding.get('quantity', '')}: 255 = {encoding.get('value_255', '')},"
        + f" 0 = {encoding.get('value_0', '')}.",
        "",
        "Samples (columns: " + ", ".join(GRID_TITLES[k] for k in shown) + "):",
        "",
        "![samples](samples.png)",
        "",
    ]
    lines += [f"- {GRID_TITLES[k]}: ![{k}](grid_{k}.png)" for k in shown]
    readme = out / "README.md"
    write_bytes_atomic(readme, ("\n".join(lines) + "\n").encode())
    return readme
