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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fgbg-kit/fgbg-kit/blob/main/notebooks/01_mount_and_extract.ipynb)
#
# Your fork: in this badge's link put your GitHub user and repository in place of
# `fgbg-kit/fgbg-kit`, and set `KIT_REPO` in the setup cell below to your fork's URL.
#
# # 01 · Mount Drive and get the dataset onto local disk
#
# A training run reads every image many times, so where the dataset lives matters. This
# notebook shows where it lives (Google Drive on Colab), why to copy it to the runtime's local
# disk first, how to copy it with checksums, how to read samples straight from the zip shards
# (the default: nothing to extract), how to extract a zip safely when you must, and how to
# convert a dataset you already built by hand in the course's folder layout.

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
SOURCE_DIR = (
    None  # where the built dataset lives, e.g. "/content/drive/MyDrive/fgbg/data"; default: runs/<PROFILE>/data
)
LOCAL_DIR = None  # where training reads it from; default: runs/<PROFILE>/local

# %% [markdown]
# ## Where the dataset lives
#
# On Colab the runtime's disk is wiped whenever the runtime is recycled (after idling, after
# 12 hours, on a disconnect), so the dataset is kept on **Google Drive** and mounted with
# `mount_drive()` (Colab asks for permission once). Off Colab, `mount_drive()` does nothing and
# the dataset stays where it was built. Without a `SOURCE_DIR`, this notebook uses the dataset
# of the chosen profile and builds it first if it is not there yet.

# %%
import time
import zipfile
from pathlib import Path

from fgbg_utils.build import ensure_dataset, profile_config
from fgbg_utils.checks import verify_dataset
from fgbg_utils.course_layout import export_course_layout, import_course_layout, mask_box
from fgbg_utils.extract import copy_dataset, safe_extract
from fgbg_utils.runtime import get_profile, mount_drive, runs_dir
from fgbg_utils.manifest import read_manifest
from fgbg_utils.store import read_index, read_sample
from fgbg_utils.viz import show_images

drive = mount_drive()
print(f"Google Drive: {drive}" if drive else "not on Colab: no Drive to mount, the dataset stays on this machine")

profile = get_profile(PROFILE)
source_dir = Path(SOURCE_DIR) if SOURCE_DIR else runs_dir() / profile.name / "data"
local_dir = Path(LOCAL_DIR) if LOCAL_DIR else runs_dir() / profile.name / "local"
if not SOURCE_DIR:
    ensure_dataset(source_dir, profile_config(profile))
manifest = read_manifest(source_dir)
print(f"profile {profile.name}: {manifest['counts']['samples']:,} samples in {source_dir}")
print(f"local copy: {local_dir}")

# %% [markdown]
# ## Why copy to local disk
#
# Drive is mounted over FUSE: every file open is a round trip to Google's servers. Reading
# 400,000 small files from Drive takes hours, and folders of many thousands of files on Drive
# time out or list incompletely (the course's "my folder shows only some of my images"). The
# kit's dataset is one zip shard per background (100) instead of 1.2 million files, and copying
# those to the runtime's local disk once, at the start of a session, makes every epoch read from
# a fast local SSD.
#
# `copy_dataset` copies shard by shard with a progress bar in bytes. Each file is written
# under a temporary name and renamed when whole, and each shard's sha256 is checked against the
# manifest while it is copied: a corrupt shard is named, the good ones are kept. The manifest is
# copied last, so a folder with a manifest holds a whole copy. If Colab disconnects midway,
# run it again: shards already copied with the right checksum are skipped.

# %%
started = time.perf_counter()
copy_dataset(source_dir, local_dir)
print(f"copied {manifest['bytes']['total'] / 2**20:,.1f} MiB in {time.perf_counter() - started:.1f} s")

# %%
# NBVAL_CHECK_OUTPUT
print("checksums match:", verify_dataset(local_dir, progress=False) == [])
before = {p.name: p.stat().st_mtime_ns for p in local_dir.glob("shard_*.zip")}
copy_dataset(source_dir, local_dir, progress=False)
after = {p.name: p.stat().st_mtime_ns for p in local_dir.glob("shard_*.zip")}
print("shards copied again on a rerun:", sum(before[name] != after[name] for name in before))

# %% [markdown]
# ## Read straight from the zips (the default)
#
# There is nothing to extract: a shard is an ordinary zip whose members are stored
# uncompressed, so reading one image is a seek and a read. `index.csv` says which shard and
# member hold each sample, and `read_sample` decodes one sample's fg_bg, mask and depth.

# %%
# NBVAL_CHECK_OUTPUT
rows = read_index(local_dir / "index.csv")
shard = local_dir / rows[0]["shard"]
with zipfile.ZipFile(shard) as archive:
    names = archive.namelist()
    stored = all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
print(shard.name, "members:", names[:3], "...", names[-1])
print("stored uncompressed:", stored)
print("member names of sample 0:", rows[0]["fg_bg"], rows[0]["mask"], rows[0]["depth"])

# %%
sample = read_sample(local_dir, rows[0])
figure = show_images(
    [sample["fg_bg"], sample["mask"], sample["depth"]],
    titles=[f"fg_bg (sample {rows[0]['sample']})", "mask", "depth (bright = near)"],
)

