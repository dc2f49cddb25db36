"""Training's CUDA paths through CPU stand-ins: fp16 with a GradScaler (`GradScaler("cpu")`, CPU fp16
autocast), a CUDA device's synchronisations and RNG calls counted through patched torch.cuda
functions, and the dataset composed on the training device (`VirtualFgBgDataset` on the CPU)."""

import contextlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from fgbg_utils import optimization as optimization_module
from fgbg_utils import schedule as schedule_module
from fgbg_utils import train as train_module
from fgbg_utils.batch_augment import BatchAugmentation
from fgbg_utils.build import BuildConfig, make_dataset
from fgbg_utils.checkpoints import latest_checkpoint, load_checkpoint
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.distributed import Distributed
from fgbg_utils.loss_guard import SKIPPED_IN_A_ROW, FiniteGuard
from fgbg_utils.losses import NonFiniteLossError
from fgbg_utils.manifest import read_manifest
from fgbg_utils.models import build_model
from fgbg_utils.optimization import StepTimer
from fgbg_utils.precision import make_scaler
from fgbg_utils.reproducibility import capture_rng, restore_rng
from fgbg_utils.schedule import SeededBatches, SeededSamples
from fgbg_utils.train import Run, train
from fgbg_utils.train_config import TrainConfig
from fgbg_utils.transforms import make_transforms
from fgbg_utils.virtual_dataset import VirtualFgBgDataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """6 bg x 6 fg x 2 x 2 at 64 px: 64 unseen_train and 16 unseen_test samples."""
    root = tmp_path_factory.mktemp("gpu_paths") / "data"
    make_dataset(root, BuildConfig(n_bg=6, n_fg=6, placements=2, size=64), workers=1, progress=False)
    return root


def quick_config(data: Path, out: Path, **changes) -> TrainConfig:
    values = dict(sizes=(32,), batch_size=4, steps=10, val_samples=8, augment=False, workers=0, deterministic=True)
    values |= dict(checkpoint_every_minutes=None, progress=False)
    return TrainConfig(data=str(data), out=str(out), **(values | changes))


def in_fp16(monkeypatch) -> None:
    """Train as a T4 would, for the scaler's part: fp16 is the precision, so the GradScaler is enabled
    (on the CPU) and checkpoints say float16; the arithmetic stays fp32, since fp16 convolutions on a
    CPU are a hundred times slower (an overflow is a NaN put into the outputs)."""
    monkeypatch.setattr(train_module, "amp_dtype", lambda device, amp=None: torch.float16)
    monkeypatch.setattr(train_module, "autocast", lambda device, dtype: contextlib.nullcontext())


def rewind(out: Path, step: int) -> None:
    """Leave the run as if killed right after its checkpoint at `step`."""
    for path in (out / "checkpoints").glob("*.pt"):
        if path.name == "last.pt" or load_checkpoint(path)["step"] > step:
            path.unlink()
    assert load_checkpoint(latest_checkpoint(out))["step"] == step


@pytest.mark.parametrize("first, then", [("float32", "float16"), ("float16", "float32")])
def test_a_run_resumes_in_another_precision(dataset, tmp_path, monkeypatch, capsys, first, then):
    """A run started on a CPU (or in bf16) saves a disabled scaler's empty state, which an fp16 scaler
    refuses; the resume starts a fresh scaler and says so in one line (and the reverse)."""
    out = tmp_path / "run"
    config = quick_config(dataset, out, checkpoint_every_steps=3)
    with monkeypatch.context() as patch:
        if first == "float16":
            in_fp16(patch)
        train(config)
    rewind(out, 6)
    capsys.readouterr()
    with monkeypatch.context() as patch:
        if then == "float16":
            in_fp16(patch)
        summary = train(config, resume=True)
    said = [line for line in capsys.readouterr().out.splitlines() if "GradScaler" in line]
    assert summary["steps"] == 10
    assert len(said) == 1 and f"trained in {first}, this session runs in {then}" in said[0]
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert last["precision"] == then and bool(last["scaler"]) == (then == "float16")


