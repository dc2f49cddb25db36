"""One optimizer step and what it is built from: optimizer, OneCycleLR schedule, mixed precision
through the GradScaler, gradient clipping, and a per-block step timer."""

from __future__ import annotations

import time

import torch
from torch import nn

from .losses import FgBgLoss
from .train_config import (
    OPTIMIZERS,
    TrainConfig,
)
from .transforms import BatchNormaliser, prepare_batch

TIMED_BLOCKS = ("data", "forward", "loss", "backward", "optimizer")


TIMING_EVERY = 20
"""On CUDA one step in this many is timed block by block (each block's end waits for the GPU); the
others run unsynchronized. On the CPU, where nothing is queued, every step is timed."""


FINITE_CHECK_EVERY = 20
"""On CUDA the loss's finiteness is read back every this many steps (`FiniteGuard`); on the CPU at each."""


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")


def make_scheduler(config: TrainConfig, steps: int, optimizer: torch.optim.Optimizer, step: int = 0):
    """OneCycleLR over `steps` (the plan's), positioned after `step` steps (a re-planned schedule takes
    over at the step reached; its learning rate and momentum are set for that step)."""
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps)
    if step:
        scheduler.last_epoch = step - 1
        scheduler.step()
    return scheduler


def finite_check_interval(device: torch.device) -> int:
    """Steps between two reads of the loss's finiteness: FINITE_CHECK_EVERY on CUDA, where a read waits
    for the GPU; 1 on the CPU, where it costs nothing."""
    return FINITE_CHECK_EVERY if device.type == "cuda" else 1


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss: FgBgLoss,
    autocast_context,
    config: TrainConfig,
    batch: dict,
    timer: StepTimer | None = None,
) -> dict[str, torch.Tensor]:
    """Forward and loss under autocast, backward through the GradScaler, clipping, the step (which the
    scaler skips when fp16 gradients overflowed); returns the loss's parts. The training step, which
    calibration times too, so a `minutes` plan is made on the path it pays for."""
    mark = timer.mark if timer is not None else lambda block: None
    mark("data")
    model.train()
    with autocast_context():
        outputs = model(batch["bg"], batch["fg_bg"])
        mark("forward")
        total, parts = loss(outputs, batch)
    mark("loss")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    mark("backward")
    if config.grad_clip:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return parts


def to_device(
    batch: dict, device: torch.device, channels_last: bool, normaliser: BatchNormaliser | None = None
) -> dict:
    """A loader's batch on the device in the float format: the loaders carry uint8 (a quarter of
    the bytes from the workers), converted on the device by `normaliser` (`prepare_batch`)."""
    return prepare_batch(batch, device, normaliser, channels_last=channels_last)


class StepTimer:
    """Wall time per training block, sampled: every `every`-th step is timed (on CUDA each of its
    blocks waits for the GPU first, so the clock sees finished work); the others are not touched.
    Call `end_step` after each step's last block."""

    def __init__(self, device: torch.device, every: int | None = None):
        self.device = device
        self.every = every or (TIMING_EVERY if device.type == "cuda" else 1)
        self.totals = dict.fromkeys(TIMED_BLOCKS, 0.0)
        self.steps = 0
        self.timed = 0
        self.timing = self.every == 1
        """Whether the current step is timed (on CUDA the first is not: it warms up)."""
        self.last = time.perf_counter()

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def mark(self, block: str) -> None:
        if not self.timing:
            return
        self._synchronize()
        now = time.perf_counter()
        self.totals[block] += now - self.last
        self.last = now

    def end_step(self) -> None:
        """Count the step; the next one is timed when it is the `every`-th."""
        self.timed += self.timing
        self.steps += 1
        self.timing = self.steps % self.every == 0
        self.restart()

    def restart(self) -> None:
        """Skip the time since the last mark (validation, saving)."""
        if self.timing:
            self._synchronize()
        self.last = time.perf_counter()

    def table(self, batch_size: int) -> dict:
        """Milliseconds per step and share of each block over the timed steps; images/s from them."""
        total = sum(self.totals.values()) or 1.0
        timed = max(self.timed, 1)
        rows = {
            block: {"ms_per_step": 1000 * seconds / timed, "share": seconds / total}
            for block, seconds in self.totals.items()
        }
        return {
            "steps": self.steps,
            "timed_steps": self.timed,
            "images_per_s": self.timed * batch_size / total,
            "blocks": rows,
        }


def print_timing(timing: dict) -> None:
    print(f"{'block':<10} {'ms/step':>9} {'share':>7}")
    for block, row in timing["blocks"].items():
        print(f"{block:<10} {row['ms_per_step']:9.1f} {100 * row['share']:6.1f}%")
    timed = timing.get("timed_steps", timing["steps"])
    print(f"{timing['steps']} steps ({timed} timed), {timing['images_per_s']:.1f} images/s per process")
