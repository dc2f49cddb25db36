"""The kit on real photographs: backgrounds cut from photos, foregrounds from real clip-art cut-outs.

Every asset comes from a package this machine installs with its ordinary client, never from a URL:
Debian's wallpaper packages and openclipart-png (apt-get, as root), and the photos that the
scikit-image wheel ships in ``skimage/data`` (pip download of the pinned wheel, read from the zip,
not installed). `PHOTOS` and `FOREGROUND_PACKAGE` record where each asset came from.

Steps, each resumed on a rerun (work under runs/real_photos/, git-ignored):

1. assets: one square 224 px crop of each photo (`PHOTOS`), plus zoomed crops of the largest ones
   to reach `N_BG`; `N_FG` foregrounds screened from openclipart-png (`screen_foreground`) in
   `FOREGROUND_MODES` quotas, copied unchanged (their own mode and size). ``assets/sources.json``
   lists every file's package and source and the screened-out counts.
2. ``python -m fgbg_utils make-dataset --depth prior`` (N_BG x N_FG x 2 flips x PLACEMENTS).
3. ``python -m fgbg_utils train`` with the default recipe for ``--minutes`` (a killed run resumes).
4. ``python -m fgbg_utils evaluate`` on ``unseen_test``; a markdown table of the model beside the
   difference-mask and background-depth baselines; a prediction grid PNG (docs/real_photos/grid.png);
   the IoU of the test backgrounds cropped from a photo that also gives a training crop, apart.

Target: unseen per-image mask IoU >= 0.92, above the difference baseline. The script reports, it
does not gate (exit 0 when every step ran).

    python benchmarks/real_photos.py [--minutes 10] [--train-options "--sizes 64,96"]   # or: make real-photos
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, ImageOps

from fgbg_utils.assets import AssetError, open_image
from fgbg_utils.data import evenly_spaced_positions
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.figures import prediction_grid
from fgbg_utils.manifest import read_manifest
from fgbg_utils.runtime import runs_dir
from fgbg_utils.split_predictions import SplitPredictions, predict_split
from fgbg_utils.store import sha256_file, write_bytes_atomic, write_json_atomic
from fgbg_utils.viz import figure_png

REPO = Path(__file__).resolve().parents[1]
SIZE = 224
N_BG = 60
N_FG = 60
PLACEMENTS = 2
TARGET_IOU = 0.92
SKIMAGE_WHEEL = "scikit-image==0.25.2"
"""Pinned, so every run crops the same photos; only files the wheel itself ships are used."""
SKIMAGE = "scikit-image 0.25.2 wheel (PyPI)"
FOREGROUND_PACKAGE = "openclipart-png"
FOREGROUND_ROOT = Path("/usr/share/openclipart/png")
FOREGROUND_CATEGORIES = (
    "animals",
    "buildings",
    "computer",
    "containers",
    "electronics",
    "food",
    "office",
    "people",
    "plants",
    "recreation",
    "tools",
    "transportation",
)
"""Categories of objects; buttons, logos, shapes, signs, maps and the unsorted rest are left out."""
FOREGROUND_MODES = {"RGBA": 30, "P": 18, "LA": 12}
"""How many foregrounds of each stored mode (P: a palette with a transparent entry, LA: grey + alpha)."""
OPAQUE_MODES = frozenset({"1", "L", "RGB", "CMYK", "YCbCr", "I", "I;16", "F", "P-opaque"})
"""Stored modes without an alpha channel or a transparent palette entry: counted, never used."""
FOREGROUND_MIN_SIDE = 64
"""Objects (their alpha > 0 box) with a longer side below this are too small to cut out."""
FOREGROUND_MIN_COVER = 0.3
"""Share of the object's box that must be opaque (alpha > 127): below it, outlines and line art."""
FOREGROUND_MAX_PIXELS = 16_000_000
"""Larger clip-art files (the package holds one of 623 megapixels) are left out unread."""
ZOOM = (0.3, 0.6, 0.5)
"""Extra crops: centre at 30 % of the width and 60 % of the height, side half the shorter side."""


@dataclass(frozen=True)
class Photo:
    """A photograph shipped by `package` at `path` (a file, or a member of the scikit-image wheel)."""

    package: str
    path: str


