"""Training loop, checkpoints, exact resume after SIGKILL, DDP on CPU, evaluation and baselines."""

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fgbg_utils import checkpoints as checkpoints_module
from fgbg_utils import evaluate as evaluate_module
from fgbg_utils import optimization as optimization_module
from fgbg_utils import schedule as schedule_module
from fgbg_utils import train as train_module
from fgbg_utils.build import BuildConfig, make_dataset
from fgbg_utils.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint, step_checkpoint, weights_digest
from fgbg_utils.cli import main
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.distributed import Distributed
from fgbg_utils.losses import LossWeights, NonFiniteLossError
from fgbg_utils.models import build_model
from fgbg_utils.precision import amp_dtype
from fgbg_utils.reproducibility import capture_rng, restore_rng
from fgbg_utils.resume import trained_on
from fgbg_utils.run_logs import read_metrics
from fgbg_utils.schedule import EpochBatches
from fgbg_utils.train import Run, train
from fgbg_utils.train_config import TrainConfig, fitted_loss_weights

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """6 bg x 6 fg x 2 x 2 at 64 px: 64 unseen_train and 16 unseen_test samples."""
    root = tmp_path_factory.mktemp("train") / "data"
    make_dataset(root, BuildConfig(n_bg=6, n_fg=6, placements=2, size=64), workers=1, progress=False)
    return root


def quick_config(data: Path, out: Path, **changes) -> TrainConfig:
    """A few-second CPU run: 32 px, batch 4, deterministic, no augmentation, no workers."""
    base = TrainConfig(
        data=str(data),
        out=str(out),
        sizes=(32,),
        lr=3e-3,  # these runs' schedules were written for it (the CPU recipe's 6e-3 ties step 4's and 8's scores)
        batch_size=4,
        steps=10,
        val_samples=8,
        augment=False,
        workers=0,
        deterministic=True,
        checkpoint_every_minutes=None,
        progress=False,
    )
    return replace(base, **changes)


def cli_train_args(config: TrainConfig) -> list[str]:
    return [
        "train", "--data", config.data, "--out", config.out, "--sizes", ",".join(map(str, config.sizes)),
        "--steps", str(config.steps), "--batch-size", str(config.batch_size), "--val-samples", str(config.val_samples),
        "--checkpoint-every-steps", str(config.checkpoint_every_steps), "--no-augment", "--workers", "0",
        "--deterministic", "--no-progress", "--lr", str(config.lr),
    ]  # fmt: skip


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "checkpoints" / "last.pt")["model"]


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_loss_goes_down_when_overfitting_four_samples(dataset, tmp_path):
    config = quick_config(dataset, tmp_path / "run", train_limit=4, steps=60, lr=1e-2, checkpoint_every_steps=10)
    summary = train(config)
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["steps"] == 60 and [row["step"] for row in rows] == [10, 20, 30, 40, 50, 60]
    assert rows[-1]["train_total"] < 0.7 * rows[0]["train_total"]
    assert rows[-1]["val_split"] == "unseen_test"
    for name in ("config.json", "metrics.csv", "timing.json", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (tmp_path / "run" / name).exists(), name
    assert len(list((tmp_path / "run" / "checkpoints").glob("step_*.pt"))) == config.keep_last
    timing = json.loads((tmp_path / "run" / "timing.json").read_text())
    assert set(timing["blocks"]) == {"data", "forward", "loss", "backward", "optimizer"}


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model = build_model("fgbg_net")
    optimizer = torch.optim.AdamW(model.parameters())
    out = model(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    (out["mask"].mean() + out["depth"].mean()).backward()
    optimizer.step()
    rng = capture_rng()
    expected = torch.rand(3)
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng, "step": 1})
    loaded = torch.load(path, weights_only=True)
    assert_identical(loaded["model"], model.state_dict())
    restored = build_model("fgbg_net")
    restored.load_state_dict(loaded["model"])
    assert weights_digest(restored) == weights_digest(model)
    assert_identical(loaded["optimizer"]["state"][0], optimizer.state_dict()["state"][0])
    restore_rng(loaded["rng"])
    assert torch.equal(torch.rand(3), expected)
    assert not list(tmp_path.glob(".*partial*"))


