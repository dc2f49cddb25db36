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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fgbg-kit/fgbg-kit/blob/main/notebooks/05_lr_range_test.ipynb)
#
# Your fork: in this badge's link put your GitHub user and repository in place of
# `fgbg-kit/fgbg-kit`, and set `KIT_REPO` in the setup cell below to your fork's URL.
#
# # 05 · Learning-rate range test
#
# Which learning rate? Train for a few dozen steps while the learning rate grows exponentially,
# from far too small to far too large, and watch the loss: it stays flat, then falls, then blows
# up. The best maximum learning rate for a one-cycle schedule sits where the loss falls fastest.
# The model and optimizer are restored afterwards, so the sweep costs no training.
#
# The usual tool, torch-lr-finder, calls `model(inputs)` with one argument; the kit's models take
# two inputs and return two outputs, so `fgbg_utils.lr_finder` does the sweep directly.

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
MODEL = "fgbg_net_refined"
SIZE = None  # default: the dataset's (the CPU recipe trains at it)
BATCH = 32
STEPS = 100  # sweep length (the smoke profile uses fewer)

# %%
from pathlib import Path

import torch

from fgbg_utils.build import ensure_dataset, profile_config
from fgbg_utils.data import FgBgDataset
from fgbg_utils.loaders import make_loader
from fgbg_utils.losses import FgBgLoss
from fgbg_utils.lr_finder import lr_range_test
from fgbg_utils.models import build_model
from fgbg_utils.precision import amp_dtype
from fgbg_utils.runtime import default_device, get_profile, runs_dir
from fgbg_utils.transforms import BatchNormaliser, make_transforms, prepare_batch

profile = get_profile(PROFILE)
data_dir = Path(DATA_DIR) if DATA_DIR else runs_dir() / profile.name / "data"
print(f"profile {profile.name}: {profile.samples:,} samples at {profile.size} px -> {data_dir}")
data = ensure_dataset(data_dir, profile_config(profile))  # builds it if notebook 00 was not run
device = default_device()
torch.set_flush_denormal(True)  # on CPUs, near-zero activations (bg == fg_bg) are otherwise ~20x slower

# %% [markdown]
# ## The sweep
#
# Batches come from the `unseen` training split with the training augmentation, as uint8 from
# the loader and normalised on the device. The loss is the training loss with its default
# weights: BCE + Dice + Lovász hinge for the mask; L1 + SSIM + gradient for depth, plus the
# ground and horizon terms the kit's network is trained with. On a GPU the sweep runs in the mixed
# precision training uses there (`amp_dtype`: bf16, or fp16 with a GradScaler on a T4), since the
# learning rate a network stands depends on it; on a CPU in fp32, as training.

# %%
steps = 12 if profile.name == "smoke" else STEPS
transform = make_transforms(SIZE or data.size, train=True, stats=data.statistics, output="uint8", seed=0)
loader = make_loader(
    FgBgDataset(data, "unseen_train", transform=transform, output="uint8"),
    batch_size=BATCH,
    shuffle=True,
    workers=min(2, os.cpu_count() or 1),
)
normaliser = BatchNormaliser(data.statistics).to(device)
batches = [prepare_batch(batch, device, normaliser) for batch, _ in zip(loader, range(steps), strict=False)]

model = build_model(MODEL).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
loss = FgBgLoss(check_finite=False)  # a diverging loss ends the sweep (`diverged`), not the notebook
before = {k: v.clone() for k, v in model.state_dict().items()}
sweep = lr_range_test(
    model,
    optimizer,
    lambda out, batch: loss(out, batch)[0],
    batches,
    start_lr=1e-5,
    end_lr=1.0,
    steps=steps,
    dtype=amp_dtype(device),
)
sweep.plot()
print(f"suggested maximum learning rate: {sweep.suggestion:.2e} (diverged at the end: {sweep.diverged})")

# %%
# NBVAL_CHECK_OUTPUT
print("model restored after the sweep:", all(torch.equal(before[k], v) for k, v in model.state_dict().items()))
print("optimizer restored:", optimizer.param_groups[0]["lr"] == 1e-3 and not optimizer.state_dict()["state"])
print("learning rates grow geometrically:", all(b > a for a, b in zip(sweep.lrs, sweep.lrs[1:], strict=False)))

# %% [markdown]
# ## Using it
#
# The suggestion is where the loss falls fastest: a safe maximum learning rate for the one-cycle
# schedule, `python -m fgbg_utils train ... --lr <value>` (see `train --help`). Start there. One
# cycle spends only its middle at the maximum, so a maximum somewhat above the suggestion, still
# well short of where the loss turns up, can train faster: notebook 06 uses 6e-3 on the demo data,
# which beat 3e-3 (the CLI's default) at 1,000 steps. Compare two runs rather than trusting either
# number. With too few steps or a very noisy loss the curve is rough; rerun with more `STEPS` or a
# larger `BATCH`.
