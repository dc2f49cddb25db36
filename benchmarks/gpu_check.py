"""Whether the kit is ready for a GPU, in one run of at most five minutes: one line per check,

    PASS|FAIL|SKIP  <name>  <seconds>s  <detail>

device and AMP dtype; batch transfer; on-device composition against the CPU path; 30 training steps
in bf16 and in forced fp16 with a GradScaler; a CPU-started run resumed on CUDA in fp16; a `minutes`
run ending within 10 % of its budget; `evaluate` on CUDA against the CPU; the LR range test; DDP over
two processes (two GPUs); MiDaS batching through a local stand-in; throughput (model only, loader
only, end to end, images/s). It builds its own small dataset in a temporary folder.

Without a GPU every CUDA-only check prints SKIP and its CPU stand-in runs (fp16's GradScaler on the
CPU with fp32 arithmetic, CPU bf16 autocast, the torch composition path on CPU tensors, DDP over gloo),
so `make test` runs this on a CPU (tests/test_gpu_check.py). Exits 1 if any check FAILs.

    timeout 300 python benchmarks/gpu_check.py            # on Colab: !timeout 300 python benchmarks/gpu_check.py
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from fgbg_utils import evaluate as evaluate_module
from fgbg_utils import train as train_module
from fgbg_utils.build import BuildConfig, make_dataset
from fgbg_utils.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from fgbg_utils.data import FgBgDataset
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.evaluate import evaluate
from fgbg_utils.loaders import make_loader
from fgbg_utils.losses import FgBgLoss
from fgbg_utils.lr_finder import lr_range_test
from fgbg_utils.manifest import read_manifest
from fgbg_utils.models import DEFAULT_MODEL, build_model
from fgbg_utils.precision import amp_dtype, autocast, make_scaler, precision_name
from fgbg_utils.train import train
from fgbg_utils.train_config import TrainConfig
from fgbg_utils.transforms import BatchNormaliser, make_transforms, prepare_batch
from fgbg_utils.virtual_dataset import VirtualFgBgDataset

REPO = Path(__file__).resolve().parent.parent
EVALUATE_TOLERANCE = 1e-3
"""Largest |Δ| of a metric between evaluate on CUDA (fp32) and on the CPU."""
STAND_IN_TOLERANCE = 0.02
"""Largest |Δ| of a metric between bf16 autocast and fp32 on the CPU (bf16 keeps 8 bits of mantissa)."""
MINUTES_TOLERANCE = 0.10
"""A `minutes` run must end within this share of its budget."""


class Skip(Exception):
    """A check that cannot run here (no GPU, or not two)."""


@contextlib.contextmanager
def forced_fp16(cuda: bool):
    """Training in fp16 with a GradScaler whatever the GPU (an A100 or H200 would pick bf16). On the CPU
    the scaler is enabled but the arithmetic stays fp32 (CPU fp16 convolutions are very slow)."""
    with mock.patch.object(train_module, "amp_dtype", lambda device, amp=None: torch.float16):
        if cuda:
            yield
        else:
            with mock.patch.object(train_module, "autocast", lambda device, dtype: contextlib.nullcontext()):
                yield


class Checks:
    """The checks, sharing one dataset, one device and the runs the later checks reuse."""

    def __init__(self, work: Path, minutes: float | None):
        self.cuda = torch.cuda.is_available()
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.work = work
        # on a GPU: enough samples to keep it busy for a while; on a CPU: seconds
        shape = (
            dict(n_bg=8, n_fg=8, placements=4, size=96) if self.cuda else dict(n_bg=4, n_fg=4, placements=2, size=64)
        )
        self.size, self.batch = (96, 32) if self.cuda else (32, 4)
        self.steps = 30 if self.cuda else 6
        self.minutes = minutes or (1.0 if self.cuda else 0.1)
        self.data = work / "data"
        workers = min(8, os.cpu_count() or 1) if self.cuda else 1
        make_dataset(self.data, BuildConfig(**shape, seed=3), workers=workers, progress=False)
        self.manifest = read_manifest(self.data)
        self.failures = 0
        self.trained: Path | None = None
        self.end_to_end: tuple[float, int] | None = None
        """(images/s, timed steps) of the minutes check's run."""

    # --- reporting ---

    def report(self, status: str, name: str, seconds: float, detail: str) -> None:
        self.failures += status == "FAIL"
        print(f"{status:<4}  {name}  {seconds:.1f}s  {detail}", flush=True)

    def run(self, name: str, check: Callable[[], str]) -> None:
        begin = time.perf_counter()
        torch.set_flush_denormal(True)  # as train() does (and turns off when it returns): denormals are slow
        try:
            status, detail = "PASS", check()
        except Skip as why:
            status, detail = "SKIP", str(why)
        except Exception as error:  # one line per check, whatever went wrong
            text = (str(error).strip().splitlines() or [""])[0][:300]
            status, detail = "FAIL", f"{type(error).__name__}: {text}"
        self.report(status, name, time.perf_counter() - begin, detail)

    def on_cuda(self, name: str, check: Callable[[], str], stand_in: Callable[[], str]) -> None:
        """A CUDA-only check: run it on a GPU; elsewhere SKIP it and run its CPU stand-in."""
        if self.cuda:
            self.run(name, check)
        else:
            self.report("SKIP", name, 0.0, "no CUDA GPU")
            self.run(f"{name} [cpu stand-in]", stand_in)

    # --- helpers ---

    def config(self, out: str, **changes) -> TrainConfig:
        values = dict(sizes=(self.size,), batch_size=self.batch, steps=self.steps, augment=False)
        values |= dict(val_samples=16 if self.cuda else 4)
        values |= dict(workers=0, checkpoint_every_minutes=None, progress=False, device=str(self.device))
        return TrainConfig(data=str(self.data), out=str(self.work / out), **(values | changes))

    def quiet_train(self, config: TrainConfig, **options) -> tuple[dict, str]:
        """train() with its printing captured: (summary, what it printed)."""
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            summary = train(config, **options)
        return summary, printed.getvalue()

    def batches(self, count: int, device: torch.device) -> list[dict]:
        transform = make_transforms(self.size, train=True, stats=self.manifest, output="uint8", seed=0)
        dataset = FgBgDataset(DatasetInfo.open(self.data), "unseen_train", transform=transform, output="uint8")
        loader = make_loader(dataset, batch_size=self.batch, workers=0, device=device)
        normaliser = BatchNormaliser(self.manifest).to(device)
        return [prepare_batch(batch, device, normaliser) for batch, _ in zip(loader, range(count), strict=False)]

    # --- the checks ---

    def device_and_dtype(self) -> str:
        dtype = amp_dtype(self.device)
        if not self.cuda:
            return f"cpu, AMP off ({precision_name(dtype)}); torch {torch.__version__}"
        capability = ".".join(map(str, torch.cuda.get_device_capability(self.device)))
        name = torch.cuda.get_device_name(self.device)
        return f"{name} (compute {capability}, {torch.cuda.device_count()} GPU), AMP {precision_name(dtype)}"

    def transfer(self) -> str:
        transform = make_transforms(self.size, train=False, stats=self.manifest, output="uint8")
        dataset = FgBgDataset(DatasetInfo.open(self.data), "unseen_train", transform=transform, output="uint8")
        batch = next(iter(make_loader(dataset, batch_size=self.batch, workers=0, device=self.device)))
        normaliser = BatchNormaliser(self.manifest)
        reference = prepare_batch(batch, "cpu", normaliser)
        begin = time.perf_counter()
        moved = prepare_batch(batch, self.device, normaliser.to(self.device))
        torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - begin
        for key in ("bg", "fg_bg", "mask", "depth"):
            difference = (moved[key].cpu() - reference[key]).abs().max().item()
            assert difference < 1e-5, f"{key} differs by {difference} after the transfer"
        size = sum(v.numel() * v.element_size() for v in batch.values() if torch.is_tensor(v)) / 1e6
        return f"batch of {self.batch} ({size:.2f} MB uint8) moved and normalised in {1000 * seconds:.2f} ms, equal"

    def transfer_stand_in(self) -> str:
        transform = make_transforms(self.size, train=False, stats=self.manifest, output="uint8")
        dataset = FgBgDataset(DatasetInfo.open(self.data), "unseen_train", transform=transform, output="uint8")
        batch = next(iter(make_loader(dataset, batch_size=self.batch, workers=0, device="cpu")))
        moved = prepare_batch(batch, "cpu", BatchNormaliser(self.manifest))
        assert moved["fg_bg"].dtype == torch.float32 and moved["mask"].max() <= 1
        return "uint8 batch normalised by prepare_batch on the CPU"

    def compare_composition(self, device: str) -> str:
        """The torch composition (on `device`) against the NumPy/OpenCV path, every sample."""
        reference = VirtualFgBgDataset(DatasetInfo.open(self.data), "all", output="uint8")
        torch_path = VirtualFgBgDataset(DatasetInfo.open(self.data), "all", device=device, output="uint8")
        if device == "cpu":  # the CPU dataset holds no tensor levels: give it the torch path's
            torch_path.levels = {
                key: torch.from_numpy(level).permute(2, 0, 1).contiguous() for key, level in torch_path._levels.items()
            }
        differing, largest, n = 0, 0, len(reference)
        for start in range(0, n, 64):
            rows = np.arange(start, min(n, start + 64))
            expected, got = reference._compose_cpu(rows), torch_path._compose_torch(rows)
            for key in ("bg", "mask", "depth"):
                assert torch.equal(expected[key], got[key].cpu()), f"{key} differs from the CPU path"
            gap = (expected["fg_bg"].int() - got["fg_bg"].cpu().int()).abs()
            differing += int((gap > 0).sum())
            largest = max(largest, int(gap.max()))
        assert largest <= 1, f"fg_bg differs by up to {largest} levels"
        values = n * 3 * reference.build_size**2
        return (
            f"{n} samples: bg, mask and depth bit-exact; fg_bg bit-exact but {differing} of {values:,} values "
            f"off by one level (float32 rounding; the class doc allows it); {torch_path.fixed_up} alpha fix-ups"
        )

    def training(self, precision: str) -> str:
        """`self.steps` steps in bf16 autocast, or in fp16 with a GradScaler, whatever the GPU would pick
        (on the CPU: CPU bf16 autocast, or the GradScaler with fp32 arithmetic)."""
        steps = self.steps if self.cuda or precision == "fp16" else 2  # CPU bf16 is slow
        config = self.config(f"train_{precision}", steps=steps, checkpoint_every_steps=steps)
        if precision == "fp16":
            patch = forced_fp16(self.cuda)
        else:
            patch = mock.patch.object(train_module, "amp_dtype", lambda device, amp=None: torch.bfloat16)
        with patch:
            summary, _ = self.quiet_train(config)
        last = load_checkpoint(Path(config.out) / "checkpoints" / "last.pt")
        loss = summary["final"]["train_total"]
        assert summary["steps"] == steps and math.isfinite(loss), f"{summary['steps']} steps, loss {loss}"
        assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
        timing = json.loads((Path(config.out) / "timing.json").read_text())
        if precision == "bf16" or self.trained is None:
            self.trained = Path(config.out) / "checkpoints" / "last.pt"
        scaler = f", GradScaler scale {last['scaler']['scale']:g}" if last["scaler"] else ""
        return (
            f"{summary['steps']} steps in {last['precision']}{scaler}, final train loss {loss:.3f}, "
            f"{timing['images_per_s']:.0f} images/s (timed steps)"
        )

    def resume(self, device: str) -> str:
        """A run started on the CPU in fp32, killed after step 2 and resumed on `device` in fp16."""
        config = self.config("resumed", device="cpu", sizes=(32,), batch_size=4, steps=4, checkpoint_every_steps=2)
        self.quiet_train(config)
        out = Path(config.out)
        for path in (out / "checkpoints").glob("*.pt"):
            if path.name == "last.pt" or load_checkpoint(path)["step"] > 2:
                path.unlink()
        assert load_checkpoint(latest_checkpoint(out))["step"] == 2
        with forced_fp16(device == "cuda"):
            summary, printed = self.quiet_train(replace(config, device=device), resume=True)
        said = [line for line in printed.splitlines() if "GradScaler" in line]
        last = load_checkpoint(out / "checkpoints" / "last.pt")
        assert summary["steps"] == 4 and last["precision"] == "float16" and last["scaler"], "not resumed in fp16"
        assert len(said) == 1, f"expected one line on the GradScaler, got {said}"
        return f"steps 3-4 on {device} in fp16; it said: {said[0].split(': ', 1)[1]}"

    def minutes_budget(self, tolerance: float | None) -> str:
        """A run given only `minutes` ends within `tolerance` (a share) of that budget. None (the CPU
        stand-in, which `make test` runs): the run must stop and save where it stopped, and its timing
        is only reported, since a shared CPU's pace varies too much to hold a few seconds to 10 %."""
        budget = self.minutes * 60
        config = self.config("timed", steps=None, minutes=self.minutes, checkpoint_every_minutes=self.minutes / 4)
        if self.cuda:  # as on Colab: augmented, two loader workers (its 2 vCPUs)
            config = replace(config, augment=True, workers=2)
        begin = time.perf_counter()
        summary, _ = self.quiet_train(config)
        wall = time.perf_counter() - begin
        share = wall / budget - 1
        timing = json.loads((Path(config.out) / "timing.json").read_text())
        self.end_to_end = (timing["images_per_s"], timing["timed_steps"])
        detail = f"{wall:.1f} s for a {budget:.0f} s budget ({100 * share:+.1f} %), {summary['steps']} steps"
        detail += f", stopped on {summary['stopped']}"
        last = load_checkpoint(Path(config.out) / "checkpoints" / "last.pt")
        assert summary["steps"] >= 1 and last["step"] == summary["steps"], f"{detail}; last.pt at {last['step']}"
        if tolerance is None:
            return detail + " (not held to 10 % on a CPU)"
        assert abs(share) <= tolerance, f"{detail}: not within {100 * tolerance:.0f} %"
        return detail

    def evaluate_against_cpu(self) -> str:
        full_precision = self.work / "fp32.pt"
        state = load_checkpoint(self.trained)
        state["config"] = {**state["config"], "amp": False}
        save_checkpoint(full_precision, state)
        options = dict(limit=16, threshold_samples=32, progress=False)
        on_cpu = evaluate(DatasetInfo.open(self.data), full_precision, device="cpu", **options)["metrics"]
        on_gpu = evaluate(DatasetInfo.open(self.data), full_precision, device="cuda", **options)["metrics"]
        amp = evaluate(DatasetInfo.open(self.data), self.trained, device="cuda", **options)["metrics"]
        gap, name = largest_gap(on_cpu, on_gpu)
        amp_gap, amp_name = largest_gap(on_cpu, amp)
        assert gap < EVALUATE_TOLERANCE, f"{name} differs by {gap:.2e} between CUDA and the CPU"
        return (
            f"fp32 on CUDA vs CPU: largest |Δ| {gap:.1e} ({name}); with the run's AMP "
            f"({precision_name(amp_dtype(self.device))}): {amp_gap:.1e} ({amp_name})"
        )

    def evaluate_stand_in(self) -> str:
        options = dict(limit=8, threshold_samples=16, progress=False, device="cpu")
        full = evaluate(DatasetInfo.open(self.data), self.trained, **options)["metrics"]
        with mock.patch.object(evaluate_module, "amp_dtype", lambda device, amp=None: torch.bfloat16):
            half = evaluate(DatasetInfo.open(self.data), self.trained, **options)["metrics"]
        gap, name = largest_gap(full, half)
        assert gap < STAND_IN_TOLERANCE, f"{name} differs by {gap:.2e} between bf16 autocast and fp32"
        return f"CPU bf16 autocast vs fp32: largest |Δ| {gap:.1e} ({name})"

    def lr_range(self, dtype: torch.dtype | None) -> str:
        torch.manual_seed(0)
        model = build_model(DEFAULT_MODEL).to(self.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        loss = FgBgLoss(check_finite=False)
        steps = 20 if self.cuda else 5
        sweep = lr_range_test(model, optimizer, lambda out, batch: loss(out, batch)[0], self.batches(4, self.device),
                              start_lr=1e-5, end_lr=1.0, steps=steps, dtype=dtype)  # fmt: skip
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the model was not restored"
        assert math.isfinite(sweep.suggestion) and len(sweep.lrs) >= 2
        return f"{len(sweep.lrs)} steps in {precision_name(dtype)}, suggested {sweep.suggestion:.1e}"

    def ddp(self, device: str) -> str:
        if device == "cuda" and torch.cuda.device_count() < 2:
            raise Skip(f"{torch.cuda.device_count()} GPU: DDP needs 2")
        steps = 10 if device == "cuda" else 2
        config = self.config(f"ddp_{device}", device=device, steps=steps, checkpoint_every_steps=steps)
        if device == "cpu":
            config = replace(config, sizes=(32,), batch_size=4)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
            "-m", "fgbg_utils", "train", "--data", config.data, "--out", config.out, "--device", device,
            "--sizes", str(config.sizes[0]), "--steps", str(steps), "--batch-size", str(config.batch_size),
            "--val-samples", "8", "--checkpoint-every-steps", str(steps), "--no-augment", "--workers", "0",
            "--no-progress",
        ]  # fmt: skip
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240, env=environment)
        assert done.returncode == 0, (done.stderr.strip().splitlines() or ["no output"])[-1]
        digests = dict(re.findall(r"rank (\d) weights sha256 ([0-9a-f]{64})", done.stdout))
        assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], f"rank digests {digests}"
        return f"2 processes ({'nccl' if device == 'cuda' else 'gloo'}), {steps} steps, equal weights on both ranks"

    def midas(self) -> str:
        hub, log = self.work / "hub", self.work / "midas.log"
        hub.mkdir(exist_ok=True)
        (hub / "hubconf.py").write_text(MIDAS_STAND_IN.format(log=str(log)))
        options = {"repo_or_dir": str(hub), "source": "local", "device": str(self.device), "batch_size": 8}
        config = BuildConfig(n_bg=3, n_fg=3, placements=2, size=32, depth="midas")
        make_dataset(
            self.work / "midas", config, workers=1, progress=False, depth_options={**options, "input_size": 32}
        )
        calls = [line.split() for line in log.read_text().splitlines()]
        sizes, autocast_on = [int(size) for size, _ in calls], {flag == "True" for _, flag in calls}
        assert sizes == [1, 1, 1] + [8, 4] * 3, f"batches {sizes}: each image once, composites 8 at a time"
        assert autocast_on == {self.cuda}, f"autocast {autocast_on} on {self.device}"
        return f"3 backgrounds once each, 36 composites in batches {sizes[3:]}, autocast {'on' if self.cuda else 'off'}"

    def throughput(self) -> str:
        dtype = amp_dtype(self.device)
        model = build_model(DEFAULT_MODEL).to(self.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        scaler, loss = make_scaler(self.device, dtype), FgBgLoss(check_finite=False)
        batch = self.batches(1, self.device)[0]
        repeats = 20 if self.cuda else 2

        def model_step() -> None:
            with autocast(self.device, dtype):
                total, _ = loss(model(batch["bg"], batch["fg_bg"]), batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(optimizer)
            scaler.update()

        model_rate = self.batch * repeats / timed(model_step, repeats, self.device)
        workers = min(2, os.cpu_count() or 1)
        transform = make_transforms(self.size, train=True, stats=self.manifest, output="uint8", seed=0)
        dataset = FgBgDataset(DatasetInfo.open(self.data), "unseen_train", transform=transform, output="uint8")
        loader = make_loader(dataset, batch_size=self.batch, shuffle=True, workers=workers, device=self.device)
        loader_rate = images_per_second(loader, self.device)
        virtual = VirtualFgBgDataset(
            DatasetInfo.open(self.data), "unseen_train", size=self.size, device=self.device, output="uint8"
        )
        virtual_rate = images_per_second(make_loader(virtual, batch_size=self.batch, shuffle=True, workers=0,
                                                     device=self.device), self.device)  # fmt: skip
        rate, timed_steps = self.end_to_end or (0.0, 0)
        end_to_end = f"end to end {rate:.0f} images/s ({timed_steps} timed steps of the minutes check's run"
        end_to_end += ", augmented, 2 workers)" if self.cuda else ")"
        return (
            f"at {self.size} px, batch {self.batch}: model only {model_rate:.0f} images/s "
            f"({precision_name(dtype)}); loader only {loader_rate:.0f} images/s (shards, augmented, {workers} "
            f"workers), {virtual_rate:.0f} images/s (composed on {self.device.type}, not augmented); " + end_to_end
        )


MIDAS_STAND_IN = '''
import torch

dependencies = ["torch"]


class _Tiny(torch.nn.Module):
    """Stand-in for MiDaS small: inverse depth rises with the row; logs each batch and whether it autocasts."""

    def forward(self, x):
        with open({log!r}, "a") as log:
            log.write(f"{{x.shape[0]}} {{torch.is_autocast_enabled(x.device.type)}}\\n")
        rows = torch.linspace(0, 1, x.shape[-2], device=x.device).view(1, -1, 1)
        return rows.expand(x.shape[0], -1, x.shape[-1]) + 0.1 * x.mean(dim=1)


def MiDaS_small(pretrained=True, **kwargs):
    return _Tiny()
'''


def largest_gap(a: dict, b: dict) -> tuple[float, str]:
    """The largest |a - b| over the numeric metrics both hold, and its name."""
    gaps = {
        name: abs(a[name] - b[name])
        for name in a
        if isinstance(a[name], float) and isinstance(b.get(name), float) and math.isfinite(a[name])
    }
    name = max(gaps, key=gaps.get)
    return gaps[name], name


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Seconds of `repeats` calls of `step` after two warm-up calls."""
    for _ in range(2):
        step()
    synchronize(device)
    begin = time.perf_counter()
    for _ in range(repeats):
        step()
    synchronize(device)
    return time.perf_counter() - begin


def images_per_second(loader, device: torch.device, batches: int = 12) -> float:
    """Images/s a loader delivers onto `device`, after its first batch (worker start-up)."""
    iterator = iter(loader)
    next(iterator)
    count, begin = 0, time.perf_counter()
    for _, batch in zip(range(batches), iterator, strict=False):
        count += len(batch["sample"])
        batch["fg_bg"].to(device, non_blocking=True)
    synchronize(device)
    return count / (time.perf_counter() - begin)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--minutes", type=float, help="the budget of the minutes check (default: 1 on a GPU, 0.1 on a CPU)"
    )
    args = parser.parse_args()
    began = time.perf_counter()
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as folder:
        checks = Checks(Path(folder), args.minutes)
        checks.report(
            "PASS",
            "dataset",
            time.perf_counter() - began,
            f"{len(FgBgDataset(DatasetInfo.open(checks.data), 'all'))} samples built",
        )
        checks.run("device", checks.device_and_dtype)
        checks.on_cuda("transfer", checks.transfer, checks.transfer_stand_in)
        checks.on_cuda(
            "composition", lambda: checks.compare_composition("cuda"), lambda: checks.compare_composition("cpu")
        )
        checks.on_cuda("train bf16", lambda: checks.training("bf16"), lambda: checks.training("bf16"))
        checks.on_cuda("train fp16 + GradScaler", lambda: checks.training("fp16"), lambda: checks.training("fp16"))
        checks.on_cuda("resume cpu -> cuda fp16", lambda: checks.resume("cuda"), lambda: checks.resume("cpu"))
        checks.on_cuda(f"minutes {checks.minutes:g}", lambda: checks.minutes_budget(MINUTES_TOLERANCE),
                       lambda: checks.minutes_budget(None))  # fmt: skip
        checks.on_cuda("evaluate cuda vs cpu", checks.evaluate_against_cpu, checks.evaluate_stand_in)
        both = [amp_dtype(checks.device), torch.float16]  # the GPU's own AMP, then fp16 with a GradScaler
        checks.on_cuda("lr range test", lambda: "; ".join(map(checks.lr_range, both)), lambda: checks.lr_range(None))
        checks.on_cuda("ddp 2 processes", lambda: checks.ddp("cuda"), lambda: checks.ddp("cpu"))
        checks.run("midas batching", checks.midas)
        checks.run("throughput", checks.throughput)
    print(f"{checks.failures} failed; {time.perf_counter() - began:.0f} s in all", flush=True)
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main())
