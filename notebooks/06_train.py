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
CHANGES = {}  # changes to the profile's recipe, e.g. {"lr": 3e-3, "model": "seed004_dilated"}
RESUME = False  # True continues RUN_DIR exactly where it stopped
LIVE_VIEW = None  # TensorBoard in the notebook; None: on Colab and in Jupyter, not in headless runs

# %%
from pathlib import Path


from fgbg_utils.build import ensure_dataset, profile_config
from fgbg_utils.evaluate import evaluate
from fgbg_utils.figures import learning_curves
from fgbg_utils.runs import scores_table
from fgbg_utils.runtime import get_profile, runs_dir
from fgbg_utils.tensorboard_log import board_dir
from fgbg_utils.optimization import print_timing
from fgbg_utils.train import train
from fgbg_utils.train_config import TrainConfig

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
#   and, for the kit's networks, two terms read off the target itself: a cross-entropy on which pixels
#   follow the ground (an upright thing has the depth of the pixel below it, the ground does not;
#   without it a run could let the sky teach "ground" everywhere above the horizon, and trees came
#   out as sky), and a cross-entropy on the horizon's row, where a straight line through the
#   ground's inverse depth reaches zero (learnt through the depth error alone, the horizon was
#   still 2 px off after 10 minutes). Both read the depth as the ground-plane model draws it, so
#   training turns them off, with a message, for imported or MiDaS depth.
#   `mode="mask"` or `"depth"` trains one output first, the course's question of solving one
#   problem before the other.
# - **Schedule.** AdamW with a one-cycle learning rate over the whole budget, at the dataset's
#   size: the default network, `fgbg_net_refined`, works at 3/7 of it inside and answers at the
#   stored size, so the losses and the scores see the stored 224 px masks and depth maps
#   themselves. (`sizes` still trains other networks small-to-large, e.g. 64 then 96 px.) The number of
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
#
# ## The recipes
#
# Each profile has one training recipe (`fgbg_utils.runtime.TrainingRecipe`); this notebook and
# `python -m fgbg_utils train` read the same ones, and the command's defaults are the CPU recipe,
# so `train --data D --out R --minutes 10` alone is what this notebook runs in the demo profile
# (`--recipe full` takes the full one).
#
# | profile | network | sizes (px) | batch | peak lr | loader workers | budget | mixed precision, channels-last |
# |---|---|---|---|---|---|---|---|
# | smoke | `fgbg_net_refined` | the dataset's (64) | 8 | 6e-3 | 0 | 6 steps | no |
# | demo (the CPU recipe) | `fgbg_net_refined` | the dataset's (224) | 32 | 6e-3 | 1 | 10 min | no (a CPU) |
# | full (one GPU) | `fgbg_net_refined_wide` | the dataset's (224) | 64 | 1.2e-2 | 2 | 60 min | yes |
#
# **The full recipe, and what is not measured yet.** It trains at the dataset's 224 px, where
# the course scores. Its batch and learning rate are the CPU recipe's both doubled (linear scaling:
# the learning rate grows with the batch, so each sample moves the weights about as much as on a
# CPU). Its network, `fgbg_net_refined_wide`, is the refined network around `fgbg_net_wide`, `fgbg_net`
# at twice the channels (583,834 parameters; `width` is a multiplier of `FgBgNet`). Choosing the
# width that scores best at 224 px needs GPU
# runs that this kit has not had yet, so width 2 is a choice, not a measured best: the widths'
# cost was measured, not their scores. On this session's 2-core CPU, shared with other jobs (so the
# rates are low and move between runs), `benchmarks/fgbg_net_widths.py` (batch 8; the widths take
# turns, one training step each per round, 2 warm-up and 7 timed rounds, the median) gave in two
# runs (GFLOPs per pair; images/s, and × width 1's in the same run):
#
# | width | parameters | GFLOPs 96 px | 96 px, run 1 | 96 px, run 2 | GFLOPs 224 px | 224 px, run 1 | 224 px, run 2 |
# |---|---|---|---|---|---|---|---|
# | 1 (`fgbg_net`) | 166,970 | 0.129 | 6.4 (1.000) | 69.8 (1.000) | 0.693 | 2.2 (1.000) | 2.4 (1.000) |
# | 2 (`fgbg_net_wide`) | 583,834 | 0.328 | 3.6 (0.558) | 48.2 (0.691) | 1.777 | 1.2 (0.566) | 1.9 (0.793) |
# | 3 | 1,270,266 | 0.648 | 3.6 (0.557) | 29.4 (0.421) | 3.520 | 1.0 (0.466) | 1.1 (0.470) |
#
# Width 2 was chosen as the middle of the course's 1.5M-parameter limit: 3.5 times the default's
# parameters at 0.56 to 0.79 times its training speed on this CPU; width 3 costs about half the
# speed. How much of that a GPU feels is not measured. Width 3 (`FgBgNet(width=3)`, 1,270,266
# parameters) is the next to train against it on a GPU. The full recipe on a CPU would take hours
# per epoch at 224 px: there, use the demo profile.
#
# **Feeding a GPU.** On Colab's two vCPUs a loader worker reading the shards tops out near a thousand
# samples per second, which a GPU outruns at 96 px. `CHANGES = {"virtual": True}` (`train --virtual`)
# composes each batch on the GPU from `bg/` and `fg/` (notebook 03's on-the-fly dataset) and augments
# it there, with no shards read and no loader workers. What it gains on a GPU is not measured yet (no
# GPU was lent to the sessions that built it); on this 2-core CPU, with two loader workers, the
# batch-composed, batch-augmented loader ran about five times (4.8x to 5.3x in six runs) the zip
# loader with the former augmentation at 96 px (README, Measured).

