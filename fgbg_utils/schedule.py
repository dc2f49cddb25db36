"""The training schedule: image size per step (progressive resizing), the data order (a seeded
permutation per epoch, reproducible across a resume), the step count calibrated from a time budget
and re-planned from the measured pace."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, Sampler, Subset

from .batch_augment import BatchAugmentation, batch_generator
from .optimization import (
    make_optimizer,
    optimizer_step,
)
from .precision import make_scaler
from .reproducibility import capture_rng, restore_rng

CALIBRATION_STEPS = 3

if TYPE_CHECKING:
    from .train import Run


CALIBRATION_SHARE = 0.02
"""At most this share of the budget goes into timing steps (past one warm-up and one timed step per
size): for a slow network, three timed steps per size would eat much of a short budget."""


TIME_BUDGET_SHARE = 0.9
"""Share of `minutes` given to optimizer steps when `steps` is derived (the rest: validation, saving)."""


def size_at(step: int, steps: int, sizes: tuple[int, ...]) -> int:
    """The image size of optimizer step `step` (0-based): equal shares of `steps`, in order."""
    return sizes[min(len(sizes) - 1, step * len(sizes) // steps)]


def next_size_change(step: int, steps: int, sizes: tuple[int, ...]) -> int:
    """The first step after `step` that uses another size (or `steps` when none does)."""
    current = size_at(step, steps, sizes)
    for later in range(step + 1, steps):
        if size_at(later, steps, sizes) != current:
            return later
    return steps


def replanned_steps(
    step: int, steps: int, sizes: tuple[int, ...], costs: tuple[float, ...], pace: float, left: float
) -> int:
    """The largest total number of steps whose remaining ones fit the `left` seconds.

    `costs` are the calibrated seconds of a step at each size (their ratios are what matter) and
    `pace` the measured seconds per unit of that cost so far (validation and saving included, so
    they are budgeted too). The calibration times bare steps on one batch; a real loop also loads
    data (a loader worker shares the cores), validates and saves, so the first plan can be a third
    too long, and a run stopped by its budget would end with its learning rate still high.
    Re-planning keeps the one-cycle schedule ending on time. The new total never sends the size
    schedule back to an earlier (smaller) size, and leaves at least one step to run.
    """
    cost = np.asarray(costs, dtype=np.float64)
    index = sizes.index(size_at(step, steps, sizes))

    def needed(total: int) -> float:
        later = np.arange(step, total)
        return float(cost[np.minimum(len(sizes) - 1, later * len(sizes) // total)].sum()) * pace

    low, high = step + 1, step + 2 + int(left / (pace * cost.min()))
    if index > 0:  # size_at(step, total) keeps `index` while step * len(sizes) // total >= index
        high = min(high, step * len(sizes) // index)
    high = max(high, low)
    while low < high:  # the largest total that fits (`needed` grows with the total)
        middle = (low + high + 1) // 2
        low, high = (middle, high) if needed(middle) <= left else (low, middle - 1)
    return low


def mix_seed(*parts: int) -> int:
    """A 32-bit seed that is a pure function of the integers given."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class EpochBatches(Sampler):
    """Batches of (dataset index, augmentation seed) for one epoch: a permutation seeded by
    (seed, epoch), cut to whole batches, sharded by rank, batches `start`..`stop` only.

    Resuming mid-epoch is slicing the same list, so the order never depends on history.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        epoch: int,
        start: int = 0,
        stop: int | None = None,
        rank: int = 0,
        world: int = 1,
    ):
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.rank, self.world = rank, world
        self.start, self.stop = start, batches_per_epoch(n, batch_size, world) if stop is None else stop

    def all_batches(self) -> list[list[tuple[int, int]]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        per_rank = batches_per_epoch(self.n, self.batch_size, self.world) * self.batch_size
        mine = order[: per_rank * self.world][self.rank :: self.world]
        pairs = [(int(i), mix_seed(self.seed, self.epoch, int(i))) for i in mine]
        return [pairs[b : b + self.batch_size] for b in range(0, per_rank, self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        yield from self.all_batches()[self.start : self.stop]

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def batches_per_epoch(n: int, batch_size: int, world: int = 1) -> int:
    """Whole batches per rank per epoch (the tail is dropped so every rank steps alike)."""
    return n // world // batch_size


class SeededSamples(Dataset):
    """Wraps a dataset so item (i, seed) reseeds the augmentation first: augmentation becomes a
    pure function of (seed, epoch, sample), whatever the workers or resume point."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        pipeline = getattr(getattr(_base(self.dataset), "transform", None), "pipeline", None)
        if pipeline is not None and hasattr(pipeline, "set_random_seed"):
            pipeline.set_random_seed(seed)
        return self.dataset[index]