def test_a_resume_in_the_same_precision_keeps_the_scaler(dataset, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    in_fp16(monkeypatch)
    config = quick_config(dataset, out, checkpoint_every_steps=3)
    train(config)
    saved = load_checkpoint(latest_checkpoint(out))["scaler"]
    rewind(out, 6)
    run = Run(config, Distributed(), DatasetInfo.open(config.data))
    run.prepare_optimization()
    path = latest_checkpoint(out)
    run.restore(path, load_checkpoint(path))
    assert run.scaler.state_dict() == load_checkpoint(path)["scaler"] and saved["scale"] > 0
    assert "GradScaler" not in capsys.readouterr().out


class NaNAt(nn.Module):
    """fgbg_net whose mask turns NaN at the training forward passes numbered in `bad` (from 0)."""

    def __init__(self, bad):
        super().__init__()
        self.net, self.bad, self.calls = build_model("fgbg_net"), bad, 0

    def forward(self, bg, fg_bg):
        out = self.net(bg, fg_bg)
        if self.training:
            if self.bad(self.calls):
                out = {"mask": out["mask"] * float("nan"), "depth": out["depth"]}
            self.calls += 1
        return out


def test_an_fp16_overflow_is_skipped_by_the_scaler(dataset, tmp_path, monkeypatch):
    """One non-finite loss in fp16: the scaler skips that step and halves its scale; training goes on."""
    in_fp16(monkeypatch)
    monkeypatch.setattr(train_module, "build_model", lambda name: NaNAt(lambda call: call == 4))
    summary = train(quick_config(dataset, tmp_path / "run"))
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert summary["steps"] == 10 and last["scaler"]["scale"] == 2.0**16 / 2
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())


def test_repeated_non_finite_losses_stop_an_fp16_run(dataset, tmp_path, monkeypatch):
    in_fp16(monkeypatch)
    monkeypatch.setattr(train_module, "build_model", lambda name: NaNAt(lambda call: call >= 3))
    with pytest.raises(NonFiniteLossError, match=rf"first at step 3 .*{SKIPPED_IN_A_ROW} in a row"):
        train(quick_config(dataset, tmp_path / "run", steps=30))


def test_a_delayed_check_stops_before_saving_poisoned_weights(dataset, tmp_path, monkeypatch):
    """As on CUDA: the loss is read every 5 steps, and always before a checkpoint is written."""
    monkeypatch.setattr(train_module, "finite_check_interval", lambda device: 5)
    monkeypatch.setattr(train_module, "build_model", lambda name: NaNAt(lambda call: call >= 7))
    config = quick_config(dataset, tmp_path / "run", steps=20, checkpoint_every_steps=3)
    with pytest.raises(NonFiniteLossError, match=r"first at step 7 .*last good checkpoint: .*step_0000006"):
        train(config)
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert last["step"] == 6


def test_the_guard_lets_every_rank_decide_together():
    """Under DDP the verdict is all-reduced: a rank whose own losses were finite stops too."""
    votes = []
    guard = FiniteGuard(torch.device("cpu"), scaled=False, agree=lambda flag: votes.append(flag) or True)
    for step in range(4):
        guard.observe(torch.tensor(1.0), step)
    assert guard.check() == (True, -1, 0) and votes == [False]
    alone = FiniteGuard(torch.device("cpu"), scaled=True)
    for step in range(SKIPPED_IN_A_ROW - 1):
        alone.observe(torch.tensor(float("inf")), step)
    assert alone.check() == (False, 0, SKIPPED_IN_A_ROW - 1)
    alone.observe(torch.tensor(float("nan")), SKIPPED_IN_A_ROW - 1)
    assert alone.check() == (True, 0, 1), "a streak carries on across checks, named by its first step"


def test_timing_on_cuda_synchronizes_only_the_sampled_steps(monkeypatch):
    syncs = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: syncs.append(device))
    timer = StepTimer(torch.device("cuda"))
    for _ in range(100):
        for block in optimization_module.TIMED_BLOCKS:
            timer.mark(block)
        timer.end_step()
    assert optimization_module.TIMING_EVERY == 20 and timer.timed == 4  # steps 21, 41, 61, 81 (the first warms up)
    assert len(syncs) == 5 * 4 + 5, "one per block of a timed step, and one before each (the old: 5 a step)"
    table = timer.table(batch_size=4)
    assert table["steps"] == 100 and table["timed_steps"] == timer.timed and table["images_per_s"] > 0


