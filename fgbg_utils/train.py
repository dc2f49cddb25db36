"""Training the fg/bg networks: the run (`Run`) and its loop, resumable, within a time budget.

Exact resume. Everything that decides the next step is a pure function of the config and the
checkpoint: the data order and augmentation are seeded (`schedule`), and the checkpoint holds the
model, optimizer, scheduler, scaler, position (step, epoch, batch within the epoch) and every RNG
state (`reproducibility`). A run killed at any point and resumed from its last checkpoint ends with
the same weights as an uninterrupted run (CPU, `deterministic=True`). Beside this module:
`train_config` (what was asked), `schedule` (sizes, data order, calibration and re-planning),
`optimization` (one step), `checkpoints`, `resume` (the resume policy), `distributed` (DDP),
`run_logs` (metrics rows) and `tensorboard_log`.

Run folder (`out/`): ``config.json``, ``metrics.csv`` / ``metrics.json`` (one row per
validation), ``timing.json``, ``checkpoints/step_XXXXXXX.pt`` (the last `keep_last`),
``checkpoints/last.pt``, ``checkpoints/best.pt`` and ``tensorboard/``. Under DDP only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, Sampler, Subset

from .batch_augment import BatchAugmentation
from .checkpoints import (
    CHECKPOINT_FORMAT,
    checkpoint_dir,
    copy_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    saved_step,
    set_aside_previous_checkpoints,
    step_checkpoint,
    weights_digest,
)
from .data import FgBgDataset, evenly_spaced
from .dataset_info import DatasetInfo
from .distributed import Distributed, any_rank, start_distributed, synchronize_buffers
from .loaders import make_loader, whole_batches
from .loss_guard import SKIPPED_IN_A_ROW, FiniteGuard
from .losses import FgBgLoss, LossWeights, NonFiniteLossError
from .metrics import MetricAccumulator
from .models import build_model, load_weights
from .optimization import (
    StepTimer,
    finite_check_interval,
    make_optimizer,
    make_scheduler,
    optimizer_step,
    print_timing,
    to_device,
)
from .precision import amp_dtype, autocast, make_scaler, precision_name, restore_scaler
from .progress import progress_bar
from .reproducibility import capture_rng, global_settings, restore_rng, seed_everything
from .resume import resolve_config
from .run_logs import best_key, improved, write_metrics
from .runtime import worker_context
from .schedule import (
    EpochBatches,
    SeededBatches,
    SeededSamples,
    _base,
    batches_per_epoch,
    calibrate_steps,
    mix_seed,
    next_size_change,
    replanned_steps,
    size_at,
)
from .store import write_json_atomic
from .tensorboard_log import PREVIEW_SAMPLES, TrainingBoard, board_dir
from .train_config import TrainConfig, TrainingPlan, split_names
from .transforms import BatchNormaliser, make_transforms
from .virtual_dataset import VirtualFgBgDataset

# --- the run -----------------------------------------------------------------------------


@dataclass
class Position:
    step: int = 0
    epoch: int = 0
    batch: int = 0
    """Batches of `epoch` already trained on (this rank's share)."""


class Run:
    """The state of one training session: model, optimizer, data, logs. `train` drives it."""

    def __init__(
        self, config: TrainConfig, ranks: Distributed, info: DatasetInfo, plan: TrainingPlan | None = None
    ) -> None:
        self.config, self.ranks, self.device, self.info = config, ranks, ranks.device, info
        self.out = Path(config.out)
        self.plan = plan or TrainingPlan.make(config, info)[0]
        """What the run worked out (steps, fitted loss weights, sizes): from its checkpoint on a resume."""
        self.stats = info.statistics
        self.dataset = info.identity
        self.normaliser = BatchNormaliser(self.stats).to(self.device)
        self.sizes = self.plan.sizes
        train_split, self.val_split = split_names(config.split)
        self.train_set = limited(self.training_samples(train_split), config.train_limit)
        self.val_set = evenly_spaced(FgBgDataset(info, self.val_split), config.val_samples)
        self.per_epoch = batches_per_epoch(len(self.train_set), config.batch_size, ranks.world)
        if self.per_epoch == 0:
            raise ValueError(
                f"{train_split}: {len(self.train_set)} samples, fewer than batch_size={config.batch_size} per rank"
            )
        seed_everything(config.seed)
        self.model = build_model(config.model).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss = FgBgLoss(LossWeights(**self.plan.loss_weights), mode=config.mode)
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
        self.board = TrainingBoard()
        """Writes nothing until `run_training` opens the run's (on rank 0)."""

    def training_samples(self, split: str) -> Dataset:
        """The training split: read from the shards, or composed on the device (`TrainConfig.virtual`)."""
        if self.config.virtual:
            return VirtualFgBgDataset(self.info, split, device=self.device, output="uint8")
        return FgBgDataset(self.info, split)

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
        self.scheduler = make_scheduler(self.config, self.plan.steps, self.optimizer)
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
        options = {"collate_fn": whole_batches, "pin_memory": False} if self.virtual else {}
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

    def step(self, batch: dict, timer: StepTimer) -> dict[str, torch.Tensor]:
        """One optimizer step, timed by block (`StepTimer`), its loss watched by `guard`; returns its
        loss terms (detached tensors)."""
        parts = optimizer_step(
            self.model, self.optimizer, self.scaler, self.loss, self.autocast, self.config, self.prepare(batch), timer
        )
        self.guard.observe(parts["total"], self.position.step)
        self.scheduler.step()
        timer.mark("optimizer")
        for name, value in parts.items():
            self.running[name] = self.running.get(name, 0.0) + value
        self.running_steps += 1
        return parts

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
        if self.board.enabled:
            self.board.validation(self.position.step, row, *self.preview())
        self.running, self.running_steps = {}, 0
        return row

    @torch.no_grad()
    def preview(self) -> tuple[dict, dict]:
        """The first PREVIEW_SAMPLES validation samples as loaded (uint8) and the bare model's
        outputs on them (`task_outputs`), at the size `validate` last set: the TensorBoard grid."""
        samples = Subset(self.val_set, range(min(PREVIEW_SAMPLES, len(self.val_set))))
        loaded = next(iter(make_loader(samples, batch_size=len(samples), workers=0, device=self.device)))
        batch = to_device(loaded, self.device, self.config.channels_last, self.normaliser)
        with self.autocast():
            outputs = self.module.eval()(batch["bg"], batch["fg_bg"])
        return loaded, task_outputs(outputs, self.config.mode)

    def payload(self) -> dict:
        return {
            "format_version": CHECKPOINT_FORMAT,
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
            "plan": self.plan.to_dict(),
            "dataset": self.dataset,
            "statistics": self.stats,
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
        self.rows, self.best_step = checkpoint["rows"], checkpoint["best_step"]
        restore_rng(checkpoint["rng"])
        if self.ranks.main:  # finish what a kill after the step file was written left undone
            self.publish(path, self.best_step == self.position.step, only_missing=True)

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


# --- entry point ---------------------------------------------------------------------------


def train(config: TrainConfig, resume: bool | None = None, given: set[str] | None = None) -> dict:
    """Train as `config` says and return a summary: steps, minutes, stop reason, final and best
    metrics, the weights' sha256. `resume` (or `config.resume`) continues from out/checkpoints;
    `given` names the options a command line wrote out (see `options_a_resume_would_ignore`)."""
    started = time.perf_counter()
    config.validate()
    info = DatasetInfo.open(config.data)
    config, resume_from = resolve_config(config, config.resume if resume is None else resume, info, given)
    ranks = start_distributed(config.device)
    try:
        with global_settings(config, ranks.device):
            return run_training(config, resume_from, ranks, info, started)
    finally:
        if ranks.active:
            dist.destroy_process_group()


def run_training(
    config: TrainConfig, resume_from: tuple[Path, dict] | None, ranks: Distributed, info: DatasetInfo, started: float
) -> dict:
    if resume_from is None:
        plan, turned_off = TrainingPlan.make(config, info)  # on every rank: they must train the same loss
        if ranks.main and turned_off:
            print(f"{config.data}: depth not drawn from the ground geometry; loss terms off: {', '.join(turned_off)}")
    else:
        plan = TrainingPlan.from_dict(resume_from[1]["plan"])
    run = Run(config, ranks, info, plan)
    if plan.steps is None:
        plan.steps = calibrate_steps(run)
    run.prepare_optimization()
    if resume_from is not None:
        run.restore(*resume_from)
    if ranks.main:
        run.out.mkdir(parents=True, exist_ok=True)
        if resume_from is None and (previous := set_aside_previous_checkpoints(run.out)) is not None:
            print(f"{run.out}: a fresh run; the checkpoints already there were moved to {previous}")
        write_json_atomic(run.out / "config.json", config.to_dict())
        write_json_atomic(run.out / "plan.json", plan.to_dict())
        run.board = TrainingBoard(board_dir(run.out), run.position.step, config.batch_size * ranks.world)
    timer = StepTimer(ranks.device)
    stopped = loop(run, timer, started)
    size = size_at(max(run.position.step - 1, 0), plan.steps, run.sizes)
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
    plan = run.plan
    bar = progress_bar(total=plan.steps, initial=run.position.step, enabled=config.progress and run.ranks.main)
    try:
        while run.position.step < plan.steps:
            size = size_at(run.position.step, plan.steps, run.sizes)
            stop = next_size_change(run.position.step, plan.steps, run.sizes)
            timer.restart()
            for batch in run.loader(size, stop):
                lr = run.scheduler.get_last_lr()[0]
                parts = run.step(batch, timer)
                run.check_finite()
                timer.end_step()
                if run.replanning:
                    run.cost_done += run.step_costs[run.sizes.index(size)]
                run.advance()
                run.board.train_step(run.position.step, parts, lr)
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
                        bar.total = plan.steps
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
    """Fit the plan's steps (of a fresh session) to the rest of its budget less `reserve` seconds
    (the checkpoint about to be written and the final one), moving the LR schedule with it;
    True if the plan changed. `spent`: seconds since the loop began."""
    config, plan = run.config, run.plan
    left = config.minutes * 60 - (time.perf_counter() - started) - reserve
    steps = replanned_steps(run.position.step, plan.steps, run.sizes, run.step_costs, spent / run.cost_done, left)
    if run.ranks.active:  # every rank must agree on the schedule
        value = torch.tensor([steps], device=run.device)
        dist.broadcast(value, src=0)
        steps = int(value.item())
    if steps == plan.steps:
        return False
    previous, plan.steps = plan.steps, steps
    if run.ranks.main:
        print(f"step {run.position.step}: re-planned to {steps} steps (was {previous}) to end on time", flush=True)
        write_json_atomic(run.out / "plan.json", plan.to_dict())
    run.scheduler = make_scheduler(config, plan.steps, run.optimizer, run.position.step)
    return True


def due(run: Run, last_save: float) -> bool:
    config, step = run.config, run.position.step
    by_steps = (
        bool(config.checkpoint_every_steps) and step % config.checkpoint_every_steps == 0 and step < run.plan.steps
    )
    if config.checkpoint_every_minutes is None:
        return by_steps
    late = time.perf_counter() - last_save >= config.checkpoint_every_minutes * 60
    return any_rank(late, run.ranks) or by_steps


def over_budget(run: Run, started: float) -> bool:
    if run.config.minutes is None or run.position.step >= run.plan.steps:
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
    run.board.close()
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
