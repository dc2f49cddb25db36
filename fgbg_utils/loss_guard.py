"""Stopping a run whose loss went NaN or inf, without reading the loss back every step.

Reading a CUDA value (``bool(torch.isfinite(loss))``) waits for the GPU to finish the step, so the
host cannot queue the next one meanwhile. `FiniteGuard` keeps its tallies on the device and reads
them on a `check` every few steps (and before every checkpoint, so no checkpoint holds poisoned
weights).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

SKIPPED_IN_A_ROW = 10
"""Non-finite losses in a row that stop an fp16 run with a GradScaler. One is an overflow the scaler
handles (it skips the step and halves its scale); ten halvings from 65,536 leave a scale of 64, so ten
in a row mean the loss itself is NaN, not too large for fp16."""


class FiniteGuard:
    """Tallies non-finite losses on the device; `check` says whether they are an error.

    `scaled` (an enabled GradScaler): only `SKIPPED_IN_A_ROW` in a row are an error; otherwise any
    one is. `agree(flag)` turns one rank's verdict into every rank's (an all-reduce under DDP), so no
    rank raises alone while the others wait for it in the next collective.
    """

    def __init__(self, device: torch.device, scaled: bool, agree: Callable[[bool], bool] = bool):
        self.device, self.scaled, self.agree = device, scaled, agree
        self.first = torch.full((), -1, dtype=torch.int64, device=device)
        self.streak = torch.zeros((), dtype=torch.int64, device=device)
        self.streak_start = torch.zeros((), dtype=torch.int64, device=device)
        self.longest = torch.zeros((), dtype=torch.int64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Tally step `step`'s loss (device operations only: nothing waits for the GPU)."""
        bad = ~torch.isfinite(loss.detach())
        self.first = torch.where(bad & (self.first < 0), step, self.first)
        self.streak_start = torch.where(bad & (self.streak == 0), step, self.streak_start)
        self.streak = torch.where(bad, self.streak + 1, 0)
        self.longest = torch.maximum(self.longest, self.streak)
        self.count += bad

    def check(self) -> tuple[bool, int, int]:
        """(stop, first non-finite step or -1, how many) since the last check, agreed by every rank; with
        a scaler the first step is the current streak's. Reads the device once and starts a new tally
        (a streak carries on across checks)."""
        tally = torch.stack([self.first, self.longest, self.count, self.streak, self.streak_start]).tolist()
        first, longest, count, streak, streak_start = tally
        stop = self.agree(longest >= (SKIPPED_IN_A_ROW if self.scaled else 1))
        if self.scaled and streak:
            first = streak_start
        self.first = torch.full_like(self.first, -1)
        self.longest = self.streak.clone()
        self.count = torch.zeros_like(self.count)
        return stop, first, count