def test_calibration_times_the_training_loader_and_scaler(dataset, tmp_path, monkeypatch):
    """Each timed step takes a new batch from the training loader and goes through the GradScaler
    under autocast (not one preloaded batch in fp32)."""
    monkeypatch.setattr(train_module, "amp_dtype", lambda device, amp=None: torch.bfloat16)  # CPU autocast
    config = quick_config(dataset, tmp_path / "run", steps=None, minutes=1.0)
    run = Run(config, Distributed(), DatasetInfo.open(dataset))
    model, seen, scaled = build_model(run.config.model), [], []
    forward = model.forward

    def recording_forward(bg, fg_bg):
        seen.append((float(fg_bg.float().sum()), torch.is_autocast_enabled("cpu")))
        return forward(bg, fg_bg)

    model.forward = recording_forward
    scaler = make_scaler("cpu", torch.float16)
    scale = scaler.scale
    scaler.scale = lambda loss: scaled.append(1) or scale(loss)
    seconds = schedule_module.time_steps(run, model, torch.optim.SGD(model.parameters(), lr=0.0), scaler, 32)
    steps = schedule_module.CALIBRATION_STEPS + 1
    assert seconds > 0 and len(scaled) == len(seen) == steps
    assert len({total for total, _ in seen}) == steps, "a new batch every step"
    assert all(autocast for _, autocast in seen)


def test_one_training_loader_across_epochs_and_replans(dataset, tmp_path, monkeypatch):
    """16 samples in batches of 4: 4 per epoch. A timed run re-planned at every checkpoint (to 12 steps,
    11, then 10) crosses two epochs; its training loader is made once (and calibration's once)."""
    made = []
    real = train_module.make_loader

    def counting(*args, **kwargs):
        made.append("batch_sampler" in kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "make_loader", counting)
    monkeypatch.setattr(train_module, "replanned_steps", lambda step, steps, *rest: min(steps - 1, 12))
    config = quick_config(dataset, tmp_path / "run", steps=None, minutes=30.0, checkpoint_every_steps=3)
    summary = train(replace(config, train_limit=16, val_samples=4))
    assert summary["steps"] == 10 and summary["epoch"] == 2
    assert made.count(True) == 2


def test_persistent_workers_give_the_batches_of_an_in_process_loader(dataset, tmp_path, monkeypatch):
    """A loader worker kept across epochs and re-plans (which leave its batches mid-epoch) trains the same
    weights as no worker. The plan is fixed (12 steps, then 11, 10 and 9) so both runs follow it."""
    monkeypatch.setattr(train_module, "calibrate_steps", lambda run: setattr(run, "step_costs", (1.0,)) or 12)
    monkeypatch.setattr(train_module, "replanned_steps", lambda step, steps, *rest: steps - 1)
    config = dict(steps=None, minutes=30.0, checkpoint_every_steps=3, augment=True, train_limit=16, val_samples=4)
    alone = train(quick_config(dataset, tmp_path / "alone", **config))
    worker = train(quick_config(dataset, tmp_path / "worker", workers=1, **config))
    assert alone["steps"] == worker["steps"] == 9 and alone["epoch"] == worker["epoch"] == 2
    assert alone["weights_sha256"] == worker["weights_sha256"]


@pytest.mark.parametrize(
    "saved, count, current, restored",
    [(2, 1, 0, [(0, 0)]), (1, 3, 2, [(0, 2)]), (3, 2, 1, [(1, 1)])],
)
def test_cuda_rng_goes_to_the_current_gpu_whatever_the_count(monkeypatch, saved, count, current, restored):
    """A state list saved on `saved` GPUs, restored on a machine with `count` (the current: `current`)."""
    state = capture_rng()
    state["cuda"] = [torch.full((8,), index, dtype=torch.uint8) for index in range(saved)]
    calls = []

    def set_rng_state(new_state, device="cuda"):
        index = torch.device("cuda", device).index if isinstance(device, int) else torch.device(device).index
        assert index is not None and index < count, f"GPU {index} of {count}"
        calls.append((int(new_state[0]), index))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_rng_state)
    monkeypatch.setattr(torch.cuda.random, "set_rng_state", set_rng_state)
    restore_rng(state)
    assert calls == restored


