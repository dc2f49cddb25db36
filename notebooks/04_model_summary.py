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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fgbg-kit/fgbg-kit/blob/main/notebooks/04_model_summary.ipynb)
#
# Your fork: in this badge's link put your GitHub user and repository in place of
# `fgbg-kit/fgbg-kit`, and set `KIT_REPO` in the setup cell below to your fork's URL.
#
# # 04 · Model summary
#
# The course asks for the model's layer table and **parameter count**. This notebook prints
# both for the kit's network and for faithful reproductions of the course submissions' networks,
# with the compute each needs per image (FLOPs), so they can be compared on equal terms.
#
# Every model has one interface: `model(bg, fg_bg)` with two `B x 3 x H x W` tensors returns
# `{"mask": logits, "depth": values in [0, 1]}`.

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
PROFILE = os.environ.get("FGBG_PROFILE", "demo")  # this notebook does the same work in every profile
MODEL = "fgbg_net_refined"  # the default
SIZE = 224  # input side for the layer table and FLOPs

# %%
import torch
from torchsummary import summary

from fgbg_utils.models import MODELS, build_model, count_parameters
from fgbg_utils.models.costs import architecture_table, flops_per_sample
from fgbg_utils.runtime import default_device

device = default_device()
print(f"profile {PROFILE}; models on {device}")

# %% [markdown]
# ## The kit's network: `fgbg_net_refined`
#
# The network answers at the stored 224 px but thinks at 96 px: it shrinks both images to 3/7 of
# their side and runs `fgbg_net` (below) there, where it finds the object and the scene's geometry.
# Its outputs come back at 224 px. The depth is drawn again at full size from the same parts (the
# ground's ramp is exact at any size). The mask's upsampled logits are corrected only in the
# 16 x 16 tiles that need it: where `fg_bg - bg` is not 0 (the background went through the photo's
# JPEG codec, so every tile the object does not touch differs by exactly 0) and the coarse mask is
# unsure. A refiner of four narrow 3 x 3 layers sees each such tile with a 4-pixel margin. That is
# about a sixth of the frame, so a training step at 224 px costs about 1.5 times `fgbg_net`'s at
# 96 px (`benchmarks/train_step.py`).
#
# ### Inside it: `fgbg_net`
#
# One encoder with shared weights looks at `bg` and `fg_bg`; at each scale their features are
# fused with their **difference** `|f(fg_bg) - f(bg)|` (where the object is) and two coordinate
# channels (a pixel's row tells a lot about its depth in a ground-plane scene). A light UNet-style
# decoder with skip connections ends in two heads at half resolution, refined by two narrow layers
# at full resolution with the raw pixel difference (far-away objects are only a few pixels).
#
# The depth head uses the scene's geometry: over flat ground seen by a level camera, inverse depth
# grows linearly with the row below the horizon. A small `Horizon` head scores every row of a
# per-row profile of the background (where the smooth sky meets the textured ground) to find each
# image's horizon; a `GroundPlane` learns one camera height for the whole dataset (a per-image
# guess learnt the training backgrounds by heart) and draws that ramp exactly. The depth head only chooses, per pixel,
# between the ramp and the depth of the place where an upright thing stands; the pasted object
# stands at the lowest row of its own mask. Almost nothing runs at full resolution, which keeps it
# fast enough to train on a CPU.
#
# `torchsummary` 1.5.1 (the course's tool) defaults to CUDA, so the device is passed explicitly;
# its input-size and activation-size lines are unreliable for two-input models (a known bug), so
# the parameter total is checked against `sum(p.numel())` below.

# %%
model = build_model(MODEL).to(device)
summary(model, [(3, SIZE, SIZE), (3, SIZE, SIZE)], device=device.split(":")[0])

# %%
# NBVAL_CHECK_OUTPUT
total = sum(p.numel() for p in model.parameters())
print(f"{MODEL}: {total:,} parameters; trainable {count_parameters(model):,}")
print(f"FLOPs per {SIZE} px sample: {flops_per_sample(model, SIZE) / 1e9:.3f} G")
bg, fg_bg = torch.rand(2, 3, SIZE, SIZE, device=device), torch.rand(2, 3, SIZE, SIZE, device=device)
with torch.no_grad():
    out = model.eval()(bg, fg_bg)
for key, value in out.items():
    print(f"{key}: shape {tuple(value.shape)}, dtype {value.dtype}")
print("depth within [0, 1]:", bool(out["depth"].min() >= 0 and out["depth"].max() <= 1))

# %% [markdown]
# ## Every architecture, side by side
#
# The seed networks reproduce the course write-ups layer by layer, with the parameter counts
# their authors printed (1,340,224 for the two-path dilated network of write-up 004; 8,631,810
# for the 6-channel UNet of 002; 33,389,314 for the shared-encoder UNet of 000/001; the UNet
# whose modules 003 prints). FLOPs are counted by `torch.utils.flop_counter` on the meta device,
# so no memory is spent on activations. The refined networks' work depends on the pixels (which
# tiles they refine), so they are counted on the CPU, on a random background with a square a
# third of its side pasted in, their refiner untrained (it refines every tile the square touches).

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'model':22s} {'parameters':>12s} {f'GFLOPs @ {SIZE}px':>16s}")
for row in architecture_table(SIZE):
    print(f"{row['model']:22s} {row['parameters']:>12,} {row['gflops']:>16.2f}")

# %% [markdown]
# The kit's network has about a tenth of the parameters of the smallest submission and well under
# a hundredth of its FLOPs. Parameters alone do not decide accuracy: compare networks trained on
# the same data and the same split.
#
# Layer tables of the seed networks. torchsummary 1.5.1 crashes on modules that take a list
# (as the UNets' skip connections do), so these come from `layer_table`, which hooks only leaf
# layers and runs on the meta device:

# %%
from fgbg_utils.models.costs import layer_table

for name in MODELS:
    if name == MODEL:
        continue
    rows = layer_table(build_model(name), size=64)
    total = sum({r["layer"]: r["parameters"] for r in rows}.values())
    print(f"\n=== {name}: {len(rows)} layers, {total:,} parameters ===")
    for row in rows:
        print(f"{row['layer']:45s} {row['type']:18s} {str(row['output']):22s} {row['parameters']:>10,}")
