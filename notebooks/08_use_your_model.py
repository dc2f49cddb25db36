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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fgbg-kit/fgbg-kit/blob/main/notebooks/08_use_your_model.ipynb)
#
# Your fork: in this badge's link put your GitHub user and repository in place of
# `fgbg-kit/fgbg-kit`, and set `KIT_REPO` in the setup cell below to your fork's URL.
#
# # 08 · Use your model on your own photos
#
# A trained checkpoint is meant to be used: give it a background and the same scene with something
# new in it, and it draws the new thing's mask and the scene's depth. This notebook loads notebook
# 06's checkpoint (or trains a short run of its own), predicts on held-out pairs of the dataset, on
# pairs saved as files (what `python -m fgbg_utils predict` does) and on photos you upload.

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
# smoke: seconds (CI) · demo: a laptop CPU after notebook 06 · full: the course's dataset
PROFILE = os.environ.get("FGBG_PROFILE", "demo")
DATA_DIR = None  # default: runs/<PROFILE>/data
RUN_DIR = None  # default: runs/<PROFILE>/train, notebook 06's run
FALLBACK_MINUTES = {"smoke": None, "demo": 2, "full": 5}  # a short run of our own when 06 has not run
HELD_OUT = 4  # held-out pairs shown
AT = "trained"  # what the network sees: "trained" (the pair at its training size) or "native" (whole)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from PIL import Image

from fgbg_utils.build import ensure_dataset, profile_config
from fgbg_utils.data import FgBgDataset, evenly_spaced_positions
from fgbg_utils.predict import OUTPUTS, Predictor, match_folders, network_shape
from fgbg_utils.runs import ensure_run, fallback_run
from fgbg_utils.runtime import get_profile, in_colab, runs_dir
from fgbg_utils.checkpoints import load_checkpoint
from fgbg_utils.train_config import split_names
from fgbg_utils.upload import UploadPredictor, predict_uploads, show_prediction
from fgbg_utils.viz import show_images

profile = get_profile(PROFILE)
data_dir = Path(DATA_DIR) if DATA_DIR else runs_dir() / profile.name / "data"
run_dir = Path(RUN_DIR) if RUN_DIR else runs_dir() / profile.name / "train"
out_dir = runs_dir() / profile.name / "predict"
print(f"profile {profile.name}: {profile.samples:,} samples at {profile.size} px -> {data_dir}")
data = ensure_dataset(data_dir, profile_config(profile))  # builds it if notebook 00 was not run

# %% [markdown]
# ## The checkpoint
#
# Notebook 06's run at its last checkpoint; when 06 has not been run, the short run notebook 07 makes
# (the same folder, so the two notebooks train it once between them).

# %%
fallback = fallback_run(data_dir, profile.name, FALLBACK_MINUTES[profile.name])
run_dir, checkpoint = ensure_run(run_dir, fallback)
predictor = Predictor(checkpoint)
config = load_checkpoint(checkpoint)["config"]
print(f"checkpoint {checkpoint.name} of {run_dir.name}: {config['model']}, trained up to {predictor.size} px")

# %% [markdown]
# ## What the network sees
#
# The network learnt on scenes whose shorter side spans its training size S. With `AT = "trained"`
# (the default, and the recommendation) a photo is resized so its shorter side is S, the longer one in
# proportion on the network's stride of 16; the mask probability and the depth come back to the
# photo's own size bilinearly, and the mask is thresholded at 0.5 after. `"native"` feeds the whole
# photo, padded to the stride: the objects are then many times larger than anything seen in training.
# A 4000 x 3000 phone photo, for a network trained at 224 px (the default on the demo and full builds):

# %%
# NBVAL_CHECK_OUTPUT
for at in ("trained", "native"):
    print(f"{at:8s} 3000 x 4000 photo -> network input (height, width) {network_shape(3000, 4000, 224, at)}")
print("files written per photo street.jpg:", ", ".join(f"street_{name}.png" for name in OUTPUTS))

