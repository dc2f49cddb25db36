"""The images a build draws from: the user's files, loaded and checked all together before
anything is written, or the kit's demo drawings; their normalised copies go to bg/ and fg/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .assets import AssetError, list_images, load_background, load_foreground
from .demo_assets import make_demo_background, make_demo_foreground
from .depth import DepthSource, GroundCamera
from .store import sha256_file, write_png

if TYPE_CHECKING:
    from .build import BuildConfig

USER_RELATIVE_HEIGHT = (0.6, 1.0)
"""Range of real height / camera height drawn for user foregrounds (their size is unknown)."""


class BuildInputError(ValueError):
    """Some user assets cannot be used; the message lists every file and its problem."""


def _load_user_asset(task: tuple[str, str, int, bool]) -> tuple[str, np.ndarray | None, str]:
    """(file, image or None, problem): a worker's load of one user image; never raises for bad files."""
    kind, file, size, key_border = task
    try:
        if kind == "bg":
            return file, load_background(Path(file), size), ""
        return file, load_foreground(Path(file), max_side=2 * size, key_border=key_border), ""
    except AssetError as error:
        return file, None, error.problem


def _user_assets(
    kind: str, folder: str, config: BuildConfig, skipped: list[dict], mapper
) -> list[tuple[str, np.ndarray]]:
    tasks = [(kind, str(path), config.size, config.key_border) for path in list_images(Path(folder))]
    usable = []
    for file, image, problem in mapper(_load_user_asset, tasks):
        if image is None:
            skipped.append({"file": file, "kind": kind, "problem": problem})
        else:
            usable.append((file, image))
    return usable


def _demo_background(task: tuple[int, int, int]):
    return make_demo_background(*task)


def _demo_foreground(task: tuple[int, int, int]):
    return make_demo_foreground(*task)


def _take(usable: list, wanted: int, kind: str, folder: str | None) -> list:
    if len(usable) < wanted:
        flag = "--n-bg" if kind == "bg" else "--n-fg"
        raise BuildInputError(
            f"{folder}: {len(usable)} usable {kind} images, {flag} asks for {wanted}; pass {flag} {len(usable)}"
        )
    return usable[:wanted]


def prepare_assets(
    config: BuildConfig,
    root: Path,
    source: DepthSource,
    skip_bad: bool = False,
    mapper=map,
    before_writing: Callable[[], None] = lambda: None,
) -> dict:
    """Load or draw the backgrounds and foregrounds, write their normalised copies to root/bg
    and root/fg, and return their descriptions for the manifest.

    User assets are all checked before anything is written: bad files stop the build with a
    list of every problem, or with `skip_bad` are left out and listed. `before_writing` runs once
    they passed, before the first file is written. `mapper` (a pool's map) spreads the loading or
    drawing over processes.
    """
    skipped: list[dict] = []
    if config.bg_dir:
        bgs = [
            (file, rgb, GroundCamera(), None)
            for file, rgb in _user_assets("bg", config.bg_dir, config, skipped, mapper)
        ]
    else:
        demo = mapper(_demo_background, [(i, config.size, config.seed) for i in range(config.n_bg)])
        bgs = [("demo", d.rgb, d.camera, d.depth_m) for d in demo]
    if config.fg_dir:
        rng = np.random.default_rng([config.seed, 7])
        user = _user_assets("fg", config.fg_dir, config, skipped, mapper)
        fgs = [(file, rgba, float(rng.uniform(*USER_RELATIVE_HEIGHT)), "user") for file, rgba in user]
    else:
        demo_fgs = mapper(_demo_foreground, [(j, config.seed, config.size) for j in range(config.n_fg)])
        fgs = [("demo", d.rgba, d.relative_height, d.kind) for d in demo_fgs]
    if skipped and not skip_bad:
        listing = "\n".join(f"  {s['file']}: {s['problem']}" for s in skipped)
        raise BuildInputError(
            f"{len(skipped)} input file(s) cannot be used "
            f"(nothing was written; pass --skip-bad to leave them out):\n{listing}"
        )
    bgs = _take(bgs, config.n_bg, "bg", config.bg_dir)
    fgs = _take(fgs, config.n_fg, "fg", config.fg_dir)

    before_writing()
    backgrounds, foregrounds = [], []
    for index, (file, rgb, camera, depth_m) in enumerate(bgs):
        image_path, depth_path = root / "bg" / f"bg_{index:03d}.png", root / "bg" / f"bg_{index:03d}_depth.png"
        write_png(image_path, rgb)
        write_png(depth_path, source.background(rgb, camera, depth_m))
        backgrounds.append(
            {
                "id": index,
                "file": f"bg/{image_path.name}",
                "depth_file": f"bg/{depth_path.name}",
                "source": file,
                "camera": camera.to_dict(),
                "sha256": sha256_file(image_path),
                "depth_sha256": sha256_file(depth_path),
            }
        )
    for index, (file, rgba, relative_height, kind) in enumerate(fgs):
        path = root / "fg" / f"fg_{index:03d}.png"
        write_png(path, rgba)
        foregrounds.append(
            {
                "id": index,
                "file": f"fg/{path.name}",
                "source": file,
                "kind": kind,
                "relative_height": relative_height,
                "height": int(rgba.shape[0]),
                "width": int(rgba.shape[1]),
                "sha256": sha256_file(path),
            }
        )
    return {"backgrounds": backgrounds, "foregrounds": foregrounds, "skipped": skipped}