@pytest.mark.parametrize("augment", [False, True])
def test_training_on_samples_composed_on_the_device(dataset, tmp_path, monkeypatch, augment):
    composed = []
    real = VirtualFgBgDataset.batch
    monkeypatch.setattr(VirtualFgBgDataset, "batch", lambda self, rows: composed.append(len(rows)) or real(self, rows))
    out = tmp_path / "run"
    summary = train(quick_config(dataset, out, virtual=True, augment=augment, train_limit=32))
    assert summary["steps"] == 10
    assert composed == [4] * 10, "batched on the device, augmented or not"
    assert json.loads((out / "config.json").read_text())["virtual"] is True
    assert all(torch.isfinite(t).all() for t in load_checkpoint(out / "checkpoints" / "last.pt")["model"].values())


def test_a_resumed_virtual_augmented_run_ends_with_the_uninterrupted_weights(dataset, tmp_path):
    """The batch augmentation is seeded by the batches' samples: a resume repeats its draws."""
    out = tmp_path / "run"
    config = quick_config(dataset, out, virtual=True, augment=True, train_limit=32, steps=8, checkpoint_every_steps=4)
    train(config)
    uninterrupted = load_checkpoint(out / "checkpoints" / "last.pt")["model"]
    rewind(out, 4)
    train(replace(config, resume=True))
    resumed = load_checkpoint(out / "checkpoints" / "last.pt")
    assert resumed["step"] == 8
    assert all(torch.equal(resumed["model"][k], v) for k, v in uninterrupted.items())


def test_seeded_batches_augment_whole_batches_by_their_seeds(dataset):
    virtual = VirtualFgBgDataset(DatasetInfo.open(dataset), "unseen_train", size=32, output="uint8")
    keys = [(3, 11), (40, 12), (7, 13), (9, 14)]
    plain = SeededBatches(virtual).__getitems__(keys)
    augmented = SeededBatches(virtual, BatchAugmentation())
    first, again = augmented.__getitems__(keys), augmented.__getitems__(keys)
    other = augmented.__getitems__([(3, 21), (40, 22), (7, 23), (9, 24)])
    assert all(torch.equal(first[k], again[k]) for k in plain)
    assert not torch.equal(first["fg_bg"], plain["fg_bg"]) and not torch.equal(first["fg_bg"], other["fg_bg"])
    assert torch.equal(first["sample"], plain["sample"])


def test_seeded_batches_equal_seeded_samples(dataset):
    """The augmented virtual batches are the samples `SeededSamples` gives, one by one."""
    virtual = VirtualFgBgDataset(DatasetInfo.open(dataset), "unseen_train", output="uint8")
    virtual.transform = make_transforms(32, train=True, stats=read_manifest(dataset), output="uint8")
    keys = [(3, 11), (40, 12), (7, 13)]
    batch = SeededBatches(virtual).__getitems__(keys)
    for row, key in enumerate(keys):
        sample = SeededSamples(virtual)[key]
        for name in ("bg", "fg_bg", "mask", "depth"):
            assert torch.equal(batch[name][row], sample[name]), (key, name)


def test_ssim_stays_float32_under_autocast():
    """Under bf16 autocast the windowed means would be bf16 and the variances cancel below 0 (-inf)."""
    from fgbg_utils.losses import ssim

    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(4, 1, 32, 32, generator=generator) * 0.01 + 0.5
    target = torch.rand(4, 1, 32, 32, generator=generator) * 0.01 + 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = ssim(pred, target)
    assert torch.isfinite(half).all() and half.dtype == torch.float32
    torch.testing.assert_close(half, ssim(pred, target))


def test_the_command_line_trains_on_the_virtual_dataset(dataset, tmp_path, capsys):
    from fgbg_utils.cli import main

    out = tmp_path / "run"
    arguments = ["train", "--data", str(dataset), "--out", str(out), "--sizes", "32", "--steps", "2", "--batch-size",
                 "4", "--val-samples", "4", "--no-augment", "--no-progress", "--virtual"]  # fmt: skip
    assert main(arguments) == 0
    assert json.loads((out / "config.json").read_text())["virtual"] is True
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == 2


def test_the_command_line_trains_on_the_virtual_dataset_augmented_in_two_workers(small_dataset, tmp_path, capsys):
    from fgbg_utils.cli import main

    out = tmp_path / "run"
    arguments = ["train", "--data", str(small_dataset), "--out", str(out), "--sizes", "32", "--steps", "3",
                 "--batch-size", "4", "--val-samples", "4", "--workers", "2", "--no-progress", "--virtual"]  # fmt: skip
    assert main(arguments) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["virtual"] is True and config["augment"] is True and config["workers"] == 2
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == 3