# %%
recipe = profile.training
options = {**recipe.options(), **CHANGES}
config = TrainConfig(
    data=str(data_dir),
    out=str(run_dir),
    **options,
    minutes=recipe.minutes,
    steps=recipe.steps,
    progress=recipe.minutes is not None,
)
print(f"{profile.name} recipe: " + ", ".join(f"{name}={value}" for name, value in options.items()))
summary = train(config, resume=RESUME)
print(f"{summary['steps']} steps in {summary['minutes']:.1f} min, stopped by {summary['stopped']}")

# %% [markdown]
# ## Watching a run live: TensorBoard
#
# Every run writes TensorBoard logs into `RUN_DIR/tensorboard/`: the loss terms, the learning
# rate and images/s every few steps, and at each validation its metrics and a grid of the first
# validation samples (bg, fg_bg, true and predicted mask, true and predicted depth). On Colab or
# in Jupyter, run the next cell before `train` (or while it runs, in a second notebook):
#
# ```
# %load_ext tensorboard
# %tensorboard --logdir RUN_DIR/tensorboard
# ```
#
# The cell below does that itself on Colab and in Jupyter. In a headless run (`make demo`, the
# tests) there is no browser to show it, and the server it starts would outlive the run, so it
# only prints the command (`LIVE_VIEW = True` forces it). Elsewhere: `tensorboard --logdir
# RUN_DIR/tensorboard` in a terminal, then http://localhost:6006.

# %%
from fgbg_utils.runtime import in_colab

logs = board_dir(run_dir)
live_view = LIVE_VIEW if LIVE_VIEW is not None else in_colab() or "JPY_SESSION_NAME" in os.environ
if live_view:  # Colab, or a Jupyter server (it names each kernel's notebook in JPY_SESSION_NAME)
    from IPython import get_ipython

    get_ipython().run_line_magic("load_ext", "tensorboard")
    get_ipython().run_line_magic("tensorboard", f"--logdir {logs}")
else:
    print(f"TensorBoard logs: {logs} (%load_ext tensorboard, then %tensorboard --logdir {logs})")

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

# %% [markdown]
# ## Beside it: the random split that the course's submissions report
#
# The course's write-ups score a random 70:30 split of the samples. Its test images show backgrounds
# and objects the network has already trained on, in other placements, so it is an easier test than
# `unseen`. Compare a submission's figure with the random split, and judge generalisation by `unseen`.
# To score the random split, train a second run on it and evaluate that run. `evaluate` picks the test
# split of the family the checkpoint was trained on; it refuses `unseen_test` for a random-split run,
# because that split holds some of the run's training samples:
#
# ```
# python -m fgbg_utils train --data D --out runs/random --split random --minutes 10
# python -m fgbg_utils evaluate --data D --checkpoint runs/random/checkpoints/best.pt
# ```
#
# Measured on the kit's 2-core CPU (demo data, this recipe, 10 minutes, scored at 224 px, 2026-12-02):
#
# | split | test images | mask IoU | depth RMSE | δ1 |
# | --- | --- | --- | --- | --- |
# | `unseen` | 3,600 | 0.893 | 0.042 | 0.922 |
# | `random` | 12,000 | 0.912 | 0.036 | 0.938 |
#
# The two rows come from two runs, 394 and 422 steps.
