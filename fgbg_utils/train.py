"""Training the fg/bg networks: a resumable loop with progressive resizing, OneCycleLR, mixed
precision, checkpoints that survive a kill, per-block timing, and DDP under torchrun.

Exact resume. Everything that decides the next step is a pure function of the config and the
checkpoint: the data order is a seeded permutation per epoch (`EpochBatches`, not DataLoader's
shuffle), augmentation is seeded per (seed, epoch, sample) (`SeededSamples`), and the
checkpoint holds the model, optimizer, scheduler, scaler, position (step, epoch, batch within
the epoch) and every RNG state. A run killed at any point and resumed from its last checkpoint
ends with the same weights as an uninterrupted run (CPU, `deterministic=True`).

Run folder (`out/`): ``config.json``, ``metrics.csv`` / ``metrics.json`` (one row per
validation), ``timing.json``, ``checkpoints/step_XXXXXXX.pt`` (the last `keep_last`),
``checkpoints/last.pt`` and ``checkpoints/best.pt``. Under DDP only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import io
import json
import math
import os
import pickle
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, Sampler, Subset
from tqdm.auto import tqdm

from .batch_augment import BatchAugmentation, batch_generator
from .data import FgBgDataset, VirtualFgBgDataset, _passthrough, evenly_spaced, make_loader
from .loss_guard import SKIPPED_IN_A_ROW, FiniteGuard
from .losses import FgBgLoss, LossWeights, NonFiniteLossError
from .manifest import read_manifest
from .metrics import MetricAccumulator
from .models import DEFAULT_MODEL, build_model, load_weights
from .precision import amp_dtype, autocast, make_scaler, precision_name, restore_scaler
from .runtime import choose_device, worker_context
from .store import INDEX_NAME, MANIFEST_NAME, atomic_path, sha256_file, write_bytes_atomic, write_json_atomic
from .transforms import BatchNormaliser, make_transforms, prepare_batch

SPLIT_FAMILIES = {"unseen": ("unseen_train", "unseen_test"), "random": ("train", "test")}
OPTIMIZERS = ("adamw", "adam", "sgd")
TIMED_BLOCKS = ("data", "forward", "loss", "backward", "optimizer")
CALIBRATION_STEPS = 3
TIMING_EVERY = 20
"""On CUDA one step in this many is timed block by block (each block's end waits for the GPU); the
others run unsynchronized. On the CPU, where nothing is queued, every step is timed."""
FINITE_CHECK_EVERY = 20
"""On CUDA the loss's finiteness is read back every this many steps (`FiniteGuard`); on the CPU at each."""
CALIBRATION_SHARE = 0.02
"""At most this share of the budget goes into timing steps (past one warm-up and one timed step per
size): for a slow network, three timed steps per size would eat much of a short budget."""
TIME_BUDGET_SHARE = 0.9
"""Share of `minutes` given to optimizer steps when `steps` is derived (the rest: validation, saving)."""
SESSION_FIELDS = (
    "data",
    "out",
    "minutes",
    "workers",
    "device",
    "checkpoint_every_steps",
    "checkpoint_every_minutes",
    "keep_last",
    "progress",
    "resume",
)
"""Config fields a resumed run may change; every other field comes from the checkpoint. `data` may
move (a Colab session copies the dataset to a new place) but must be the same dataset
(`dataset_identity`)."""


@dataclass
class TrainConfig:
    """One training run. Give `steps`, or `minutes` alone: then `steps` is calibrated at the start
    and re-planned at every checkpoint from the measured pace (`replanned_steps`)."""

    data: str
    out: str
    model: str = DEFAULT_MODEL
    split: str = "unseen"
    mode: str = "joint"
    loss_weights: dict[str, float] = field(default_factory=lambda: LossWeights().to_dict())
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    sizes: tuple[int, ...] = ()
    """Progressive resizing: equal shares of the steps at each size, in order; () = the dataset's size."""
    steps: int | None = None
    minutes: float | None = None
    """Wall-clock budget of this session: reaching it saves a checkpoint and stops (resume continues)."""
    grad_clip: float | None = 1.0
    """Largest gradient norm; 0 or None: no clipping."""
    amp: bool | None = None
    """None = on when CUDA is used (bf16 if supported, else fp16 with a GradScaler); never on CPU."""
    channels_last: bool = False
    augment: bool = True
    workers: int = 0
    seed: int = 0
    checkpoint_every_steps: int | None = None
    checkpoint_every_minutes: float | None = 10.0
    keep_last: int = 3
    val_samples: int | None = 256
    """Validate on this many samples spread evenly over the test split (every background), or all."""
    train_limit: int | None = None
    """Use only the first N training samples (overfitting checks)."""
    deterministic: bool = False
    device: str | None = None
    progress: bool = True
    resume: bool = False
    virtual: bool = False
    """Compose the training samples from bg/ and fg/ on the training device (`VirtualFgBgDataset`) instead
    of reading the shards: no loader workers on a GPU. Without augmentation a batch never leaves the device
    (resized, when `sizes` differ from the build's, by torch's antialiased bilinear), and augmentation is
    `BatchAugmentation` on that device. Validation reads the shards either way."""

    def validate(self) -> None:
        """Raise ValueError naming every option out of range, before a run writes anything (a
        negative batch size used to loop forever, a misspelt loss weight to fail with a traceback)."""
        at_least = {"batch_size": 1, "steps": 1, "keep_last": 0, "val_samples": 1, "train_limit": 1}
        at_least |= {"checkpoint_every_steps": 1, "workers": 0, "grad_clip": 0}
        problems = [
            f"{name} must be at least {low}, got {getattr(self, name)}"
            for name, low in at_least.items()
            if getattr(self, name) is not None and getattr(self, name) < low
        ]
        positive = ("minutes", "lr", "checkpoint_every_minutes")
        problems += [
            f"{name} must be above 0, got {getattr(self, name)}"
            for name in positive
            if getattr(self, name) is not None and not getattr(self, name) > 0
        ]
        if not self.weight_decay >= 0:
            problems.append(f"weight_decay must be 0 or more, got {self.weight_decay}")
        problems += [f"sizes: {size} is below 32 pixels" for size in self.sizes if size < 32]
        known = set(LossWeights().to_dict())
        unknown = sorted(set(self.loss_weights) - known)
        if unknown:
            problems.append(f"loss_weights: unknown {', '.join(unknown)}; the terms are {', '.join(sorted(known))}")
        problems += [
            f"loss_weights: {name} must be 0 or more, got {weight}"
            for name, weight in self.loss_weights.items()
            if not weight >= 0
        ]
        if problems:
            raise ValueError(f"{self.out}: not started: " + "; ".join(problems))

    def to_dict(self) -> dict:
        """JSON- and weights_only-safe: tuples become lists, paths strings."""
        out = asdict(self)
        out["sizes"] = list(self.sizes)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in values.items() if k in known})
        config.sizes = tuple(int(s) for s in config.sizes)
        return config


