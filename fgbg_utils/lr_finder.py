"""The learning-rate range test: train briefly while the learning rate grows exponentially, and
read a good maximum learning rate off the loss curve (Smith, "Cyclical Learning Rates").

Works with the kit's two-input, two-output models directly (torch-lr-finder calls
``model(inputs)`` with one argument and weighs validation loss by ``len(labels)``, which needs
wrappers for this task); the model and optimizer are restored afterwards.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .precision import autocast, make_scaler


@dataclass
class LRSweep:
    lrs: list[float]
    losses: list[float]
    """Exponentially smoothed (bias-corrected) training loss at each learning rate."""
    suggestion: float
    """The learning rate where the smoothed loss falls fastest against log(lr)."""
    diverged: bool

    def plot(self, axis=None):
        """Loss against learning rate (log scale) with the suggestion marked."""
        import matplotlib.pyplot as plt

        axis = axis or plt.subplots(figsize=(6, 3.5))[1]
        axis.semilogx(self.lrs, self.losses)
        axis.axvline(self.suggestion, color="tab:red", ls="--", label=f"suggested {self.suggestion:.2e}")
        axis.set_xlabel("learning rate")
        axis.set_ylabel("smoothed training loss")
        axis.legend()
        return axis


def suggest_lr(lrs: list[float], losses: list[float], skip_start: int = 5, skip_end: int = 3) -> float:
    """The learning rate at the steepest descent of the loss curve (against log lr)."""
    lrs_a, losses_a = np.asarray(lrs), np.asarray(losses)
    if len(lrs_a) > skip_start + skip_end + 2:
        lrs_a, losses_a = lrs_a[skip_start : len(lrs_a) - skip_end], losses_a[skip_start : len(losses_a) - skip_end]
    slope = np.gradient(losses_a, np.log(lrs_a))
    return float(lrs_a[int(np.argmin(slope))])


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[dict, dict], torch.Tensor],
    batches: Iterable[dict],
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    steps: int = 100,
    smoothing: float = 0.05,
    diverge: float = 4.0,
    dtype: torch.dtype | None = None,
) -> LRSweep:
    """Sweep the learning rate from `start_lr` to `end_lr` over `steps` optimizer steps.

    `batches` yields dicts with ``bg`` and ``fg_bg`` on the model's device (reused cyclically
    when shorter than `steps`); `loss_fn(outputs, batch)` returns the scalar loss. Stops early
    once the smoothed loss exceeds `diverge` times its best. The model's and the optimizer's
    states are restored before returning, so training starts from the same point afterwards.

    `dtype` is the mixed precision training will use (`fgbg_utils.precision.amp_dtype`): the sweep
    runs under the same autocast, and for fp16 the same GradScaler, since the learning rate a network
    stands depends on it.
    """
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    gamma = (end_lr / start_lr) ** (1.0 / max(steps - 1, 1))
    lrs: list[float] = []
    losses: list[float] = []
    average, best, diverged = 0.0, math.inf, False
    device = next(model.parameters()).device
    scaler = make_scaler(device, dtype)
    model.train()
    try:
        for step, batch in enumerate(itertools.islice(itertools.cycle(batches), steps)):
            lr = start_lr * gamma**step
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                loss = loss_fn(model(batch["bg"], batch["fg_bg"]), batch)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            value = float(loss.detach())
            if not math.isfinite(value):
                diverged = True
                break
            average = smoothing * value + (1 - smoothing) * average
            smoothed = average / (1 - (1 - smoothing) ** (step + 1))
            lrs.append(lr)
            losses.append(smoothed)
            best = min(best, smoothed)
            if smoothed > diverge * best:
                diverged = True
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
    if len(lrs) < 2:
        raise RuntimeError(f"the loss diverged after {len(lrs)} step(s): lower start_lr (now {start_lr:g})")
    return LRSweep(lrs, losses, suggest_lr(lrs, losses), diverged)