def _debian(package: str, folder: str, *names: str) -> list[Photo]:
    return [Photo(package, f"{folder}/{name}") for name in names]


PHOTOS: tuple[Photo, ...] = (
    *_debian(
        "lomiri-wallpapers-16.04",
        "/usr/share/backgrounds",
        "Bridge_by_Sander_Klootwijk.jpg",
        "Dragonfly_by_Bolly.jpg",
        "Picture_0B_by_freespace.jpg",
        "Picture_1A_by_freespace.jpg",
        "Wine_by_Jakkub_Mede.jpg",
        "aitzgorri_by_Aitzol_Berasategi.jpg",
        "free_by_Peter_Nerlich.jpg",
        "friends_by_Aitzol_Berasategi.jpg",
        "greentock_by_Peter_Nerlich.jpg",
        "life_by_Aitzol_Berasategi.jpg",
        "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "seeding_by_Clements_Engelhardt.jpg",
        "sunset_by_Aitzol_Berasategi.jpg",
    ),
    *_debian(
        "lomiri-wallpapers-20.04",
        "/usr/share/backgrounds",
        "Infinite-Sea_by_Aury88.jpg",
        "Kleiber_by_Lukas_Baubkus.jpg",
    ),
    *_debian(
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature",
        "Aqua.jpg",
        "Blinds.jpg",
        "Dune.jpg",
        "FreshFlower.jpg",
        "Garden.jpg",
        "GreenMeadow.jpg",
        "LadyBird.jpg",
        "RainDrops.jpg",
        "Storm.jpg",
        "TwoWings.jpg",
        "Wood.jpg",
        "YellowFlower.jpg",
    ),
    *(
        Photo("plasma-workspace-wallpapers", f"/usr/share/wallpapers/{name}/contents/images/2560x1600.jpg")
        for name in (
            "BytheWater",
            "ColdRipple",
            "ColorfulCups",
            "DarkestHour",
            "EveningGlow",
            "FallenLeaf",
            "Grey",
            "Kite",
            "OneStandsOut",
            "Path",
            "summer_1am",
        )
    ),
    *(
        Photo(SKIMAGE, f"skimage/data/{name}")
        for name in (
            "astronaut.png",
            "brick.png",
            "camera.png",
            "chelsea.png",
            "coffee.png",
            "coins.png",
            "grass.png",
            "gravel.png",
            "hubble_deep_field.jpg",
            "ihc.png",
            "moon.png",
            "motorcycle_left.png",
            "page.png",
            "retina.jpg",
            "rocket.jpg",
            "text.png",
        )
    ),
)
"""The photographs, one entry per distinct photo (the wallpaper packages' drawings and renders and
scikit-image's synthetic images are not listed)."""
DEBIAN_PACKAGES = tuple(sorted({p.package for p in PHOTOS if p.package != SKIMAGE} | {FOREGROUND_PACKAGE}))


# --- installing the packages ----------------------------------------------------------------