# %% [markdown]
# ## Extracting a zip safely
#
# Sometimes you do need files on disk: a classmate's zip of images, a downloaded archive.
# `zipfile.extractall` trusts the archive, and an archive can be crafted to write outside the
# folder you chose (*zip-slip*: member names like `../../.bashrc` or `/etc/...`, or a symlink
# member followed by a file written "through" it), or to fill the disk (*zip bomb*: gigabytes of
# zeros compressed a thousand-fold). `safe_extract` refuses all of these before writing
# anything, enforces the size limits again while decompressing (the sizes an archive declares
# can lie), and moves the files into place only when every member came out whole.

# %%
# NBVAL_CHECK_OUTPUT
extracted = safe_extract(shard, local_dir / "extracted" / shard.stem)
with zipfile.ZipFile(shard) as archive:
    same = all(path.read_bytes() == archive.read(name) for path, name in zip(extracted, names, strict=True))
print("extracted every member:", len(extracted) == len(names), "· byte-identical:", same)

# %%
# NBVAL_CHECK_OUTPUT
crafted = local_dir / "crafted"
crafted.mkdir(exist_ok=True)
with zipfile.ZipFile(crafted / "slip.zip", "w") as archive:
    archive.writestr("notes.txt", "harmless")
    archive.writestr("../../escape.txt", "written outside the folder")
with zipfile.ZipFile(crafted / "link.zip", "w") as archive:
    link = zipfile.ZipInfo("shortcut")
    link.external_attr = 0o120777 << 16  # a symbolic link
    archive.writestr(link, "/etc/passwd")
with zipfile.ZipFile(crafted / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
    archive.writestr("zeros.bin", bytes(50 * 2**20))  # 50 MB of zeros, about 50 kB compressed

for bad in ("slip.zip", "link.zip", "bomb.zip"):
    try:
        safe_extract(crafted / bad, crafted / "out")
    except ValueError as error:
        print(f"{bad}: refused:", str(error).splitlines()[1].strip())
print("anything written:", (crafted / "out").exists() or (local_dir / "escape.txt").exists())

# %% [markdown]
# ## Already built your dataset by hand?
#
# The course's layout is four plain folders: `bg/`, `fg_bg/`, `mask/` and `depth/`, with the
# background of the i-th fg_bg (in sorted order) being background i // 4000, or listed in a CSV
# with columns `fg_bg,bg`. `import_course_layout` converts such a folder into the kit's format
# (shards, `index.csv`, `data_manifest.json`), so everything else in the kit works on it:
#
# - fg_bg JPEGs of the right size are kept byte for byte; others are re-encoded.
# - Masks are thresholded at 128 and stored as lossless 0/255 PNG. Many course masks were saved
#   as JPEG, whose compression greys the edges: the threshold undoes most of that, not all.
# - Depth becomes a 1-channel 8-bit PNG. Plain backgrounds have no depth map, so theirs is the
#   ground-plane prior, flagged as such in the manifest.
# - The foreground and flip of each sample are unknown (-1 in `index.csv`); the box is the
#   mask's bounding box.
# - Every file is decoded and checked first: missing masks, unreadable files and size
#   mismatches are all named in one error before anything is written.
#
# Here a small plain-layout folder is exported from the dataset above (masks as JPEG, as the
# course did) and imported back. For your own folder on Drive:
# `import_course_layout(Path("/content/drive/MyDrive/my_dataset"), local_dir / "imported")`.

# %%
plain, imported = local_dir / "course_layout", local_dir / "imported"
per_background = export_course_layout(local_dir, plain, backgrounds=2)
for folder in ("bg", "fg_bg", "mask", "depth"):
    files = sorted((plain / folder).iterdir())
    print(f"{folder}/: {len(files):,} files, e.g. {files[0].name}")
manifest_path = import_course_layout(plain, imported, per_background=per_background)
print("wrote", manifest_path)

# %%
# NBVAL_CHECK_OUTPUT
rows_imported = read_index(imported / "index.csv")
print("imported dataset verifies:", verify_dataset(imported, progress=False) == [])
originals = [read_sample(local_dir, row) for row in rows[: len(rows_imported)]]
converted = [read_sample(imported, row) for row in rows_imported]
print(
    "masks equal the originals:", all((a["mask"] == b["mask"]).all() for a, b in zip(originals, converted, strict=True))
)
print(
    "depth equals the originals:",
    all((a["depth"] == b["depth"]).all() for a, b in zip(originals, converted, strict=True)),
)
print(
    "boxes are the masks' bounding boxes:",
    all((r["x"], r["y"], r["w"], r["h"]) == mask_box(c["mask"]) for r, c in zip(rows_imported, converted, strict=True)),
)
print("fg, flip of an imported sample:", rows_imported[0]["fg"], rows_imported[0]["flip"])
print("background depth is the prior:", read_manifest(imported)["backgrounds"][0]["depth_is_prior"])

# %% [markdown]
# ## Next
#
# Train from `LOCAL_DIR`: the loaders read the shards directly. At the start of every Colab
# session, run the copy again (it only copies what is missing or damaged).