class SeededBatches(Dataset):
    """`SeededSamples` for a `VirtualFgBgDataset` (or a Subset of one), a batch at a time: one batched
    composition on its device, then `augmentation` (if any) on that device, seeded by the batch's sample
    seeds; with a per-sample transform, one sample at a time, each after reseeding it, so the samples are
    those `SeededSamples` would give."""

    def __init__(self, dataset: Dataset, augmentation: BatchAugmentation | None = None):
        self.dataset, self.augmentation = dataset, augmentation

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, keys: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
        base = _base(self.dataset)
        rows = [self.dataset.indices[i] if isinstance(self.dataset, Subset) else i for i, _ in keys]
        pipeline = getattr(getattr(base, "transform", None), "pipeline", None)
        if pipeline is None or not hasattr(pipeline, "set_random_seed"):
            batch = base.batch(rows)
            if self.augmentation is None:
                return batch
            return self.augmentation(batch, batch_generator(*(seed for _, seed in keys)))
        samples = []
        for row, (_, seed) in zip(rows, keys, strict=True):
            pipeline.set_random_seed(seed)
            samples.append(base.batch([row]))
        return {key: torch.cat([sample[key] for sample in samples]) for key in samples[0]}


def _base(dataset: Dataset) -> Dataset:
    return dataset.dataset if isinstance(dataset, Subset) else dataset


def calibrate_steps(run: Run) -> int:
    """Steps that fit in TIME_BUDGET_SHARE of `minutes`: time a few steps at each size on a copy
    of the model, its optimizer and GradScaler (the real ones and the RNG streams stay untouched).
    Keeps the seconds per step at each size in `run.step_costs` for re-planning."""
    rng = capture_rng()
    started = time.perf_counter()
    model = copy.deepcopy(run.module).train()
    optimizer = make_optimizer(run.config, model)
    scaler = make_scaler(run.device, run.dtype)
    allowance = run.config.minutes * 60 * CALIBRATION_SHARE / len(run.sizes)
    seconds = [time_steps(run, model, optimizer, scaler, size, allowance) for size in run.sizes]
    run.step_costs = tuple(seconds)
    per_step = float(np.mean(seconds))
    restore_rng(rng)
    available = run.config.minutes * 60 * TIME_BUDGET_SHARE - (time.perf_counter() - started)
    steps = max(1, int(available / per_step))
    if run.ranks.active:  # every rank must agree on the schedule
        value = torch.tensor([steps], device=run.device)
        dist.broadcast(value, src=0)
        steps = int(value.item())
    return steps


def time_steps(
    run: Run,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    size: int,
    allowance: float = float("inf"),
) -> float:
    """Mean seconds of a training step at `size` after one warm-up step: up to CALIBRATION_STEPS
    timed steps, fewer once `allowance` seconds are spent (never fewer than one). Each step takes the
    next batch from a loader like the training one (its workers, augmentation and transfer) and runs
    `optimizer_step` (autocast, GradScaler, clipping), so the time is what a training step pays."""
    run.use_size(run.train_set, size, train=True)
    config, ranks = run.config, run.ranks
    count = min(CALIBRATION_STEPS + 1, run.per_epoch)
    sampler = EpochBatches(len(run.train_set), config.batch_size, config.seed, 0, 0, count, ranks.rank, ranks.world)
    timings: list[float] = []
    last = time.perf_counter()
    for batch in run.training_loader(sampler, seed=config.seed, persistent=False):
        optimizer_step(model, optimizer, scaler, run.loss, run.autocast, config, run.prepare(batch))
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        now = time.perf_counter()
        timings.append(now - last)  # from the previous step's end: the batch's loading included
        last = now
        if len(timings) >= 2 and sum(timings) > allowance:
            break
    return float(np.mean(timings[1:] or timings))
