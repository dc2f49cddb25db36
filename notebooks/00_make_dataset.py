# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fgbg-kit/fgbg-kit/blob/main/notebooks/00_make_dataset.ipynb)
#
# Your fork: in this badge's link put your GitHub user and repository in place of
# `fgbg-kit/fgbg-kit`, and set `KIT_REPO` in the setup cell below to your fork's URL.
#
# # 00 · Make the dataset
#
# The assignment's dataset: **100 backgrounds × 100 foregrounds × 2 (as is and mirrored) × 20
# random placements = 400,000 `fg_bg` images**, each with its foreground **mask** and a **depth
# map**. Students spent 10 to 37 hours of Colab time building it by hand. Here it is one call,
# offline, exact and reproducible.
#
# This notebook shows how each part is made (transparency, masks, the 20 placements, depth),
# builds the dataset of the chosen profile, and looks at it.

# %%
# Runtime setup. On Colab: fetch the kit (or use your copy of it on Drive) and install what it
# needs; Colab's own torch and torchvision are kept (never reinstalled).
# Your fork: set KIT_REPO to its URL (or the environment variable FGBG_KIT_REPO).
import os
import subprocess
import sys

KIT_REPO = os.environ.get("FGBG_KIT_REPO", "https://github.com/fgbg-kit/fgbg-kit")

if "google.colab" in sys.modules:
    kit = os.environ.get("FGBG_KIT_DIR", "/content/fgbg-kit")
    on_drive = os.environ.get("FGBG_KIT_DRIVE", "/content/drive/MyDrive/fgbg-kit")  # used when Drive is mounted
    git = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # fail instead of asking for a password
    if os.path.exists(os.path.join(on_drive, "pyproject.toml")):
        kit = on_drive  # your copy on Drive, used as it is
    elif not os.path.exists(kit):
        if subprocess.run(["git", "clone", "-q", KIT_REPO, kit], env=git).returncode:
            raise SystemExit(
                f"Could not clone {KIT_REPO}: set KIT_REPO to your fork's URL, or put a copy of the kit at {on_drive}"
            )
    elif subprocess.run(["git", "-C", kit, "pull", "-q", "--ff-only"], env=git).returncode:
        print(f"warning: could not update {kit} from its remote (offline, or changed here); the kit is left as it is")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", kit], check=True)
    sys.path.insert(0, kit)
    os.chdir(os.path.join(kit, "notebooks"))

from fgbg_utils.runtime import describe_runtime

print(describe_runtime())

# %% tags=["parameters"]
# smoke: seconds (CI) · demo: 40,000 samples, about a minute on a laptop · full: the course's 400,000
PROFILE = os.environ.get("FGBG_PROFILE", "demo")
DATA_DIR = None  # default: runs/<PROFILE>/data

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from fgbg_utils.build import ensure_dataset, profile_config
from fgbg_utils.compose import MASK_THRESHOLD, Box, compose, prepare_foreground
from fgbg_utils.demo_assets import make_demo_background, make_demo_foreground
from fgbg_utils.depth import FAR_M, NEAR_M, decode_depth, encode_depth, paste_depth
from fgbg_utils.report import on_checkerboard
from fgbg_utils.runtime import PROFILES, get_profile, runs_dir
from fgbg_utils.viz import show_images

profile = get_profile(PROFILE)
data_dir = Path(DATA_DIR) if DATA_DIR else runs_dir() / profile.name / "data"
print(f"profile {profile.name}: {profile.samples:,} samples at {profile.size} px -> {data_dir}")

# %% [markdown]
# ## The recipe
#
# Every background is combined with every foreground, as is and mirrored, at 20 random places.

# %%
# NBVAL_CHECK_OUTPUT
full = PROFILES["full"]
print(f"{full.n_bg} backgrounds x {full.n_fg} foregrounds x 2 flips x {full.placements} placements")
print(f"= {full.samples:,} fg_bg images, {full.samples:,} masks, {full.samples:,} depth maps")
print(f"= {3 * full.samples:,} images, plus {full.n_bg} bg and {full.n_fg} fg source images")

