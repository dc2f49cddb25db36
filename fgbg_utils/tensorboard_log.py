"""TensorBoard logs of a training run, in ``RUN/tensorboard/``: the loss terms, learning rate and
images/s while it trains, and at every validation its metrics and an image grid of a few fixed
validation samples (one row each: bg, fg_bg, true mask, predicted mask, true depth, predicted depth).

``%tensorboard --logdir RUN/tensorboard`` (Colab, Jupyter) or ``tensorboard --logdir RUN/tensorboard``
shows them live. A resumed run appends to the same folder: TensorBoard drops what the killed session
logged after the checkpoint resumed from (`purge_step`), so no step appears twice.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import Tensor
from torchvision.utils import make_grid

FOLDER = "tensorboard"
LOG_EVERY_STEPS = 10
"""Training scalars are the means over this many steps (one device synchronisation per log)."""
PREVIEW_SAMPLES = 4
"""Validation samples shown in the image grid: the first ones of the validation split, every time."""


def board_dir(out: str | Path) -> Path:
    """Where a run in folder `out` keeps its TensorBoard event files."""
    return Path(out) / FOLDER


def as_rgb(images: Tensor) -> Tensor:
    """Bx1xHxW or Bx3xHxW values in [0, 1] (or uint8 images) as Bx3xHxW float32 in [0, 1], on the CPU."""
    images = images.detach().cpu()
    images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float().clamp(0.0, 1.0)
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def preview_grid(loaded: dict, predicted: dict) -> Tensor:
    """One row per sample: bg, fg_bg, true mask, predicted mask, true depth, predicted depth.

    `loaded` is a batch as the loader gives it (uint8 images, a 0/1 mask, depth 0..255); `predicted`
    holds the mask's probability and the depth (0..1), either left out by a one-task model (shown
    black)."""
    blank = torch.zeros_like(as_rgb(loaded["mask"]))
    columns = [
        as_rgb(loaded["bg"]),
        as_rgb(loaded["fg_bg"]),
        as_rgb(loaded["mask"] * 255),
        as_rgb(predicted["mask"]) if "mask" in predicted else blank,
        as_rgb(loaded["depth"]),
        as_rgb(predicted["depth"]) if "depth" in predicted else blank,
    ]
    rows = torch.stack(columns, dim=1).flatten(0, 1)  # sample by sample, the columns in order
    return make_grid(rows, nrow=len(columns), padding=2, pad_value=1.0)


class TrainingBoard:
    """Writes one run's TensorBoard events (rank 0 only: the other ranks hold a board that writes
    nothing, as does one made without a folder).

    `first_step` is the number of steps already done when this session starts (a resume's
    checkpoint step): events the folder holds past it are purged.
    """

    def __init__(self, folder: str | Path | None = None, first_step: int = 0, images_per_step: int = 0):
        self.writer = None
        if folder is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder), purge_step=first_step + 1)
        self.images_per_step = images_per_step
        self.sums: dict[str, Tensor] = {}
        self.summed = 0
        self.restart_clock()

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def restart_clock(self) -> None:
        """Leave the time since now out of the next images/s (validation, saving)."""
        self.clock, self.clocked_steps = time.perf_counter(), 0

    def train_step(self, step: int, parts: dict[str, Tensor], lr: float) -> None:
        """After optimizer step number `step` (counted from 1), with its loss terms and the learning
        rate it used: at step 1 and every LOG_EVERY_STEPS steps, the terms' means since the last log,
        that rate, and the images/s over the wall time since the last log or validation."""
        if self.writer is None:
            return
        for name, value in parts.items():
            self.sums[name] = self.sums.get(name, 0.0) + value.detach()
        self.summed += 1
        self.clocked_steps += 1
        if step % LOG_EVERY_STEPS and step != 1:
            return
        means = (torch.stack(list(self.sums.values())).float() / self.summed).tolist()  # one synchronisation
        for name, mean in zip(self.sums, means, strict=True):
            self.writer.add_scalar(f"loss/{name}", mean, step)
        self.writer.add_scalar("train/lr", lr, step)
        seconds = time.perf_counter() - self.clock
        if seconds > 0:
            self.writer.add_scalar("train/images_per_s", self.clocked_steps * self.images_per_step / seconds, step)
        self.sums, self.summed = {}, 0
        self.restart_clock()

    def validation(self, step: int, row: dict, loaded: dict, predicted: dict) -> None:
        """A validation's metrics (the ``val_*`` numbers of its metrics row) and the image grid of
        `loaded` and `predicted` (`preview_grid`), at `step`; written to disk at once, so a kill
        loses nothing a resume from this checkpoint would not log again."""
        if self.writer is None:
            return
        for key, value in row.items():
            if key.startswith("val_") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"val/{key[4:]}", value, step)
        self.writer.add_scalar("train/size", row["size"], step)
        self.writer.add_image("val/preview", preview_grid(loaded, predicted), step)
        self.writer.flush()
        self.restart_clock()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