def ensure_debian_packages(packages: tuple[str, ...] = DEBIAN_PACKAGES) -> None:
    """apt-get install the packages not yet installed (needs root, as on the kit's CI machines)."""
    missing = [p for p in packages if not _installed(p)]
    if not missing:
        return
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if os.geteuid() != 0:
        raise SystemExit(f"error: Debian packages {', '.join(missing)} are missing; run as root: {' '.join(command)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing {', '.join(missing)} (apt-get)", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(command, check=True, env=env)


def _installed(package: str) -> bool:
    query = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return query.returncode == 0 and query.stdout.endswith("installed")


def skimage_wheel(folder: Path) -> Path:
    """The pinned scikit-image wheel in `folder`, downloaded (not installed) with pip when missing."""
    found = sorted(folder.glob("scikit_image-*.whl"))
    if not found:
        print(f"downloading {SKIMAGE_WHEEL} (pip download, not installed)", flush=True)
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        subprocess.run([*command, "--dest", str(folder), SKIMAGE_WHEEL], check=True)
        found = sorted(folder.glob("scikit_image-*.whl"))
    return found[0]


# --- backgrounds ----------------------------------------------------------------------------


def crop_box(width: int, height: int, centre_x: float = 0.5, centre_y: float = 0.5, scale: float = 1.0):
    """(left, top, right, bottom) of the square with side `scale` x the shorter side, centred at the
    given fractions of the image and moved inside it where it would cross an edge."""
    side = max(1, round(scale * min(width, height)))
    left = min(max(round(centre_x * width - side / 2), 0), width - side)
    top = min(max(round(centre_y * height - side / 2), 0), height - side)
    return left, top, left + side, top + side


def square_crop(image: Image.Image, box: tuple[int, int, int, int], size: int = SIZE) -> Image.Image:
    """The `box` of `image` resized to size x size; grey photos stay grey ("L"), the rest is "RGB"."""
    mode = "L" if image.mode in ("L", "LA", "I;16", "I") else "RGB"
    return image.convert(mode).resize((size, size), Image.Resampling.LANCZOS, box=box)


def open_photo(photo: Photo, wheel: Path) -> Image.Image:
    """The photo, upright (EXIF honoured), fully loaded."""
    if photo.package == SKIMAGE:
        with zipfile.ZipFile(wheel) as archive:
            image = Image.open(io.BytesIO(archive.read(photo.path)))
            image.load()
        return image
    if not Path(photo.path).is_file():
        raise SystemExit(f"error: {photo.path}: not found; is the Debian package {photo.package} installed?")
    with Image.open(photo.path) as source:
        return ImageOps.exif_transpose(source)


def crop_plan(sizes: list[tuple[int, int]], wanted: int) -> list[tuple[int, tuple[float, float, float]]]:
    """(photo index, (centre x, centre y, scale)) of each crop: every photo's centre square, then a
    `ZOOM` crop of the photos with the largest shorter side until there are `wanted` crops."""
    plan = [(i, (0.5, 0.5, 1.0)) for i in range(len(sizes))]
    extra = wanted - len(plan)
    if extra > len(sizes):
        raise ValueError(f"{len(sizes)} photos give at most {2 * len(sizes)} crops, {wanted} wanted")
    largest = sorted(range(len(sizes)), key=lambda i: (-min(sizes[i]), i))[: max(extra, 0)]
    return (plan + [(i, ZOOM) for i in sorted(largest)])[:wanted]


def write_backgrounds(folder: Path, wheel: Path, wanted: int = N_BG) -> list[dict]:
    """Crop `wanted` backgrounds from `PHOTOS` into `folder`; their sources."""
    images = [open_photo(photo, wheel) for photo in PHOTOS]
    records = []
    for n, (i, (cx, cy, scale)) in enumerate(crop_plan([image.size for image in images], wanted)):
        photo, image = PHOTOS[i], images[i]
        box = crop_box(*image.size, cx, cy, scale)
        name = f"bg_{n:03d}_{Path(photo.path).stem}.png"
        crop = square_crop(image, box)
        crop.save(folder / name)
        records.append(
            {"file": name, "package": photo.package, "source": photo.path, "photo": i, "box": list(box)}
            | {"source_size": list(image.size), "mode": crop.mode}
        )
    return records


# --- foregrounds ----------------------------------------------------------------------------


def stored_mode(path: Path) -> str:
    """The file's mode as stored ("P" only when its palette has a transparent entry, else "P-opaque")."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the header only: nothing is decoded
        with Image.open(path) as image:
            if image.mode == "P" and "transparency" not in image.info:
                return "P-opaque"
            return image.mode


def screen_foreground(path: Path) -> str:
    """Why `path` is not a usable cut-out ("" when it is): unreadable, no transparency, too small,
    or line art (see the FOREGROUND_* limits)."""
    try:
        image = open_image(path, max_pixels=FOREGROUND_MAX_PIXELS)
    except AssetError:
        return "unreadable or over 16 megapixels"
    if image.mode != "RGBA":
        return "no transparency"
    alpha = np.asarray(image.getchannel("A"))
    if alpha.min() == 255:
        return "no transparency"
    rows, columns = np.flatnonzero(alpha.max(axis=1)), np.flatnonzero(alpha.max(axis=0))
    if len(rows) == 0:
        return "fully transparent"
    box = alpha[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    if max(box.shape) < FOREGROUND_MIN_SIDE:
        return f"object under {FOREGROUND_MIN_SIDE} px"
    if np.mean(box > 127) < FOREGROUND_MIN_COVER:
        return "line art (mostly transparent inside its box)"
    return ""


def choose_foregrounds(candidates: list[Path], quotas: dict[str, int], seed: int = 0) -> tuple[list[Path], dict]:
    """Fill `quotas` (stored mode -> count) from `candidates` in a seeded order; the chosen files and
    the count of each reason a file looked at was left out (files of a mode whose quota is full are
    passed over unscreened and not counted)."""
    order = sorted(candidates)
    random.Random(seed).shuffle(order)
    left = dict(quotas)
    chosen, skipped = [], {}
    for path in order:
        if not any(left.values()):
            break
        mode = stored_mode(path)
        if mode in OPAQUE_MODES:
            skipped["no transparency"] = skipped.get("no transparency", 0) + 1
            continue
        if left.get(mode, 0) == 0:
            continue
        problem = screen_foreground(path)
        if problem:
            skipped[problem] = skipped.get(problem, 0) + 1
            continue
        chosen.append(path)
        left[mode] -= 1
    if any(left.values()):
        short = ", ".join(f"{count} {mode}" for mode, count in left.items() if count)
        raise SystemExit(f"error: {FOREGROUND_ROOT}: too few usable foregrounds (missing {short})")
    return chosen, skipped


def write_foregrounds(folder: Path) -> tuple[list[dict], dict]:
    """Copy the chosen cut-outs unchanged into `folder`; their sources and the skipped counts."""
    if not FOREGROUND_ROOT.is_dir():
        raise SystemExit(f"error: {FOREGROUND_ROOT}: not found; is the Debian package {FOREGROUND_PACKAGE} installed?")
    candidates = [p for category in FOREGROUND_CATEGORIES for p in (FOREGROUND_ROOT / category).rglob("*.png")]
    chosen, skipped = choose_foregrounds(candidates, FOREGROUND_MODES)
    records = []
    for n, path in enumerate(chosen):
        name = f"fg_{n:03d}_{path.stem}.png"
        shutil.copyfile(path, folder / name)
        with Image.open(path) as image:
            size = list(image.size)
        records.append(
            {"file": name, "package": FOREGROUND_PACKAGE, "source": str(path), "mode": stored_mode(path), "size": size}
        )
    return records, skipped


def prepare_assets(work: Path) -> Path:
    """work/assets with bg/, fg/ and sources.json, made once (in a temporary folder renamed at the end)."""
    assets = work / "assets"
    if (assets / "sources.json").exists():
        return assets
    ensure_debian_packages()
    wheel = skimage_wheel(work / "packages")
    partial = work / "assets.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "bg").mkdir(parents=True)
    (partial / "fg").mkdir()
    backgrounds = write_backgrounds(partial / "bg", wheel)
    foregrounds, skipped = write_foregrounds(partial / "fg")
    sources = {
        "photographs": len({r["photo"] for r in backgrounds}),
        "backgrounds": backgrounds,
        "foregrounds": foregrounds,
        "foregrounds_skipped": skipped,
        "skimage_wheel": {"file": wheel.name, "sha256": sha256_file(wheel)},
    }
    write_json_atomic(partial / "sources.json", sources)
    shutil.rmtree(assets, ignore_errors=True)
    os.replace(partial, assets)
    return assets


def describe_assets(sources: dict) -> str:
    """Counts of the assets by package and by mode, and the screened-out foregrounds."""
    lines = [f"backgrounds: {len(sources['backgrounds'])} crops of {sources['photographs']} distinct photographs"]
    for kind in ("backgrounds", "foregrounds"):
        by_package: dict[str, int] = {}
        for record in sources[kind]:
            by_package[record["package"]] = by_package.get(record["package"], 0) + 1
        lines.append(f"  {kind} by package: " + ", ".join(f"{k} {v}" for k, v in sorted(by_package.items())))
    modes: dict[str, int] = {}
    for record in sources["foregrounds"]:
        modes[record["mode"]] = modes.get(record["mode"], 0) + 1
    sides = sorted(max(r["size"]) for r in sources["foregrounds"])
    lines.append(
        f"foregrounds: {len(sources['foregrounds'])}, modes "
        + ", ".join(f"{k} {v}" for k, v in sorted(modes.items()))
        + f"; longer side {sides[0]}..{sides[-1]} px (median {sides[len(sides) // 2]})"
    )
    skipped = sources["foregrounds_skipped"]
    lines.append("  screened out: " + (", ".join(f"{v} {k}" for k, v in sorted(skipped.items())) or "none"))
    return "\n".join(lines)


# --- build, train, evaluate -----------------------------------------------------------------


def kit(*arguments: str, capture: bool = False) -> str:
    """Run ``python -m fgbg_utils ARGUMENTS`` from the repository (its fgbg_utils); stdout if captured."""
    command = [sys.executable, "-m", "fgbg_utils", *arguments]
    print("running:", " ".join(command), flush=True)
    done = subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.PIPE if capture else None, text=True)
    if capture:
        print(done.stdout, end="", flush=True)
    return done.stdout or ""


def build(assets: Path, data: Path) -> None:
    sizes = ["--n-bg", str(N_BG), "--n-fg", str(N_FG), "--placements", str(PLACEMENTS), "--size", str(SIZE)]
    kit("make-dataset", "--bg-dir", str(assets / "bg"), "--fg-dir", str(assets / "fg"), "--depth", "prior", "--out",
        str(data), *sizes)  # fmt: skip


def train(data: Path, run: Path, minutes: float, options: list[str] = ()) -> dict:
    """Train the default recipe (`options` added) for `minutes`, once: a finished run is read back, a
    killed one resumes with a fresh budget of `minutes`; the trainer's summary with the load average
    before and after."""
    done = run / "train_summary.json"
    if done.exists():
        return json.loads(done.read_text())
    resume = ["--resume"] if (run / "checkpoints" / "last.pt").exists() else []
    before = os.getloadavg()
    command = ["train", "--data", str(data), "--out", str(run), "--minutes", str(minutes), *options, *resume]
    lines = kit(*command, capture=True)
    summary = json.loads(lines.strip().splitlines()[-1])
    summary["load_average_before"], summary["load_average_after"] = before, os.getloadavg()
    write_json_atomic(done, summary)
    return summary


def run_name(minutes: float, options: list[str]) -> str:
    """The run folder's name: the budget, and the extra options when there are any."""
    extra = "".join(ch if ch.isalnum() or ch in ".,=-" else "_" for ch in "_".join(o.lstrip("-") for o in options))
    return f"run_{minutes:g}min" + (f"_{extra}" if extra else "")


def evaluate(data: Path, run: Path) -> dict:
    scores = run / "unseen_test.json"
    checkpoint = run / "checkpoints" / "last.pt"
    kit("evaluate", "--data", str(data), "--checkpoint", str(checkpoint), "--split", "unseen_test", "--json",
        str(scores))  # fmt: skip
    return json.loads(scores.read_text())


COLUMNS = (
    ("mask IoU (per image)", "mask_iou"),
    ("mask IoU (dataset)", "mask_iou_dataset"),
    ("Dice", "mask_dice"),
    ("depth RMSE", "depth_rmse"),
    ("depth RMSE in object", "depth_object_rmse"),
    ("δ1", "depth_delta1"),
)


def results_table(result: dict) -> str:
    """The model's and the baselines' scores as a markdown table (a dash: not measured)."""
    threshold = result["baselines"]["difference_mask"].get("threshold")
    rows = {
        "model": result["metrics"],
        f"difference mask (t = {threshold})": result["baselines"]["difference_mask"],
        "background depth": result["baselines"]["background_depth"],
    }
    lines = ["| | " + " | ".join(title for title, _ in COLUMNS) + " |", "| --- " * (len(COLUMNS) + 1) + "|"]
    for name, values in rows.items():
        cells = [f"{values[key]:.4f}" if key in values else "–" for _, key in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(result: dict) -> str:
    iou, baseline = result["metrics"]["mask_iou"], result["baselines"]["difference_mask"]["mask_iou"]
    met = iou >= TARGET_IOU and iou > baseline
    return (
        f"target unseen per-image mask IoU >= {TARGET_IOU} and above the difference baseline: "
        f"{'MET' if met else 'NOT MET'} ({iou:.4f} against {baseline:.4f})"
    )


def write_grid(predictions: SplitPredictions, path: Path, rows: int = 6, colours: int = 256) -> int:
    """A prediction grid of `rows` evenly spaced samples of `predictions` as a palette PNG (small
    enough to commit); its size in bytes."""
    title = f"real photos, unseen backgrounds and foregrounds: {rows} of {len(predictions)} samples"
    figure = prediction_grid(predictions, evenly_spaced_positions(len(predictions), rows), title=title)
    png = figure_png(figure, dpi=72)
    plt.close(figure)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").quantize(colours).save(buffer, format="PNG", optimize=True)
    write_bytes_atomic(path, buffer.getvalue())
    return len(buffer.getvalue())


def shared_photo_scores(predictions: SplitPredictions, manifest: dict, sources: dict) -> dict:
    """Per-image mask IoU over the test samples whose background is a crop of a photo that also
    gives a training background (a zoomed crop, see `crop_plan`) and over the rest, with their counts."""
    photo = {record["file"]: record["photo"] for record in sources["backgrounds"]}
    photo_of_bg = [photo[Path(bg["source"]).name] for bg in manifest["backgrounds"]]
    bg_ids = np.asarray(predictions.ids["bg_id"])
    tested = set(bg_ids.tolist())
    trained = {photo_of_bg[i] for i in range(len(photo_of_bg)) if i not in tested}
    shared = np.isin(bg_ids, [i for i in tested if photo_of_bg[i] in trained])
    iou = predictions.mask_scores()["iou"]
    return {
        "shared_backgrounds": sorted(int(i) for i in set(bg_ids[shared].tolist())),
        "shared_samples": int(shared.sum()),
        "shared_iou": float(iou[shared].mean()) if shared.any() else float("nan"),
        "unshared_samples": int((~shared).sum()),
        "unshared_iou": float(iou[~shared].mean()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget (1 for a quick check)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default runs/real_photos)")
    parser.add_argument(
        "--grid", type=Path, default=REPO / "docs" / "real_photos" / "grid.png", help="prediction grid PNG to write"
    )
    parser.add_argument(
        "--train-options",
        default="",
        help="extra options for train, one string (default none: the kit's default recipe); "
        "the run folder is named after them",
    )
    args = parser.parse_args()
    if not args.minutes > 0:
        parser.error(f"--minutes must be above 0, got {args.minutes}")
    work = args.work or runs_dir() / "real_photos"
    work.mkdir(parents=True, exist_ok=True)

    assets = prepare_assets(work)
    print(describe_assets(json.loads((assets / "sources.json").read_text())), flush=True)
    data = work / "data"
    build(assets, data)
    options = shlex.split(args.train_options)
    run = work / run_name(args.minutes, options)
    summary = train(data, run, args.minutes, options)
    result = evaluate(data, run)
    predictions = predict_split(run / "checkpoints" / "last.pt", DatasetInfo.open(data), "unseen_test")
    grid_bytes = write_grid(predictions, args.grid)
    sources = json.loads((assets / "sources.json").read_text())
    shared = shared_photo_scores(predictions, read_manifest(data), sources)
    write_json_atomic(run / "shared_photos.json", shared)

    load = ", ".join(f"{v:.1f}" for v in summary["load_average_before"])
    report = "\n".join(
        [
            f"unseen_test: {result['samples']:,} samples at {result['size']} px, model {result['model']}, "
            f"{summary['steps']:,} steps in {summary['minutes']:.1f} min (stopped by {summary['stopped']}; "
            f"train options: {args.train_options or 'the defaults'}; "
            f"load average before training {load} on {os.cpu_count()} cores)",
            "",
            results_table(result),
            "",
            verdict(result),
            f"{len(shared['shared_backgrounds'])} test backgrounds are crops of photos with a training crop too: "
            f"per-image IoU {shared['shared_iou']:.4f} on their {shared['shared_samples']} samples, "
            f"{shared['unshared_iou']:.4f} on the other {shared['unshared_samples']}",
            f"grid: {args.grid} ({grid_bytes / 1024:.0f} KiB)",
        ]
    )
    write_bytes_atomic(run / "results.md", (report + "\n").encode())
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