# %% [markdown]
# ## Backgrounds: scenes with a known camera
#
# The kit draws its own demo assets, so nothing has to be downloaded. Each background is a scene
# seen by a camera at a known height above a flat ground: a sky, a horizon, a textured ground
# receding in perspective and a few upright structures. Because the scene is drawn from a model,
# its **depth is known exactly**: below the horizon, ground row $y$ lies at depth
# $d = f\,h_\text{cam} / (y - y_\text{horizon})$; the sky is at the far plane; a structure takes the
# depth of the ground row it stands on.

# %%
backgrounds = [make_demo_background(i, size=224, seed=0) for i in range(4)]
show_images(
    [b.rgb for b in backgrounds] + [encode_depth(b.depth_m) for b in backgrounds],
    titles=[f"bg {i}" for i in range(4)] + [f"depth {i} (bright = near)" for i in range(4)],
    columns=4,
)
# %% [markdown]
# ## Foregrounds: objects with transparency
#
# A foreground is an RGBA image: colour plus an **alpha** channel saying how opaque each pixel is.
# Inside the object alpha is 255, outside 0, and along the edge it takes values in between
# (antialiasing), so a pasted object blends into its background instead of showing jagged
# stair-steps. Your own foregrounds need real transparency (PNG or WebP with alpha); the builder
# refuses opaque ones, or keys out a uniform border colour with `--key-border`.

# %%
foregrounds = [make_demo_foreground(i, seed=0, size=224) for i in range(6)]
show_images(
    [on_checkerboard(f.rgba) for f in foregrounds],
    titles=[f"{f.kind} ({f.relative_height:.2f} x camera)" for f in foregrounds],
    cmap=None,
)
# %%
fg = foregrounds[0].rgba
alpha = fg[..., 3]
edge = (alpha > 0) & (alpha < 255)
print(
    f"{fg.shape[1]}x{fg.shape[0]} px RGBA; alpha: {np.mean(alpha == 255):.0%} opaque, "
    f"{np.mean(alpha == 0):.0%} transparent, {edge.sum()} edge pixels in between"
)

# %% [markdown]
# ## Masks
#
# The mask of a sample is the **footprint of the pasted alpha**: a pixel is foreground when the
# resized alpha is at least `MASK_THRESHOLD` (0.5). It is stored losslessly as a 1-channel PNG
# (0 or 255). Several course submissions saved masks as JPEG, whose compression smears the edge
# into grey values that are neither foreground nor background.

# %%
bg = backgrounds[0]
box = Box(x=60, y=90, w=70, h=120)
fg_bg, mask = compose(bg.rgb, prepare_foreground(fg), box)
print(f"MASK_THRESHOLD = {MASK_THRESHOLD}; mask values: {sorted(np.unique(mask).tolist())}")
show_images([bg.rgb, on_checkerboard(fg), fg_bg, mask], titles=["bg", "fg", "fg_bg", "mask"])
# %% [markdown]
# ## The 20 placements and the perspective rule
#
# Each foreground (and its mirror image) goes to 20 random places per background, always fully
# inside the frame. Its size follows the camera: an object standing lower in the frame is nearer,
# so it is drawn larger. With `relative_height` = object height / camera height, its pixel height
# is `relative_height * (foot_row + 0.5 - horizon_row)`.

# %%
camera = bg.camera
rows = np.arange(int(camera.horizon * 224) + 1, 224)
plt.figure(figsize=(5, 3))
for f in foregrounds[:3]:
    plt.plot(rows, [camera.pixel_height(r, 224, f.relative_height) for r in rows], label=f.kind)
plt.xlabel("foot row (pixels from the top)")
plt.ylabel("pasted height (pixels)")
plt.title("perspective rule: lower = nearer = larger")
plt.legend()
# %% [markdown]
# ## Depth
#
# Depth maps are stored as 8-bit PNG in **inverse depth**, linear in $1/d$: 255 is the near plane
# and 0 the far plane (sky). Inverse depth spends the 256 levels where a scene has detail (close
# by) and is what MiDaS predicts, so the two depth sources read the same way (bright = near). A
# pasted object takes the depth of the ground row it stands on.

