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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fgbg-kit/fgbg-kit/blob/main/notebooks/02_dataset_stats.ipynb)
#
# Your fork: in this badge's link put your GitHub user and repository in place of
# `fgbg-kit/fgbg-kit`, and set `KIT_REPO` in the setup cell below to your fork's URL.
#
# # 02 · Dataset statistics
#
# Counts, size on disk, and the **mean and standard deviation** of every kind of image, which
# the data loaders use to normalise inputs. The course asks for them; most submissions computed
# them wrong (a mean of per-image means, on a sample, or on JPEG-compressed masks). Here they are
# exact over every pixel, and you can see why that matters.

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
from fgbg_utils.runtime import get_profile, runs_dir
from fgbg_utils.stats import ChannelHistogram
from fgbg_utils.store import read_index, read_sample

profile = get_profile(PROFILE)
data_dir = Path(DATA_DIR) if DATA_DIR else runs_dir() / profile.name / "data"
print(f"profile {profile.name}: {profile.samples:,} samples at {profile.size} px -> {data_dir}")
data = ensure_dataset(data_dir, profile_config(profile))  # builds it if notebook 00 was not run
manifest = data.manifest

# %% [markdown]
# ## Counts and size

# %%
counts, sizes = manifest["counts"], manifest["bytes"]
print(
    f"backgrounds {counts['backgrounds']}, foregrounds {counts['foregrounds']} (x2 flips), "
    f"placements {counts['placements']}"
)
for kind in ("fg_bg", "mask", "depth"):
    per_image = sizes[kind] / counts["samples"] / 1024
    print(f"{kind:6s} {counts['samples']:>9,} images {sizes[kind] / 2**20:>9,.1f} MiB ({per_image:.1f} KiB each)")
print(f"total {sizes['total'] / 2**20:,.1f} MiB in {counts['shards']} shards + source assets")

# %% [markdown]
# ## Mean and standard deviation, exactly
#
# The builder counts how often each 8-bit value occurs, per channel and kind, over **every
# pixel** of every image: a 256-bin histogram. Mean and variance follow from the histogram in
# integer arithmetic, so nothing is lost, and partial counts from worker processes or build
# slices add up exactly. Values are on the 0..1 scale (pixel / 255), as `transforms.Normalize`
# expects after `ToTensor`.

# %%
statistics = manifest["statistics"]
print(f"{'kind':14s} {'mean':28s} std")
for kind, values in statistics.items():
    mean = ", ".join(f"{v:.4f}" for v in values["mean"])
    std = ", ".join(f"{v:.4f}" for v in values["std"])
    print(f"{kind:14s} [{mean}]{' ' * (26 - len(mean))} [{std}]")

# %% [markdown]
# `fg_bg` is counted as composed, before JPEG compression. `python -m fgbg_utils stats DIR`
# recomputes everything from the files and adds `fg_bg_decoded`: the statistics of the JPEGs as
# a data loader decodes them. They differ by the JPEG error, in the third or fourth decimal.

# %%
# NBVAL_CHECK_OUTPUT
from fgbg_utils.checks import recompute_statistics

recomputed = recompute_statistics(data, progress=False)
for kind in ("bg", "fg_bg", "mask", "depth"):
    print(
        f"{kind:6s} recomputed from the files == manifest:",
        recomputed[kind]["histogram"] == statistics[kind]["histogram"],
    )
gap = np.abs(np.subtract(recomputed["fg_bg_decoded"]["mean"], statistics["fg_bg"]["mean"])).max()
print("decoded JPEG vs composed fg_bg mean differ by less than 0.001:", gap < 1e-3)

# %% [markdown]
# ## Why not average per-image statistics?
#
# The quick way many notebooks used: compute each image's mean and std, then average them over a
# few hundred images. For equal-sized images the averaged mean happens to be right, but the
# averaged **std is too small**: it only sees the spread inside each image and misses how images
# differ from each other. Here is the difference on 300 depth maps, against an exact reference
# computed with NumPy in float64 over every pixel.

# %%
rows = read_index(data_dir / "index.csv")
picked = [rows[i] for i in np.random.default_rng(0).choice(len(rows), size=min(300, len(rows)), replace=False)]
depths = [read_sample(data_dir, row)["depth"] for row in picked]
every_pixel = np.stack(depths).astype(np.float64) / 255
histogram = ChannelHistogram(1)
for d in depths:
    histogram.add(d)
print(f"depth over {len(depths)} samples      mean      std")
print(f"  NumPy float64, every pixel  {every_pixel.mean():.6f}  {every_pixel.std():.6f}")
print(f"  histogram (the kit's way)   {histogram.mean_std()[0][0]:.6f}  {histogram.mean_std()[1][0]:.6f}")
print(
    f"  average of per-image values {np.mean([d.mean() for d in every_pixel]):.6f}  "
    f"{np.mean([d.std() for d in every_pixel]):.6f}  <- std too small"
)

# %% [markdown]
# ## Pixel histograms
#
# The histograms behind the numbers. Masks are two spikes (0 and 255); depth has a spike at 0
# (the sky, at the far plane) and a smooth ground ramp; backgrounds and composites share their
# shape because a foreground covers a small part of each image.

# %%
figure, axes = plt.subplots(1, 4, figsize=(16, 3))
levels = np.arange(256)
colours = ("tab:red", "tab:green", "tab:blue")
for axis, kind in zip(axes, ("bg", "fg_bg", "mask", "depth"), strict=True):
    hist = np.asarray(statistics[kind]["histogram"], dtype=np.float64)
    for c, row in enumerate(hist):
        axis.plot(levels, row / row.sum(), color=colours[c] if len(hist) == 3 else "black", lw=1)
    axis.set_title(kind)
    axis.set_yscale("log")
    axis.set_xlabel("value")
axes[0].set_ylabel("fraction of pixels")
figure.tight_layout()

# %% [markdown]
# ## Using them
#
# Normalise inputs with the dataset's own statistics, not ImageNet's: these scenes are not
# photographs of ImageNet classes. The data-loading notebook (03) reads them from the manifest.
#
# Both RGB inputs get **one** mean and std, the backgrounds'. The object is wherever `fg_bg`
# differs from `bg`; normalised with their own statistics (fg_bg's differ by about 1 %, as the
# table shows), every unchanged pixel would differ too, by up to three grey levels' worth.

# %%
mean, std = statistics["bg"]["mean"], statistics["bg"]["std"]
print(f"transforms.Normalize(mean={[round(v, 4) for v in mean]}, std={[round(v, 4) for v in std]})")