# --- schedule and data order ---------------------------------------------------------------


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


# --- global state ------------------------------------------------------------------------


def capture_rng() -> dict:
    """Every RNG state as tensors, ints and lists (loadable with weights_only=True); on CUDA the
    current GPU's only (a list of one): the next session may have another number of GPUs."""
    np_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [version, list(internal), gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = [torch.cuda.get_rng_state()]
    return state


def restore_rng(state: dict) -> None:
    """Put back the states `capture_rng` took. The saved CUDA states go to the current GPU only:
    its own index's when the list holds one per GPU (earlier revisions saved every GPU's), else
    the first, so a run saved on one GPU resumes on a machine with two, and the reverse."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if state.get("cuda") and torch.cuda.is_available():
        saved, current = state["cuda"], torch.cuda.current_device()
        torch.cuda.set_rng_state(saved[current] if current < len(saved) else saved[0], current)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def global_settings(config: TrainConfig, device: torch.device) -> Iterator[None]:
    """Determinism and denormal flushing for the run, restored afterwards (train() may run
    inside a notebook or a test session)."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_benchmark = torch.backends.cudnn.benchmark
    if config.deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(config.deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not config.deterministic
    # near-zero activations (e.g. bg == fg_bg differences) are denormals: 20x slower on CPU
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.backends.cudnn.benchmark = was_benchmark
        torch.set_flush_denormal(False)


# --- distributed -------------------------------------------------------------------------


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_distributed(requested: str | None) -> Distributed:
    """Join the process group when torchrun set WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = choose_device(requested)
    if world <= 1:
        return Distributed(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank=dist.get_rank(), world=world, device=device)


def any_rank(flag: bool, ranks: Distributed) -> bool:
    """True on every rank when it is true on one: time-based decisions must agree."""
    if not ranks.active:
        return flag
    value = torch.tensor([int(flag)], device=ranks.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def synchronize_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every rank: DDP broadcasts them at each
    forward, so after the last step the other ranks still hold their own."""
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def weights_digest(model: nn.Module) -> str:
    """sha256 of every tensor of the model's state dict, in order: equal digests = equal weights."""
    return state_digest(model.state_dict())


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of every tensor of a state dict (a checkpoint's ``model``), in order."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --- building blocks -----------------------------------------------------------------------


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, step: int = 0):
    """OneCycleLR over `config.steps`, positioned after `step` steps (a re-planned schedule takes
    over at the step reached; its learning rate and momentum are set for that step)."""
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps)
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


# --- checkpoints ---------------------------------------------------------------------------


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def step_checkpoint(out: str | Path, step: int) -> Path:
    return checkpoint_dir(out) / f"step_{step:07d}.pt"


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to a temporary file renamed when whole: a kill never leaves half a file."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def copy_checkpoint(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint's contents, loaded with ``weights_only=True`` (tensors and plain data only).

    Anything else (a folder, a file cut short, another program's file, a bare ``state_dict``) is a
    ValueError naming the path; torch's own advice to retry with ``weights_only=False`` is not passed
    on, since that would run whatever the file holds.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: a folder, not a checkpoint file (for a run: RUN/checkpoints/last.pt)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError:  # missing, unreadable: the CLI names the path
        raise
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, IndexError… by format
        text = str(error).strip()
        if isinstance(error, pickle.UnpicklingError) and text.startswith("Weights only load failed"):
            reason = "it does not hold only tensors and plain data"
        else:
            reason = text.splitlines()[0][:200] if text else type(error).__name__
        raise ValueError(f"{path}: not a readable checkpoint (cut short, or not made by this kit): {reason}") from None
    if not isinstance(state, dict) or not {"config", "model"} <= state.keys():
        raise ValueError(
            f"{path}: not a checkpoint of this kit (no 'config' and 'model'; a bare state_dict cannot say "
            "which network it is for): save runs with python -m fgbg_utils train"
        )
    return state


def set_aside_previous_checkpoints(out: str | Path) -> Path | None:
    """Move another run's checkpoints out of the way of a fresh run into the same folder.

    Left in place, the old run's newest step file would outrank the new run's (a 959-step run,
    then a fresh 724-step one) and be taken as its latest. They go to ``checkpoints.previous``
    (replacing an older set there, so repeated runs do not fill the disk); returns that folder,
    or None when there was nothing to move.
    """
    current = checkpoint_dir(out)
    if not current.is_dir() or not any(current.iterdir()):
        return None
    previous = current.with_name("checkpoints.previous")
    shutil.rmtree(previous, ignore_errors=True)
    current.rename(previous)
    return previous


def saved_step(path: Path) -> int | None:
    """The step a checkpoint file was saved at; None if it is missing or unreadable."""
    try:
        return load_checkpoint(path)["step"] if path.exists() else None
    except ValueError:
        return None


def prune_checkpoints(out: str | Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` step checkpoints (last.pt and best.pt stay)."""
    steps = sorted(checkpoint_dir(out).glob("step_*.pt"))
    for old in steps[: max(0, len(steps) - keep_last)]:
        old.unlink(missing_ok=True)


def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest step checkpoint (each is written whole before last.pt is copied from it, so a
    run killed in between has a newer step file than last.pt), else last.pt, else None."""
    steps = sorted(checkpoint_dir(out).glob("step_*.pt"))
    if steps:
        return steps[-1]
    last = checkpoint_dir(out) / "last.pt"
    return last if last.exists() else None


# --- the run -----------------------------------------------------------------------------


GEOMETRIC_TERMS = ("depth_ground", "depth_horizon")
"""Loss terms whose targets read the depth map as the builder's geometric ground (`losses.ground_target`,
`losses.horizon_from_depth`)."""


def fit_loss_weights(config: TrainConfig, manifest: dict) -> list[str]:
    """Set the `GEOMETRIC_TERMS` weights to 0 in `config` when the dataset's depth is not drawn from the
    ground-plane model (`geometric`, or its `prior` for photos) but, say, imported or from MiDaS; return
    the terms turned off.

    Their targets assume inverse depth that is exactly linear in the row over flat ground and constant up
    an upright thing. Relative depth from a network is smooth across both, so those targets would be
    noise: every pixel "ground", a horizon wherever the map's values reach 0.
    """
    if manifest["generation"].get("depth", {}).get("source") in ("geometric", "prior"):
        return []
    turned_off = [name for name in GEOMETRIC_TERMS if config.loss_weights.get(name, 0) > 0]
    config.loss_weights = {**config.loss_weights, **dict.fromkeys(turned_off, 0.0)}
    return turned_off


@dataclass
class Position:
    step: int = 0
    epoch: int = 0
    batch: int = 0
    """Batches of `epoch` already trained on (this rank's share)."""


class Run:
    """The state of one training session: model, optimizer, data, logs. `train` drives it."""

    def __init__(self, config: TrainConfig, ranks: Distributed):
        self.config, self.ranks, self.device = config, ranks, ranks.device
        self.out = Path(config.out)
        manifest = read_manifest(Path(config.data))
        turned_off = fit_loss_weights(config, manifest)  # on every rank: they must train the same loss
        if ranks.main and turned_off:
            print(f"{config.data}: depth not drawn from the ground geometry; loss terms off: {', '.join(turned_off)}")
        self.stats = manifest["statistics"]
        self.dataset = dataset_identity(Path(config.data), manifest)
        self.normaliser = BatchNormaliser(self.stats).to(self.device)
        self.sizes = config.sizes or (int(manifest["generation"]["parameters"]["size"]),)
        train_split, self.val_split = split_names(config.split)
        self.train_set = limited(self.training_samples(train_split), config.train_limit)
        self.val_set = evenly_spaced(FgBgDataset(config.data, self.val_split), config.val_samples)
        self.per_epoch = batches_per_epoch(len(self.train_set), config.batch_size, ranks.world)
        if self.per_epoch == 0:
            raise ValueError(
                f"{train_split}: {len(self.train_set)} samples, fewer than batch_size={config.batch_size} per rank"
            )
        seed_everything(config.seed)
        self.model = build_model(config.model).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss = FgBgLoss(LossWeights(**config.loss_weights), mode=config.mode)
        self.dtype = amp_dtype(self.device, config.amp)
        self.finite_every = finite_check_interval(self.device)
        # the loss's own check reads the loss back at once and raises on this rank alone: only where every
        # step is checked, without a GradScaler (which skips overflows) and without other ranks
        self.loss.check_finite = self.finite_every == 1 and self.dtype != torch.float16 and not ranks.active
        self.loaders: dict[int, tuple[torch.utils.data.DataLoader, EpochBatches]] = {}
        """The training loader of the current size and its re-plannable sampler (`loader`)."""
        self.position = Position()
        self.rows: list[dict] = []
        self.best: float | None = None
        self.best_step: int | None = None
        self.running: dict[str, torch.Tensor] = {}
        self.running_steps = 0
        self.last_saved: Path | None = None
        self.step_costs: tuple[float, ...] = ()
        """Calibrated seconds per step at each size; set when `steps` was calibrated, which turns
        on re-planning at every checkpoint (`replanning`)."""
        self.cost_done = 0.0
        """Sum of `step_costs` over the steps of this session (for the measured pace)."""

    def training_samples(self, split: str) -> Dataset:
        """The training split: read from the shards, or composed on the device (`TrainConfig.virtual`)."""
        if self.config.virtual:
            return VirtualFgBgDataset(self.config.data, split, device=self.device, output="uint8")
        return FgBgDataset(self.config.data, split)

    @property
    def virtual(self) -> bool:
        return isinstance(_base(self.train_set), VirtualFgBgDataset)

    @property
    def replanning(self) -> bool:
        """A session whose steps were calibrated (from `minutes`) re-plans them at each checkpoint."""
        return bool(self.step_costs)

    @property
    def module(self) -> nn.Module:
        """The bare model (not the DDP wrapper): what checkpoints hold and validation runs."""
        return self.model.module if isinstance(self.model, nn.parallel.DistributedDataParallel) else self.model

    def prepare_optimization(self) -> None:
        self.optimizer = make_optimizer(self.config, self.model)
        self.scheduler = make_scheduler(self.config, self.optimizer)
        self.scaler = make_scaler(self.device, self.dtype)
        self.guard = FiniteGuard(self.device, self.scaler.is_enabled(), lambda flag: any_rank(flag, self.ranks))
        if self.ranks.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.dtype)

    def use_size(self, dataset: Dataset, size: int, train: bool) -> None:
        base, augment = _base(dataset), train and self.config.augment
        if isinstance(base, VirtualFgBgDataset):  # composed and resized on the device, augmented by SeededBatches
            base.transform, base.size = None, size
            return
        base.transform = make_transforms(size, train=augment, stats=self.stats, output="uint8")

    def loader(self, size: int, stop_step: int):
        """Batches from the current position to the end of the epoch, the next size change or
        `stop_step`, whichever comes first. One loader per size: a later call at the same size moves
        its sampler on and iterates it again, so persistent workers survive epochs and re-plans."""
        config, position = self.config, self.position
        stop = min(self.per_epoch, position.batch + stop_step - position.step)
        if size in self.loaders:
            loader, sampler = self.loaders[size]
            sampler.epoch, sampler.start, sampler.stop = position.epoch, position.batch, stop
            return loader
        self.close_loaders()  # sizes only grow: the previous size's workers are done
        sampler = EpochBatches(
            len(self.train_set),
            config.batch_size,
            config.seed,
            position.epoch,
            position.batch,
            stop,
            self.ranks.rank,
            self.ranks.world,
        )
        self.use_size(self.train_set, size, train=True)
        seed = mix_seed(config.seed, position.epoch, position.batch, self.ranks.rank)
        loader = self.training_loader(sampler, seed=seed)
        self.loaders[size] = (loader, sampler)
        return loader

    def training_loader(self, sampler: Sampler, seed: int, persistent: bool = True):
        """A loader of the training samples in `sampler`'s batches (seeded augmentation). A dataset
        composed on a GPU is fetched in this process: CUDA cannot be used in forked workers."""
        workers = 0 if self.virtual and self.device.type == "cuda" else self.config.workers
        options = {"collate_fn": _passthrough, "pin_memory": False} if self.virtual else {}
        return make_loader(
            SeededBatches(self.train_set, BatchAugmentation() if self.config.augment else None)
            if self.virtual
            else SeededSamples(self.train_set),
            batch_size=1,
            workers=workers,
            device=self.device,
            seed=seed,
            multiprocessing_context=worker_context() if workers > 0 else None,
            persistent_workers=persistent and workers > 0,
            batch_sampler=sampler,
            **options,
        )

    def close_loaders(self) -> None:
        """Let go of the training loaders (their persistent workers stop)."""
        self.loaders.clear()

    def step(self, batch: dict, timer: StepTimer) -> None:
        """One optimizer step, timed by block (`StepTimer`), its loss watched by `guard`."""
        parts = optimizer_step(
            self.model, self.optimizer, self.scaler, self.loss, self.autocast, self.config, self.prepare(batch), timer
        )
        self.guard.observe(parts["total"], self.position.step)
        self.scheduler.step()
        timer.mark("optimizer")
        for name, value in parts.items():
            self.running[name] = self.running.get(name, 0.0) + value
        self.running_steps += 1

    def prepare(self, batch: dict) -> dict:
        return to_device(batch, self.device, self.config.channels_last, self.normaliser)

    def check_finite(self, force: bool = False) -> None:
        """After step `position.step`: raise NonFiniteLossError (on every rank at once) when `guard`
        says the losses since its last check are an error; checks every `finite_every` steps, or now
        when `force`."""
        if not force and (self.position.step + 1) % self.finite_every:
            return
        stop, first, count = self.guard.check()
        if not stop:
            return
        what = (
            f"non-finite loss first at step {first} ({count} since the last check)"
            if first >= 0
            else "non-finite loss on another rank"
        )
        if self.scaler.is_enabled():
            what += f", {SKIPPED_IN_A_ROW} in a row: the GradScaler skipped them and the loss stayed non-finite"
        raise NonFiniteLossError(f"{what} (check the inputs, the learning rate, and mixed precision)", [], [])

    @torch.no_grad()
    def validate(self, size: int) -> dict:
        """Metrics of the bare model on the (capped) validation split at `size`."""
        self.use_size(self.val_set, size, train=False)
        loader = make_loader(self.val_set, batch_size=self.config.batch_size, workers=0, device=self.device)
        accumulator = MetricAccumulator(self.val_split, mask_from="probs")
        model = self.module.eval()
        for batch in loader:
            batch = to_device(batch, self.device, self.config.channels_last, self.normaliser)
            with self.autocast():
                outputs = model(batch["bg"], batch["fg_bg"])
            accumulator.update(task_outputs(outputs, self.config.mode), batch)
        return accumulator.summary()

    def record(self, size: int) -> dict:
        """Validate (rank 0 only), append a metrics row and return it; resets the running train losses."""
        if not self.ranks.main:
            self.running, self.running_steps = {}, 0
            return {}
        steps = max(self.running_steps, 1)
        train = {f"train_{k}": float(v) / steps for k, v in self.running.items()}
        val = {f"val_{k}": v for k, v in self.validate(size).items()}
        row = {"step": self.position.step, "epoch": self.position.epoch, "size": size, **train, **val}
        self.rows.append(row)
        self.running, self.running_steps = {}, 0
        return row

    def payload(self) -> dict:
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "precision": precision_name(self.dtype),
            "step": self.position.step,
            "epoch": self.position.epoch,
            "batch_in_epoch": self.position.batch,
            "rng": capture_rng(),
            "best": self.best,
            "best_step": self.best_step,
            "rows": self.rows,
            "config": self.config.to_dict(),
            "dataset": self.dataset,
        }

    def checkpoint(self, size: int) -> dict:
        """Validate, then (rank 0) write step, last and maybe best checkpoints and the logs."""
        row = self.record(size)
        if not self.ranks.main:
            return row
        better = improved(row, self.best, self.config.mode)
        if better:
            self.best, self.best_step = row[best_key(self.config.mode)], self.position.step
        path = step_checkpoint(self.out, self.position.step)
        save_checkpoint(path, self.payload())
        self.publish(path, better)
        self.last_saved = path
        return row

    def restore(self, path: Path, checkpoint: dict) -> None:
        """Continue from `checkpoint` (read from `path`): weights from another revision of the network
        are refused with a message naming `path`, before anything is written."""
        load_weights(self.module, checkpoint["model"], path, self.config.model)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        changed = restore_scaler(
            self.scaler, checkpoint.get("scaler"), checkpoint.get("precision"), precision_name(self.dtype)
        )
        if changed and self.ranks.main:
            print(f"{path}: {changed}", flush=True)
        self.position = Position(checkpoint["step"], checkpoint["epoch"], checkpoint["batch_in_epoch"])
        self.best = checkpoint["best"]
        rows = checkpoint.get("rows")  # absent from checkpoints of earlier revisions, as is best_step
        self.rows = (
            rows if rows is not None else [row for row in read_metrics(self.out) if row["step"] <= self.position.step]
        )
        self.best_step = checkpoint["best_step"] if "best_step" in checkpoint else self.step_of_best()
        restore_rng(checkpoint["rng"])
        if self.ranks.main:  # finish what a kill after the step file was written left undone
            self.publish(path, self.best_step == self.position.step, only_missing=True)

    def step_of_best(self) -> int | None:
        """The step whose validation set `best`: the last earlier logged row with that score, else
        this checkpoint's own step (for checkpoints that do not record it)."""
        if self.best is None:
            return None
        key = best_key(self.config.mode)
        earlier = [row["step"] for row in self.rows if row["step"] < self.position.step and row.get(key) == self.best]
        return earlier[-1] if earlier else self.position.step

    def publish(self, path: Path, best: bool, only_missing: bool = False) -> None:
        """After step file `path` is written: copy it to last.pt (and to best.pt when `best`), prune
        the step files, rewrite the logs. `only_missing` leaves a copy that already holds this step."""
        folder = checkpoint_dir(self.out)
        for target, wanted in ((folder / "last.pt", True), (folder / "best.pt", best)):
            if not wanted or target == path or (only_missing and saved_step(target) == self.position.step):
                continue
            copy_checkpoint(path, target)
        prune_checkpoints(self.out, self.config.keep_last)
        write_metrics(self.out, self.rows)

    def advance(self) -> None:
        self.position.step += 1
        self.position.batch += 1
        if self.position.batch >= self.per_epoch:
            self.position.epoch += 1
            self.position.batch = 0


def split_names(family: str) -> tuple[str, str]:
    """(train split, validation split) of a split family."""
    if family not in SPLIT_FAMILIES:
        raise ValueError(f"unknown split {family!r}: choose one of {', '.join(SPLIT_FAMILIES)}")
    return SPLIT_FAMILIES[family]


def limited(dataset: Dataset, count: int | None) -> Dataset:
    """The first `count` samples (an overfitting check), or all."""
    return Subset(dataset, range(min(count, len(dataset)))) if count else dataset


def task_outputs(outputs: dict, mode: str) -> dict:
    """The trained heads' outputs for the metrics: mask as probabilities, depth in float32."""
    result = {}
    if mode in ("joint", "mask"):
        result["mask"] = torch.sigmoid(outputs["mask"].float())
    if mode in ("joint", "depth"):
        result["depth"] = outputs["depth"].float()
    return result


def best_key(mode: str) -> str:
    return "val_depth_rmse" if mode == "depth" else "val_mask_iou"


def improved(row: dict, best: float | None, mode: str) -> bool:
    value = row.get(best_key(mode))
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best if mode == "depth" else value > best


def read_metrics(out: Path) -> list[dict]:
    path = Path(out) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else []


def write_metrics(out: Path, rows: list[dict]) -> None:
    """metrics.json and metrics.csv, both rewritten whole and atomically."""
    write_json_atomic(Path(out) / "metrics.json", rows)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(Path(out) / "metrics.csv", text.getvalue().encode())


# --- calibration ---------------------------------------------------------------------------


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


# --- entry point ---------------------------------------------------------------------------


def dataset_identity(root: Path, manifest: dict) -> dict:
    """What makes two dataset folders the same dataset (for a resume on a moved copy, and for knowing
    which samples a checkpoint trained on): build settings, sample count and the sha256 of index.csv,
    whose rows fix every sample's background, foreground, flip and box. A copy keeps them, and so does
    the same course folder imported twice (its shards' own sha256 would not: they record the source
    path); two imports of other pictures of the same shape do not."""
    return {
        "parameters": manifest["generation"]["parameters"],
        "samples": manifest["counts"]["samples"],
        "index_sha256": sha256_file(Path(root) / INDEX_NAME),
    }


def trained_on(checkpoint: dict, root: Path, manifest: dict) -> bool | None:
    """Whether `checkpoint` was trained on the dataset in `root`; None when it cannot tell (a
    checkpoint that records no `dataset_identity`, whose dataset folder is not where it was)."""
    record = checkpoint.get("dataset", {})
    if "index_sha256" in record:
        return record == dataset_identity(root, manifest)
    stored, here = Path(checkpoint["config"]["data"]), Path(root).resolve()
    if not stored.is_absolute() and here.parts[-len(stored.parts) :] == stored.parts:
        return True  # the same relative path, from another working folder
    if not (stored / MANIFEST_NAME).exists():
        return None
    return stored.resolve() == here or dataset_identity(stored, read_manifest(stored)) == dataset_identity(
        root, manifest
    )


def options_a_resume_would_ignore(
    config: TrainConfig, stored: dict, manifest: dict, given: set[str] | None = None
) -> list[str]:
    """The options of `config` that differ from the run's (`stored`): a resume takes those from the
    checkpoint, so they would be dropped unseen. `given` limits the check to the options written
    on a command line; from Python, every field counts (``steps=None`` stands for the run's)."""
    mine, theirs = (replace(c, loss_weights=dict(c.loss_weights)) for c in (config, TrainConfig.from_dict(stored)))
    for fitted in (mine, theirs):  # compared as trained: the run's weights were fitted to this dataset
        fit_loss_weights(fitted, manifest)
    mine_values, their_values = mine.to_dict(), theirs.to_dict()
    return [
        f"{name} {mine_values[name]!r} (the run's: {their_values[name]!r})"
        for name in mine_values
        if name not in SESSION_FIELDS
        and (given is None or name in given)
        and not (name == "steps" and mine_values[name] is None)
        and mine_values[name] != their_values[name]
    ]


def resolve_config(
    config: TrainConfig, resume: bool, given: set[str] | None = None
) -> tuple[TrainConfig, tuple[Path, dict] | None]:
    """The config to run and the checkpoint to continue from (its path and contents): on resume the
    checkpoint's config wins except for SESSION_FIELDS, so the schedule cannot drift; another
    dataset, or options set otherwise (`options_a_resume_would_ignore`), are refused rather than
    silently dropped."""
    config.validate()
    if not resume:
        if config.steps is None and config.minutes is None:
            raise ValueError("give steps or minutes")
        return config, None
    path = latest_checkpoint(config.out)
    if path is None:
        raise FileNotFoundError(f"{checkpoint_dir(config.out)}: no checkpoint to resume from")
    checkpoint = load_checkpoint(path)
    manifest = read_manifest(Path(config.data))
    same = trained_on(checkpoint, Path(config.data), manifest)
    if same is False:
        raise ValueError(
            f"{config.data}: not the dataset {path} was trained on (other build settings, sample count or "
            "index.csv); resume on that dataset"
        )
    if same is None:
        raise ValueError(
            f"{path} was trained on {checkpoint['config']['data']} (relative paths: to the folder the run "
            "started in), which is not there, and (saved by an earlier revision) it cannot tell whether this is "
            "the same dataset: put the dataset back there"
        )
    if ignored := options_a_resume_would_ignore(config, checkpoint["config"], manifest, given):
        raise ValueError(
            f"{config.out}: a resume continues the run as it was configured, and these options differ from it: "
            f"{'; '.join(ignored)}. Give the run's values (or leave them out on the command line), or start a "
            "new run (another --out) to change them"
        )
    merged = checkpoint["config"] | {name: getattr(config, name) for name in SESSION_FIELDS}
    return TrainConfig.from_dict(merged), (path, checkpoint)


def train(config: TrainConfig, resume: bool | None = None, given: set[str] | None = None) -> dict:
    """Train as `config` says and return a summary: steps, minutes, stop reason, final and best
    metrics, the weights' sha256. `resume` (or `config.resume`) continues from out/checkpoints;
    `given` names the options a command line wrote out (see `options_a_resume_would_ignore`)."""
    started = time.perf_counter()
    config, resume_from = resolve_config(config, config.resume if resume is None else resume, given)
    ranks = start_distributed(config.device)
    try:
        with global_settings(config, ranks.device):
            return run_training(config, resume_from, ranks, started)
    finally:
        if ranks.active:
            dist.destroy_process_group()


def run_training(
    config: TrainConfig, resume_from: tuple[Path, dict] | None, ranks: Distributed, started: float
) -> dict:
    run = Run(config, ranks)
    if config.steps is None:
        config.steps = calibrate_steps(run)
    run.prepare_optimization()
    if resume_from is not None:
        run.restore(*resume_from)
    if ranks.main:
        run.out.mkdir(parents=True, exist_ok=True)
        if resume_from is None and (previous := set_aside_previous_checkpoints(run.out)) is not None:
            print(f"{run.out}: a fresh run; the checkpoints already there were moved to {previous}")
        write_json_atomic(run.out / "config.json", config.to_dict())
    timer = StepTimer(ranks.device)
    stopped = loop(run, timer, started)
    size = size_at(max(run.position.step - 1, 0), config.steps, run.sizes)
    if not run.rows or run.rows[-1]["step"] != run.position.step:
        run.checkpoint(size)
    return finish(run, timer, stopped, started)


def loop(run: Run, timer: StepTimer, started: float) -> str:
    """Train until `steps` ("steps") or the session's `minutes` ("minutes"); checkpoints on the
    way (re-planning the steps at each when `run.replanning`). A non-finite loss raises
    NonFiniteLossError naming the step and the last checkpoint; the losses are checked before every
    checkpoint and at the end, so no checkpoint holds weights a non-finite loss reached."""
    config = run.config
    last_save = looping = time.perf_counter()
    saving = 0.0  # seconds the last checkpoint took (validation included)
    bar = tqdm(total=config.steps, initial=run.position.step, disable=not (config.progress and run.ranks.main))
    try:
        while run.position.step < config.steps:
            size = size_at(run.position.step, config.steps, run.sizes)
            stop = next_size_change(run.position.step, config.steps, run.sizes)
            timer.restart()
            for batch in run.loader(size, stop):
                run.step(batch, timer)
                run.check_finite()
                timer.end_step()
                if run.replanning:
                    run.cost_done += run.step_costs[run.sizes.index(size)]
                run.advance()
                bar.update(1)
                if due(run, last_save):
                    run.check_finite(force=True)
                    # re-planned before saving, so a resume from this checkpoint follows the new plan
                    replanned = run.replanning and replan(run, time.perf_counter() - looping, started, 2 * saving)
                    saving_from = time.perf_counter()
                    run.checkpoint(size)
                    last_save = time.perf_counter()
                    saving = last_save - saving_from
                    timer.restart()
                    if replanned:
                        bar.total = config.steps
                        bar.refresh()
                        break  # the size schedule may have moved: a new loader
                if over_budget(run, started):
                    run.check_finite(force=True)
                    return "minutes"
        run.check_finite(force=True)
    except NonFiniteLossError as error:
        raise non_finite(error, run) from error
    finally:
        bar.close()
        run.close_loaders()
    return "steps"


def replan(run: Run, spent: float, started: float, reserve: float) -> bool:
    """Fit `config.steps` (of a fresh session) to the rest of its budget less `reserve` seconds
    (the checkpoint about to be written and the final one), moving the LR schedule with it;
    True if the plan changed. `spent`: seconds since the loop began."""
    config = run.config
    left = config.minutes * 60 - (time.perf_counter() - started) - reserve
    steps = replanned_steps(run.position.step, config.steps, run.sizes, run.step_costs, spent / run.cost_done, left)
    if run.ranks.active:  # every rank must agree on the schedule
        value = torch.tensor([steps], device=run.device)
        dist.broadcast(value, src=0)
        steps = int(value.item())
    if steps == config.steps:
        return False
    previous, config.steps = config.steps, steps
    if run.ranks.main:
        print(f"step {run.position.step}: re-planned to {steps} steps (was {previous}) to end on time", flush=True)
        write_json_atomic(run.out / "config.json", config.to_dict())
    run.scheduler = make_scheduler(config, run.optimizer, run.position.step)
    return True


def due(run: Run, last_save: float) -> bool:
    config, step = run.config, run.position.step
    by_steps = bool(config.checkpoint_every_steps) and step % config.checkpoint_every_steps == 0 and step < config.steps
    if config.checkpoint_every_minutes is None:
        return by_steps
    late = time.perf_counter() - last_save >= config.checkpoint_every_minutes * 60
    return any_rank(late, run.ranks) or by_steps


def over_budget(run: Run, started: float) -> bool:
    if run.config.minutes is None or run.position.step >= run.config.steps:
        return False
    return any_rank(time.perf_counter() - started >= run.config.minutes * 60, run.ranks)


def non_finite(error: NonFiniteLossError, run: Run) -> NonFiniteLossError:
    """The loss's error with where it happened and what is safe to resume from."""
    saved = f"last good checkpoint: {run.last_saved}" if run.last_saved else "no checkpoint was written"
    message = f"step {run.position.step}: {error}; stopped without saving ({saved})"
    return NonFiniteLossError(message, error.parts, error.inputs)


def finish(run: Run, timer: StepTimer, stopped: str, started: float) -> dict:
    """Timing table, buffers made equal across ranks, the summary."""
    if run.ranks.active:
        synchronize_buffers(run.module)
    digest = weights_digest(run.module)
    timing = timer.table(run.config.batch_size)
    minutes = (time.perf_counter() - started) / 60
    if run.ranks.main:
        write_json_atomic(run.out / "timing.json", timing)
        print_timing(timing)
    print(f"rank {run.ranks.rank} weights sha256 {digest}", flush=True)
    return {
        "steps": run.position.step,
        "epoch": run.position.epoch,
        "minutes": minutes,
        "stopped": stopped,
        "final": run.rows[-1] if run.rows else {},
        "best": run.best,
        "weights_sha256": digest,
        "rank": run.ranks.rank,
        "world_size": run.ranks.world,
        "out": str(run.out),
    }
