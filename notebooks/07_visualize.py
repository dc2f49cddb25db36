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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fgbg-kit/fgbg-kit/blob/main/notebooks/07_visualize.ipynb)
#
# Your fork: in this badge's link put your GitHub user and repository in place of
# `fgbg-kit/fgbg-kit`, and set `KIT_REPO` in the setup cell below to your fork's URL.
#
# # 07 · How accuracy is presented, and what the predictions look like
#
# A single number hides most of what a model does. This notebook takes the run of notebook 06 and
# shows it the way the course asks: the learning curves, the scores on unseen scenes next to the
# baselines, the predictions themselves, the spread of per-sample scores, the worst cases, and a
# browser to walk through every sample.

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
# smoke: seconds (CI) · demo: a minute on a laptop CPU after notebook 06 · full: the course's dataset
PROFILE = os.environ.get("FGBG_PROFILE", "demo")
DATA_DIR = None  # default: runs/<PROFILE>/data
RUN_DIR = None  # default: runs/<PROFILE>/train, notebook 06's run
LIMIT = {"smoke": None, "demo": 300, "full": 300}  # samples kept per split, evenly spaced (None: all)
FALLBACK_MINUTES = {"smoke": None, "demo": 2, "full": 5}  # a short run of our own when 06 has not run
STATIC = None  # None: a static copy of the browser's view too, except on Colab and in Voilà; True/False forces it

# %%
import json
from pathlib import Path

import numpy as np

from fgbg_utils.browser import PredictionBrowser, show_browser
from fgbg_utils.build import ensure_dataset, profile_config
from fgbg_utils.figures import learning_curves, metric_distributions, prediction_grid, worst_cases
from fgbg_utils.runs import ensure_run, fallback_run, load_or_evaluate, scores_table
from fgbg_utils.runtime import get_profile, runs_dir
from fgbg_utils.split_predictions import predict_split
from fgbg_utils.train_config import split_names

profile = get_profile(PROFILE)
data_dir = Path(DATA_DIR) if DATA_DIR else runs_dir() / profile.name / "data"
run_dir = Path(RUN_DIR) if RUN_DIR else runs_dir() / profile.name / "train"
print(f"profile {profile.name}: {profile.samples:,} samples at {profile.size} px -> {data_dir}")
data = ensure_dataset(data_dir, profile_config(profile))  # builds it if notebook 00 was not run

# %% [markdown]
# ## The run to look at
#
# Notebook 06's run, at its **last** checkpoint, the one 06 scored. Its `best.pt` was picked by
# the validation score, and the validation split *is* the unseen test split: showing the best
# checkpoint would flatter the model with a choice made on the test data. When 06 has not been
# run (or its checkpoint no longer fits the model code), a short run of our own is trained first,
# so this notebook also runs on its own.

# %%
fallback = fallback_run(data_dir, profile.name, FALLBACK_MINUTES[profile.name])
run_dir, checkpoint = ensure_run(run_dir, fallback)
config = json.loads((run_dir / "config.json").read_text())
train_split, test_split = split_names(config["split"])
print(f"run {run_dir.name}: model {config['model']}, checkpoint {checkpoint.name}, splits {train_split}/{test_split}")

# %% [markdown]
# ## Learning curves
#
# The training loss should fall; the validation scores, measured on unseen scenes every few
# minutes, say whether that learning carries over to scenes the model never saw. Dotted lines mark
# where progressive resizing moved to larger images: a step in the curves there is the new size,
# not a change in learning.

# %%
figure = learning_curves(run_dir)

# %% [markdown]
# ## Scores next to the baselines
#
# A score means little alone. Each row below is measured on the same unseen samples:
#
# - **model**: mask IoU and Dice at a threshold of 0.5, per image and then averaged (every
#   image counts once, so small objects matter as much as large ones); depth RMSE and MAE on the
#   stored 0..1 scale; AbsRel and δ1 (share of pixels from 20 % nearer to 25 % farther than the
#   true distance: max(pred/true, true/pred) < 1.25) in metres; SSIM of the depth maps (7x7
#   window); and the depth RMSE inside the true mask alone (`depth_object_rmse`).
# - **difference_mask**: `|fg_bg - bg|` above a threshold chosen on the *training* split. A model
#   that does not beat it has learned nothing about objects.
# - **background_depth**: the background's stored depth map (its true depth in the demo's geometric
#   builds; a prior or MiDaS's estimate otherwise), ignoring the object. The model is never
#   given it, and on the demo it is right everywhere but under the object, a few percent of the
#   image: so it scores well on the whole image, and the model must beat it where the object is
#   (`depth_object_rmse`).

