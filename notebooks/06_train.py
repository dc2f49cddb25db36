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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fgbg-kit/fgbg-kit/blob/main/notebooks/06_train.ipynb)
#
# Your fork: in this badge's link put your GitHub user and repository in place of
# `fgbg-kit/fgbg-kit`, and set `KIT_REPO` in the setup cell below to your fork's URL.
#
# # 06 · Train, survive Colab, and measure honestly
#
# One call trains a network to predict the mask and the depth, within a time budget, saving
# checkpoints that a new Colab session resumes exactly. Then the model is scored on the `unseen`
# split (backgrounds and foregrounds never seen in training) next to two baselines: one it must
# beat everywhere, one it must beat where the object is.

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
# smoke: seconds (CI) · demo: 10 minutes on a laptop CPU · full: an hour, on a GPU
PROFILE = os.environ.get("FGBG_PROFILE", "demo")
DATA_DIR = None  # default: runs/<PROFILE>/data
RUN_DIR = None  # default: runs/<PROFILE>/train; on Colab put it on Drive to survive disconnects
MODEL = "fgbg_net"
MINUTES = {"smoke": None, "demo": 10, "full": 60}
SIZES = (64, 96)  # progressive resizing: equal shares of the steps at each size
LR = 6e-3  # above notebook 05's suggestion, short of where its loss turns up; beat 3e-3 at 1,000 steps here
RESUME = False  # True continues RUN_DIR exactly where it stopped

# %%
from pathlib import Path


from fgbg_utils.browse import learning_curves, scores_table
from fgbg_utils.build import ensure_dataset, profile_config
from fgbg_utils.evaluate import evaluate
from fgbg_utils.runtime import get_profile, runs_dir
from fgbg_utils.train import TrainConfig, print_timing, train

profile = get_profile(PROFILE)
data_dir = Path(DATA_DIR) if DATA_DIR else runs_dir() / profile.name / "data"
run_dir = Path(RUN_DIR) if RUN_DIR else runs_dir() / profile.name / "train"
print(f"profile {profile.name}: {profile.samples:,} samples at {profile.size} px -> {data_dir}")
data = ensure_dataset(data_dir, profile_config(profile))  # builds it if notebook 00 was not run

# %% [markdown]
# ## What is trained, and how
#
# - **Losses.** Mask: binary cross-entropy on the logits plus Dice (Dice keeps small objects from
#   being drowned by the background pixels) plus the Lovász hinge (a convex stand-in for the IoU of
#   each image, so a small object's outline counts as much as it does in the score). Depth: L1 plus
#   structural similarity plus an L1 on the image gradients (edges of objects must stay sharp),
#   and, for `fgbg_net`, two terms read off the target itself: a cross-entropy on which pixels
#   follow the ground (an upright thing has the depth of the pixel below it, the ground does not;
#   without it a run could let the sky teach "ground" everywhere above the horizon, and trees came
#   out as sky), and a cross-entropy on the horizon's row, where a straight line through the
#   ground's inverse depth reaches zero (learnt through the depth error alone, the horizon was
#   still 2 px off after 10 minutes). Both read the depth as the ground-plane model draws it, so
#   training turns them off, with a message, for imported or MiDaS depth.
#   `mode="mask"` or `"depth"` trains one output first, the course's question of solving one
#   problem before the other.
# - **Schedule.** AdamW with a one-cycle learning rate over the whole budget, and small-to-large
#   resolution (64 px, then 96 px): early steps are cheap and learn the coarse task. The number of
#   steps that fit the budget is timed at the start and re-planned at every checkpoint from the
#   pace actually measured (data loading, validation and saving included), so the learning rate
#   has come down by the time the budget ends.
# - **Surviving Colab.** Checkpoints (model, optimizer, scheduler, scaler, step, position in the
#   epoch, random states) are written atomically every few minutes; the last `k` and the best are
#   kept. `RESUME = True` (or `train --resume`) continues where the run stopped: the data order
#   is a pure function of the seed and epoch, so with a fixed number of steps and deterministic
#   settings a resumed run ends with the same weights as an uninterrupted one (tested on a CPU
#   with a run killed mid-way). A time budget (`minutes`) stops cleanly and saves; a resumed
#   run keeps the step count planned at its last checkpoint and gets a new budget.
# - **Speed.** Mixed precision and pinned memory on a GPU; on a CPU, denormal flushing (near-zero
#   activations where `bg == fg_bg` are otherwise about 20x slower).

# %%
minutes = MINUTES[profile.name]
config = TrainConfig(
    data=str(data_dir),
    out=str(run_dir),
    model=MODEL,
    sizes=SIZES if minutes else (32,),
    lr=LR,
    minutes=minutes,
    steps=None if minutes else 6,
    batch_size=32 if minutes else 8,
    workers=1 if minutes else 0,
    checkpoint_every_minutes=2 if minutes else None,
    checkpoint_every_steps=None if minutes else 3,
    val_samples=512 if minutes else 16,
    progress=minutes is not None,
)
summary = train(config, resume=RESUME)
print(f"{summary['steps']} steps in {summary['minutes']:.1f} min, stopped by {summary['stopped']}")

# %% [markdown]
# ## Where the time goes
#
# The course asks for the timing of each block. If *waiting for data* dominates, the GPU idles:
# use more loader workers or the on-the-fly dataset (notebook 03).

# %%
import json

print_timing(json.loads((run_dir / "timing.json").read_text()))

# %%
# NBVAL_CHECK_OUTPUT
print(
    "checkpoints kept:", sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt") if not p.name.startswith("step"))
)
rows = json.loads((run_dir / "metrics.json").read_text())
print("every validation names its split:", sorted({row["val_split"] for row in rows}))

# %% [markdown]
# ## Learning curves

# %%
figure = learning_curves(run_dir)

# %% [markdown]
# ## Scores on unseen scenes, next to the baselines
#
# - **Difference mask**: pixels where `|fg_bg - bg|` exceeds a threshold, the threshold chosen on
#   the *training* split. It is what a model must beat to have learned anything about objects.
# - **Background depth**: the background's stored depth map, the scene without the object (its
#   true depth in the demo's geometric builds; a prior or MiDaS's estimate otherwise), which the
#   model is never given. On the demo it is right everywhere but under the object, a few percent
#   of the image, so it scores well on the whole image; `depth_object_rmse`, over the true mask's
#   pixels alone, is where a model must beat it.
#
# Mask IoU and Dice at 0.5, depth RMSE and MAE on the stored 0..1 scale, AbsRel and δ1..3 in
# metres (the inverse-depth encoding decoded), SSIM (7x7 window).

# %%
result = evaluate(
    data,
    run_dir / "checkpoints" / "last.pt",
    split="unseen_test",
    json_out=run_dir / "eval_unseen.json",
    progress=False,
)
print(f"split {result['split']}: {result['metrics']['images']:,} images at {result['size']} px, step {result['step']}")
print(scores_table(result))