def test_data_order_is_a_pure_function_of_seed_and_epoch():
    full = list(EpochBatches(40, 4, seed=3, epoch=2))
    assert full == list(EpochBatches(40, 4, seed=3, epoch=2))
    assert full != list(EpochBatches(40, 4, seed=3, epoch=3))
    assert list(EpochBatches(40, 4, seed=3, epoch=2, start=4)) == full[4:]
    shards = [[i for batch in EpochBatches(41, 4, seed=3, epoch=2, rank=r, world=2) for i, _ in batch] for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 20 and not set(shards[0]) & set(shards[1])


def test_killed_run_resumes_to_identical_weights(dataset, tmp_path):
    config = quick_config(dataset, tmp_path / "killed", sizes=(32, 48), steps=40, checkpoint_every_steps=4)
    command = [sys.executable, "-m", "fgbg_utils", *cli_train_args(config)]
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL)
    checkpoints = Path(config.out) / "checkpoints"
    deadline = time.monotonic() + 120
    while not list(checkpoints.glob("step_*.pt")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    stopped_at = load_checkpoint(latest_checkpoint(config.out))["step"]
    assert stopped_at < config.steps
    subprocess.run([*command, "--resume"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)

    reference = replace(config, out=str(tmp_path / "uninterrupted"))
    train(reference)
    assert load_checkpoint(checkpoints / "last.pt")["step"] == config.steps
    assert_identical(final_weights(Path(config.out)), final_weights(Path(reference.out)))


@pytest.mark.parametrize("killed_copy", ["best.pt", "last.pt"])
def test_a_kill_after_the_step_file_loses_nothing(dataset, tmp_path, monkeypatch, killed_copy):
    """Killed after step 8's file was written but before its copies and the logs: the resume
    writes them (every validation counts as the best here, so step 8's is)."""
    config = quick_config(dataset, tmp_path / "run", steps=8, checkpoint_every_steps=4)
    copy = checkpoints_module.copy_checkpoint

    def killed_at_step_8(source, target):
        if target.name == killed_copy and source.name == "step_0000008.pt":
            raise KeyboardInterrupt
        copy(source, target)

    monkeypatch.setattr(train_module, "improved", lambda row, best, mode: True)
    monkeypatch.setattr(train_module, "copy_checkpoint", killed_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    checkpoints = Path(config.out) / "checkpoints"
    assert load_checkpoint(checkpoints / "best.pt")["step"] == 4
    assert [row["step"] for row in read_metrics(config.out)] == [4]
    monkeypatch.undo()
    train(replace(config, resume=True))
    assert load_checkpoint(checkpoints / "best.pt")["step"] == 8
    assert load_checkpoint(checkpoints / "last.pt")["step"] == 8
    rows = read_metrics(config.out)
    assert [row["step"] for row in rows] == [4, 8]
    assert "train_total" in rows[1], "step 8's row as it was logged, training losses included"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ddp_on_cpu_with_gloo_ends_with_equal_weights(dataset, tmp_path):
    config = quick_config(dataset, tmp_path / "ddp", steps=8, checkpoint_every_steps=4)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
        "-m", "fgbg_utils", *cli_train_args(config),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d) weights sha256 ([0-9a-f]{64})", done.stdout))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]
    model = build_model(config.model)
    model.load_state_dict(final_weights(Path(config.out)))
    assert weights_digest(model) == digests["0"]
    names = sorted(p.name for p in (Path(config.out) / "checkpoints").iterdir())
    assert names == ["best.pt", "last.pt", "step_0000004.pt", "step_0000008.pt"]


def test_only_rank_zero_writes(dataset, tmp_path):
    config = quick_config(dataset, tmp_path / "rank1")
    run = Run(config, Distributed(rank=1, world=1), DatasetInfo.open(config.data))
    run.prepare_optimization()
    run.checkpoint(32)
    assert not (tmp_path / "rank1").exists()


@pytest.fixture(scope="session")
def trained(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    train(quick_config(dataset, out, steps=6))
    return out / "checkpoints" / "last.pt"


def test_evaluate_reports_model_and_baselines_with_threshold_from_train(dataset, trained, tmp_path, monkeypatch):
    splits_used = []

    class SpyDataset(evaluate_module.FgBgDataset):
        def __init__(self, root, split, **kwargs):
            super().__init__(root, split, **kwargs)
            splits_used.append((split, set(self.samples.tolist())))

    chosen_on = []
    original = evaluate_module.choose_difference_threshold

    def spy_choose(pairs, candidates, split):
        chosen_on.append(split)
        return original(pairs, candidates, split=split)

    monkeypatch.setattr(evaluate_module, "FgBgDataset", SpyDataset)
    monkeypatch.setattr(evaluate_module, "choose_difference_threshold", spy_choose)
    result = evaluate_module.evaluate(
        DatasetInfo.open(dataset), trained, split="unseen_test", json_out=tmp_path / "r.json", progress=False
    )

    assert json.loads((tmp_path / "r.json").read_text()) == result
    assert result["split"] == result["metrics"]["split"] == "unseen_test"
    assert result["metrics"]["images"] == 16 and "mask_iou" in result["metrics"] and "depth_rmse" in result["metrics"]
    difference, depth = result["baselines"]["difference_mask"], result["baselines"]["background_depth"]
    assert difference["threshold_split"] == result["threshold_split"] == "unseen_train" == chosen_on[0]
    assert difference["mask_iou"] > 0.2 and "depth_rmse" not in difference
    assert depth["depth_rmse"] < result["metrics"]["depth_rmse"] and "mask_iou" not in depth
    test_ids = set(DatasetInfo.open(dataset).splits["unseen"]["test"])
    threshold_ids = next(ids for split, ids in splits_used if split == "unseen_train")
    assert threshold_ids and not threshold_ids & test_ids


def test_evaluate_cli_saves_one_mask_and_one_depth_per_sample(dataset, trained, tmp_path):
    predictions = tmp_path / "pred"
    args = ["evaluate", "--data", str(dataset), "--checkpoint", str(trained), "--split", "unseen_test"]
    assert main([*args, "--json", str(tmp_path / "r.json"), "--save-predictions", str(predictions)]) == 0
    test_ids = DatasetInfo.open(dataset).splits["unseen"]["test"]
    assert sorted(p.stem for p in (predictions / "mask").glob("*.png")) == [f"{i:07d}" for i in sorted(test_ids)]
    assert len(list((predictions / "depth").glob("*.png"))) == len(test_ids)
    assert json.loads((tmp_path / "r.json").read_text())["split"] == "unseen_test"


class NaNAfter(nn.Module):
    """fgbg_net whose training outputs turn NaN after `good` forward passes."""

    def __init__(self, good: int):
        super().__init__()
        self.net, self.good, self.calls = build_model("fgbg_net"), good, 0

    def forward(self, bg, fg_bg):
        out = self.net(bg, fg_bg)
        if self.training:
            self.calls += 1
            if self.calls > self.good:
                out = {"mask": out["mask"] * float("nan"), "depth": out["depth"]}
        return out


def test_nan_loss_stops_with_a_clear_error_and_valid_checkpoints(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "build_model", lambda name: NaNAfter(good=7))
    config = quick_config(dataset, tmp_path / "nan", steps=20, checkpoint_every_steps=3)
    with pytest.raises(NonFiniteLossError, match=r"step 7: non-finite loss.*last good checkpoint: .*step_0000006"):
        train(config)
    checkpoints = sorted(p.name for p in (tmp_path / "nan" / "checkpoints").iterdir())
    assert checkpoints == ["best.pt", "last.pt", "step_0000003.pt", "step_0000006.pt"]
    last = load_checkpoint(tmp_path / "nan" / "checkpoints" / "last.pt")
    assert last["step"] == 6 and all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())


def test_minutes_alone_fixes_steps_in_the_plan_not_the_config(dataset, tmp_path):
    config = quick_config(dataset, tmp_path / "timed", steps=None, minutes=0.05)
    summary = train(config)
    planned = json.loads((tmp_path / "timed" / "plan.json").read_text())
    assert planned["steps"] >= 1 and summary["steps"] <= planned["steps"]
    last = load_checkpoint(tmp_path / "timed" / "checkpoints" / "last.pt")
    assert last["plan"]["steps"] == planned["steps"] and last["config"]["steps"] is None, "as asked"
    assert json.loads((tmp_path / "timed" / "config.json").read_text())["steps"] is None


def test_a_spent_budget_stops_saves_and_says_so(dataset, tmp_path):
    """Steps far beyond a one-second budget: the run stops on `minutes`, and its last checkpoint
    holds the step it stopped at, for a resume."""
    config = quick_config(dataset, tmp_path / "budget", steps=100_000, minutes=0.02)
    summary = train(config)
    assert summary["stopped"] == "minutes"
    assert 1 <= summary["steps"] < 100_000
    assert load_checkpoint(tmp_path / "budget" / "checkpoints" / "last.pt")["step"] == summary["steps"]


@pytest.mark.parametrize(("allowance", "steps"), [(float("inf"), schedule_module.CALIBRATION_STEPS + 1), (0.0, 2)])
def test_calibration_stops_timing_once_its_allowance_is_spent(dataset, tmp_path, allowance, steps):
    """A warm-up and at least one timed step always; the rest only while the allowance lasts."""
    run = Run(quick_config(dataset, tmp_path / "calibrate"), Distributed(rank=0, world=1), DatasetInfo.open(dataset))
    model = build_model(run.config.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    calls = []
    original = optimizer.step
    optimizer.step = lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    seconds = schedule_module.time_steps(run, model, optimizer, scaler, 32, allowance)
    assert len(calls) == steps and seconds > 0


def test_fresh_run_sets_aside_an_earlier_runs_checkpoints(dataset, tmp_path):
    """A newer step file from an earlier run must not pass for the fresh run's latest checkpoint."""
    out = tmp_path / "run"
    earlier = step_checkpoint(out, 999)
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"an earlier run's weights")
    train(quick_config(dataset, out, steps=4))
    assert latest_checkpoint(out) == step_checkpoint(out, 4)
    assert load_checkpoint(latest_checkpoint(out))["step"] == 4
    kept = out / "checkpoints.previous" / earlier.name
    assert kept.read_bytes() == b"an earlier run's weights", "nothing is lost"
    train(quick_config(dataset, out, steps=4, resume=True))  # resuming keeps its own checkpoints
    assert kept.exists() and latest_checkpoint(out) == step_checkpoint(out, 4)


def test_a_resume_refuses_what_it_would_ignore_and_follows_a_moved_dataset(dataset, tmp_path):
    """Options set otherwise than the run's are named, not dropped; the same dataset copied to a
    new place (a new Colab session) is followed; another dataset is refused."""
    out = tmp_path / "run"
    train(quick_config(dataset, out, steps=4, checkpoint_every_steps=2))
    with pytest.raises(ValueError, match=r"these options differ from it: lr 0.1 \(the run's: 0.003\); steps 8"):
        train(quick_config(dataset, out, steps=8, lr=0.1, resume=True))
    moved = tmp_path / "moved"
    shutil.copytree(dataset, moved)
    for path in (step_checkpoint(out, 4), out / "checkpoints" / "last.pt"):
        path.unlink()  # as if the session had died after step 2
    assert train(quick_config(moved, out, steps=4, resume=True))["steps"] == 4
    assert load_checkpoint(out / "checkpoints" / "last.pt")["config"]["data"] == str(moved)
    other = tmp_path / "other"
    make_dataset(other, BuildConfig(n_bg=6, n_fg=6, placements=1, size=64), workers=1, progress=False)
    with pytest.raises(ValueError, match=f"{other}: not the dataset .* was trained on"):
        train(quick_config(other, out, steps=4, resume=True))


def test_a_command_line_resume_checks_the_options_written_out(dataset, tmp_path, capsys):
    """Left out, an option is the run's; written out, even at its default value, it must be the run's."""
    config = quick_config(dataset, tmp_path / "cli", steps=4, checkpoint_every_steps=2, lr=6e-3)
    assert main(cli_train_args(config)) == 0
    step_checkpoint(config.out, 4).unlink()
    (Path(config.out) / "checkpoints" / "last.pt").unlink()
    base = ["train", "--data", config.data, "--out", config.out, "--resume", "--no-progress", "--workers", "0"]
    assert main([*base, "--lr", "0.003"]) == 2
    assert "lr 0.003 (the run's: 0.006)" in capsys.readouterr().err
    assert main(base) == 0
    assert load_checkpoint(Path(config.out) / "checkpoints" / "last.pt")["step"] == 4


def test_a_checkpoint_knows_its_dataset_by_its_index_wherever_it_lies(dataset, tmp_path):
    """A copy is the same dataset; one index row changed is not."""
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    record = {"dataset": DatasetInfo.open(dataset).identity}
    assert trained_on(record, DatasetInfo.open(copy))
    (copy / "index.csv").write_text((copy / "index.csv").read_text().replace("\n5,", "\n5,0", 1))
    assert not trained_on(record, DatasetInfo.open(copy))


def test_replanned_steps_fit_the_time_left_at_each_sizes_cost():
    replanned_steps, sizes = schedule_module.replanned_steps, (64, 96)
    assert replanned_steps(30, 100, (64,), (1.0,), 0.5, 10.0) == 50  # 10 s at 0.5 s a step: 20 more
    # steps 10..36 at 64 px (1 unit) and 37..72 at 96 px (2 units): 27 + 72 = 99 s fit 100 s; 74 steps need 101
    assert replanned_steps(10, 100, sizes, (1.0, 2.0), 1.0, 100.0) == 73
    longer = replanned_steps(60, 100, sizes, (1.0, 2.0), 1.0, 1e6)  # at 96 px already
    assert longer == 120 and schedule_module.size_at(60, longer, sizes) == 96, "never back to 64 px"
    assert replanned_steps(10, 100, (64,), (1.0,), 1.0, -5.0) == 11  # out of time: one more step


def test_a_replanned_schedule_takes_over_at_the_step_reached():
    config = TrainConfig(data="", out="", lr=0.01, steps=100)
    optimizer = optimization_module.make_optimizer(config, nn.Linear(2, 1))
    scheduler = optimization_module.make_scheduler(config, 100, optimizer)
    for _ in range(30):
        optimizer.step()
        scheduler.step()
    moved = optimization_module.make_scheduler(config, 60, optimizer, step=30)
    fresh = optimization_module.make_optimizer(config, nn.Linear(2, 1))
    reference = optimization_module.make_scheduler(config, 60, fresh)
    for _ in range(30):
        fresh.step()
        reference.step()
    assert moved.get_last_lr() == reference.get_last_lr() != [config.lr]
    assert optimizer.param_groups[0]["betas"] == fresh.param_groups[0]["betas"]
    for _ in range(29):
        optimizer.step()
        moved.step()
    assert moved.get_last_lr()[0] == pytest.approx(config.lr / 25 / 1e4)  # annealed to the end


def test_a_timed_run_replans_at_checkpoints_and_ends_its_schedule(dataset, tmp_path, monkeypatch):
    """The loop follows a new plan (here: 5 steps in all) from the checkpoint where it was made."""
    monkeypatch.setattr(train_module, "replanned_steps", lambda step, steps, sizes, costs, pace, left: 5)
    out = tmp_path / "timed"
    summary = train(quick_config(dataset, out, steps=None, minutes=30.0, checkpoint_every_steps=2))
    assert summary["steps"] == 5 and summary["stopped"] == "steps"
    assert json.loads((out / "plan.json").read_text())["steps"] == 5
    first = load_checkpoint(step_checkpoint(out, 2))  # saved after re-planning: a resume follows the plan
    assert first["plan"]["steps"] == 5 and first["scheduler"]["total_steps"] == 5
    last = load_checkpoint(out / "checkpoints" / "last.pt")["scheduler"]
    assert last["total_steps"] == 5 and last["last_epoch"] == 5, "the one cycle ran to its end"


def test_validation_covers_the_whole_split_evenly(dataset, tmp_path):
    """Samples are stored background by background: the first N would validate on a few scenes only."""
    run = Run(
        quick_config(dataset, tmp_path / "val", val_samples=5), Distributed(rank=0, world=1), DatasetInfo.open(dataset)
    )
    test_samples = len(DatasetInfo.open(dataset).splits["unseen"]["test"])
    assert list(run.val_set.indices) == [i * (test_samples - 1) // 4 for i in range(5)]
    bg_ids = {run.val_set[i]["bg_id"] for i in range(5)}
    assert len(bg_ids) > 1


def test_options_out_of_range_are_refused_before_anything_is_written(dataset, tmp_path):
    out = tmp_path / "refused"
    bad = quick_config(
        dataset, out, batch_size=-2, sizes=(32, 16), loss_weights={"mask_bse": 2.0}, lr=0.0, grad_clip=-1.0
    )
    with pytest.raises(ValueError) as error:
        train(bad)
    message = str(error.value)
    assert message.startswith(f"{out}: not started: ")
    assert "batch_size must be at least 1, got -2" in message
    assert "sizes: 16 is below 32 pixels" in message
    assert "grad_clip must be at least 0, got -1.0" in message
    assert "loss_weights: unknown mask_bse; the terms are " in message and "mask_bce" in message
    assert "lr must be above 0, got 0.0" in message
    assert not out.exists()
    quick_config(dataset, out, grad_clip=0.0, keep_last=0).validate()  # no clipping; only last.pt and best.pt


@pytest.mark.parametrize(
    "capability, dtype", [((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)]
)
def test_mixed_precision_is_bf16_only_with_bf16_tensor_cores(monkeypatch, capability, dtype):
    """A T4 (7.5) would emulate bf16: it gets fp16 with a scaler. The CPU never autocasts."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert amp_dtype(torch.device("cuda")) == dtype
    assert amp_dtype(torch.device("cpu")) is None
    assert amp_dtype(torch.device("cuda"), amp=False) is None


class NotPlainData:
    """An object weights_only loading refuses."""


def saved_object() -> bytes:
    buffer = io.BytesIO()
    torch.save({"config": {}, "model": {}, "extra": NotPlainData()}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("content", [b"garbage", b"PK\x03\x04cut short", saved_object()])
def test_an_unreadable_checkpoint_is_named(dataset, tmp_path, content, capsys):
    """Named, and without torch's advice to load it with weights_only=False (which runs its code)."""
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{path}: not a readable checkpoint") as error:
        load_checkpoint(path)
    assert "weights_only" not in str(error.value)
    assert main(["evaluate", "--data", str(dataset), "--checkpoint", str(path)]) != 0
    assert f"{path}: not a readable checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("source", "off"), [("geometric", []), ("prior", []), ("midas", ["depth_ground", "depth_horizon"])]
)
def test_geometric_loss_terms_are_off_for_other_depth(source, off):
    """The ground and horizon targets read the depth as the ground-plane model draws it: for MiDaS or
    imported depth they are turned off, and a term already off is not reported again."""
    info = SimpleNamespace(depth_source=source)
    config = TrainConfig(data="d", out="o")
    weights, turned_off = fitted_loss_weights(config, info)
    assert turned_off == off and weights == {**LossWeights().to_dict(), **dict.fromkeys(off, 0.0)}
    assert config.loss_weights == LossWeights().to_dict(), "the config stays as asked"
    assert fitted_loss_weights(TrainConfig(data="d", out="o", loss_weights=weights), info) == (weights, [])


def test_every_rank_turns_the_geometric_terms_off(dataset, tmp_path):
    """Not only the rank that prints the message: DDP ranks must train the same loss."""
    data = tmp_path / "midas"
    shutil.copytree(dataset, data)
    manifest = json.loads((data / "data_manifest.json").read_text())
    manifest["generation"]["depth"] = {"source": "midas", "exact": False}
    (data / "data_manifest.json").write_text(json.dumps(manifest))
    for rank in (0, 1):
        run = Run(quick_config(data, tmp_path / f"rank{rank}"), Distributed(rank=rank, world=2), DatasetInfo.open(data))
        assert run.loss.weights.depth_ground == run.loss.weights.depth_horizon == 0
        assert run.loss.weights.depth_l1 == 1