# %%
result = load_or_evaluate(run_dir, data, checkpoint, split=test_split, progress=False)
print(f"split {result['split']}: {result['metrics']['images']:,} images at {result['size']} px, step {result['step']}")
print(scores_table(result))
metrics = result["metrics"]
print(f"\nmask IoU per image {metrics['mask_iou']:.4f} · over all pixels {metrics['mask_iou_dataset']:.4f}")

# %% [markdown]
# The last line shows the two ways to average IoU. Per image, every sample weighs the same; over
# all pixels, large objects dominate. A model that misses small, distant objects looks better over
# all pixels than per image: say which one a number is.
#
# ## The predictions themselves
#
# The model runs once over a sample of each split (evenly spaced, so every background and
# foreground appears), and every figure and the browser below read those stored predictions.

# %%
predictions = {
    split: predict_split(checkpoint, data, split, limit=LIMIT[profile.name], progress=False)
    for split in (test_split, train_split)
}
test = predictions[test_split]
for split, kept in predictions.items():
    print(f"{split}: {len(kept)} samples at {kept.size} px, mean IoU {np.mean(kept.metrics['mask_iou']):.3f}")

# %% [markdown]
# The training split's scenes were seen in training, the test split's backgrounds and objects
# never were: the gap between the two mean IoUs is how much the model learned the scenes rather
# than the task.
#
# Six test samples follow, one per row: the two inputs, the true and the predicted mask
# (probability above the threshold), the true and the predicted depth (bright = near), and the
# depth error on a fixed 0..0.5 scale.

# %%
figure = prediction_grid(test)

# %% [markdown]
# ## The spread of per-sample scores
#
# A mean IoU of 0.7 can be every sample at 0.7, or most samples at 0.9 and some at 0. The
# histograms show which. The threshold is a choice too: the scores use 0.5, and the mean IoU moves
# with it.

# %%
figure = metric_distributions(test)
iou = test.mask_scores(0.5)["iou"]
print(f"samples with IoU below 0.5: {np.mean(iou < 0.5):.1%}")
for threshold in (0.3, 0.5, 0.7):
    print(f"mean IoU at threshold {threshold}: {test.mask_scores(threshold)['iou'].mean():.3f}")

# %% [markdown]
# ## The worst cases
#
# The samples with the lowest IoU, worst first. They tell what to fix next: objects that are tiny
# or far away, objects with the colours of the background, or a mask in the right place that is too
# coarse at the edges.

# %%
figure = worst_cases(test, k=6)

# %% [markdown]
# ## Browse every sample
#
# Move the slider to walk through a split, in split order or worst IoU first. The threshold
# recomputes the predicted mask and its IoU and Dice from the stored probabilities (nothing is
# rerun); the overlay tints the predicted mask on `fg_bg` and outlines the true one in green.
#
# The browser is an ipywidgets app: it runs in Jupyter, Colab and Voilà
# (`voila notebooks/07_visualize.ipynb` serves this notebook as a page). A viewer that runs no
# widgets, such as GitHub's, shows the static copy of the first view printed below it instead
# (`STATIC` in the parameters).

# %%
browser = PredictionBrowser(list(predictions.values()))

# %%
# NBVAL_CHECK_OUTPUT
size = test.size
print("one predicted sample, S = the evaluation size:")
for name, array in test.sample(0).items():
    print(f"  {name:10s} {str(array.dtype):8s} {tuple('S' if d == size else d for d in array.shape)}")
print("true mask is 0/1:", set(np.unique(test.mask).tolist()) <= {0, 1})
print("probabilities in [0, 1]:", bool(test.mask_prob.min() >= 0 and test.mask_prob.max() <= 1))
scores = ("mask_iou", "mask_dice", "depth_rmse", "depth_delta1")
print("per-sample scores:", ", ".join(key for key in scores if key in test.metrics))
print("browser controls:")
for line in browser.controls():
    print("  " + line)

# %%
show_browser(browser, static=STATIC)