# %%
metres = np.geomspace(NEAR_M, FAR_M, 200)
plt.figure(figsize=(5, 3))
plt.semilogx(metres, encode_depth(metres))
plt.xlabel("depth (m)")
plt.ylabel("stored value")
plt.title(f"encoding: {NEAR_M:g} m -> 255, {FAR_M:g} m -> 0")
print("round trip error at 5 m:", abs(decode_depth(encode_depth(5.0)) - 5.0).round(3), "m")

# %%
bg_depth = encode_depth(bg.depth_m)
depth = paste_depth(bg_depth, mask, box.as_tuple(), camera)
show_images([fg_bg, bg_depth, depth], titles=["fg_bg", "bg depth", "fg_bg depth"])
# %% [markdown]
# ## Build
#
# One call builds the whole dataset with one worker process per core: one zip shard per
# background (no Drive folder with 400,000 files), `index.csv` with one row per sample, the
# normalised source assets, and `data_manifest.json` with counts, formats, statistics and
# checksums. It resumes where a killed build stopped, and the same seed always gives the same
# bytes. From a terminal: `python -m fgbg_utils make-dataset --out DIR` (see `--help`).

# %%
data = ensure_dataset(data_dir, profile_config(profile))
manifest = data.manifest
counts = manifest["counts"]
print(f"{counts['samples']:,} samples in {counts['shards']} shards, {manifest['bytes']['total'] / 2**20:,.1f} MiB")

# %%
# NBVAL_CHECK_OUTPUT
print(
    "samples = bg x fg x flips x placements:",
    counts["samples"] == counts["backgrounds"] * counts["foregrounds"] * counts["flips"] * counts["placements"],
)
for kind, info in manifest["kinds"].items():
    print(f"{kind:6s} {info['type']:4s} {info['mode']:4s} channels={info['channels']}")

# %% [markdown]
# ## Look at it
#
# `python -m fgbg_utils report DIR` writes the dataset section of your README: the kinds table,
# counts, size, mean/std and these sample grids.

# %%
from fgbg_utils.report import write_report

readme = write_report(data)
image = plt.imread(readme.parent / "samples.png")
plt.figure(figsize=(9, 12))
plt.imshow(image)
plt.axis("off")
plt.title("bg · fg · fg mask · fg_bg · fg_bg mask · depth")
# %% [markdown]
# ## Check it
#
# `verify` recomputes every checksum and count against the manifest, and names any file that is
# missing or changed. Run it after copying the dataset anywhere (Drive, another machine).

# %%
# NBVAL_CHECK_OUTPUT
from fgbg_utils.checks import verify_dataset

problems = verify_dataset(data_dir, progress=False)
print("problems:", problems or "none")

# %% [markdown]
# ## Your own assets, and the full build
#
# - Your photos: `python -m fgbg_utils make-dataset --out DIR --bg-dir my_bgs --fg-dir my_fgs`.
#   Backgrounds are resized and centre-cropped; foregrounds need transparency (or
#   `--key-border` for objects on a plain white background). Bad files are named with their
#   problem before anything is written (`--skip-bad` leaves them out and lists them in the
#   manifest). Depth for photos comes from a ground-plane prior offline, flagged as such, or from
#   MiDaS on a Colab GPU with `--depth midas`.
# - The full 400,000-sample build takes about five minutes on two CPU cores. Split it across
#   machines with `--shard 0/4` … `--shard 3/4` and join the slices with `merge`.
# - The repository's `data_manifest.json` is the manifest of that full build: counts, statistics
#   and checksums of every shard.

# %%
# NBVAL_CHECK_OUTPUT
import json

from fgbg_utils.runtime import repo_root

if repo_root() and (repo_root() / "data_manifest.json").exists():
    canonical = json.loads((repo_root() / "data_manifest.json").read_text())
    c = canonical["counts"]
    print(
        f"canonical build: {c['samples']:,} samples in {c['shards']} shards at {canonical['kinds']['fg_bg']['dims']} px"
    )
    print("fg_bg mean", [round(v, 4) for v in canonical["statistics"]["fg_bg"]["mean"]])