# %% [markdown]
# ## Held-out pairs
#
# Pairs of the test split: scenes whose background and object the model never saw in training.
# The true mask is shown beside the prediction.

# %%
test_split = split_names(config["split"])[1]
held_out = FgBgDataset(data, test_split)
chosen = [held_out.load_arrays(i) for i in evenly_spaced_positions(len(held_out), HELD_OUT)]
predictions = list(predictor.predict(((s["bg"], s["fg_bg"]) for s in chosen), at=AT))
images, titles = [], []
for sample, prediction in zip(chosen, predictions, strict=True):
    outputs = prediction.images()
    images += [sample["bg"], sample["fg_bg"], sample["mask"] * 255, outputs["mask"], outputs["depth_color"]]
    images += [outputs["overlay"]]
    titles += ["bg", "fg_bg", "true mask", "predicted mask", "predicted depth", "overlay"]
figure = show_images(images, titles, columns=6, suptitle=f"{test_split}, {len(chosen)} held-out pairs")
plt.show()

# %% [markdown]
# ## Pairs as files: what `predict` does
#
# The same pairs saved as a folder of backgrounds and a folder of photos (matched by file name), then
# predicted as the command line does it:
#
# ```
# python -m fgbg_utils predict --checkpoint RUN/checkpoints/last.pt --bg BGS --fg-bg PHOTOS --out OUT
# ```
#
# (`--bg FILE --fg-bg FILE` for one pair, `--pairs pairs.csv` for a list with `bg,fg_bg` columns.)

# %%
examples = out_dir / "examples"
for kind in ("bg", "fg_bg"):
    (examples / kind).mkdir(parents=True, exist_ok=True)
for number, sample in enumerate(chosen):
    Image.fromarray(sample["bg"]).save(examples / "bg" / f"scene{number}.png")
    Image.fromarray(sample["fg_bg"]).save(examples / "fg_bg" / f"scene{number}.jpg", quality=90)
pairs = match_folders(examples / "bg", examples / "fg_bg")
written = predictor.predict_pairs(pairs, out_dir / "files", at=AT, progress=False)
print(f"wrote {sum(len(paths) for paths in written)} files into {out_dir / 'files'}")
figure = show_prediction({"bg": pairs[0][0], "fg_bg": pairs[0][1], **written[0]})
plt.show()

# %% [markdown]
# ## Your own photos
#
# Upload one background and one or more photos of the same frame with something added (taken from
# the same spot, the camera held still). One background serves every photo; with several, each
# photo is matched to the background of the same file name. Any JPEG, PNG or WebP works, in any
# size; phone rotation (EXIF) is honoured. On Colab the file picker asks twice (backgrounds, then
# photos); elsewhere, choose files in the two buttons below and press **predict**.

# %%
if in_colab():
    from google.colab import files

    print("choose the background(s)")
    backgrounds = files.upload()
    print("choose the photo(s)")
    photos = files.upload()
    for paths in predict_uploads(checkpoint, backgrounds, photos, out_dir / "uploads", at=AT):
        show_prediction(paths)
        plt.show()
else:
    uploader = UploadPredictor(checkpoint, out_dir / "uploads", at=AT, progress=False)
    display(uploader.widget)

# %% [markdown]
# An upload is a list of file names and their bytes. Here is one made from the first held-out pair,
# predicted exactly as the buttons above do it:


# %%
def png_bytes(image: np.ndarray) -> bytes:
    path = out_dir / "upload.png"
    Image.fromarray(image).save(path)
    return path.read_bytes()


backgrounds = {"my_room.png": png_bytes(chosen[0]["bg"])}
photos = {"my_room_with_object.png": png_bytes(chosen[0]["fg_bg"])}
uploaded = predict_uploads(checkpoint, backgrounds, photos, out_dir / "example_upload", at=AT, progress=False)
figure = show_prediction(uploaded[0])
plt.show()
