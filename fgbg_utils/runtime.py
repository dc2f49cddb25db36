"""Where the code runs (Colab or not, which device) and the run profiles every notebook shares."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TrainingRecipe:
    """How a profile trains: the `fgbg_utils.train.TrainConfig` fields it sets (`options`) and its
    time budget. The one place the recipes live: `TrainConfig`'s defaults and the CLI's are the CPU
    recipe (`CPU_RECIPE`), notebook 06 and ``train --recipe NAME`` read the others.

    `minutes` None means a fixed `steps` (the smoke profile's seconds-long CI run)."""

    model: str
    sizes: tuple[int, ...]
    """Progressive resizing: equal shares of the steps at each size, in order; () = the dataset's size."""
    lr: float
    batch_size: int
    workers: int
    val_samples: int
    checkpoint_every_minutes: float | None
    minutes: float | None = None
    steps: int | None = None
    checkpoint_every_steps: int | None = None
    amp: bool | None = None
    """None: on when CUDA is used; never on a CPU."""
    channels_last: bool = False

    def options(self) -> dict:
        """The TrainConfig fields this recipe sets (all but the budget: `minutes` and `steps`)."""
        return {name: getattr(self, name) for name in RECIPE_OPTIONS}


RECIPE_OPTIONS = (
    "model",
    "sizes",
    "lr",
    "batch_size",
    "workers",
    "val_samples",
    "checkpoint_every_minutes",
    "checkpoint_every_steps",
    "amp",
    "channels_last",
)
"""The TrainConfig fields a recipe decides."""

CPU_RECIPE = TrainingRecipe(
    model="fgbg_net_refined",
    sizes=(),  # the dataset's: the network works at 3/7 of it inside, and answers at the stored size
    lr=6e-3,  # above notebook 05's suggestion, short of where its loss turns up; beat 3e-3 at 1,000 steps
    batch_size=32,
    workers=1,  # one loader worker beside the training process on a 2-core laptop or Colab
    val_samples=512,
    checkpoint_every_minutes=2.0,  # a re-plan of the steps at each: the schedule ends on time
    minutes=10,
)
"""The recipe the README's figures come from: 10 minutes on a 2-core CPU."""

GPU_BATCH = 64
FULL_RECIPE = TrainingRecipe(
    model="fgbg_net_refined_wide",
    sizes=(),
    lr=CPU_RECIPE.lr * GPU_BATCH / CPU_RECIPE.batch_size,  # linear scaling with the batch: 1.2e-2
    batch_size=GPU_BATCH,
    workers=2,  # Colab's 2 vCPUs
    val_samples=1024,
    checkpoint_every_minutes=5.0,
    minutes=60,
    amp=True,
    channels_last=True,
)
"""An hour on one GPU: the wider refined network at the dataset's 224 px, mixed precision, channels-last.
The batch and the learning rate are the CPU recipe's, both doubled (linear scaling); neither they
nor the network's width have been measured on a GPU yet (notebook 06 says what was measured)."""

SMOKE_RECIPE = TrainingRecipe(
    model=CPU_RECIPE.model,
    sizes=(),
    lr=CPU_RECIPE.lr,
    batch_size=8,
    workers=0,
    val_samples=16,
    checkpoint_every_minutes=None,
    steps=6,
    checkpoint_every_steps=3,
)
"""Seconds on a CPU: checks that training, checkpoints and resume work (CI)."""


@dataclass(frozen=True)
class Profile:
    """How big a run is. `smoke` checks that everything works in seconds (CI), `demo` gives
    meaningful results on a laptop CPU in minutes, `full` is the course's dataset, trained for an
    hour on a GPU. `training` is its recipe."""

    name: str
    n_bg: int
    n_fg: int
    placements: int
    size: int
    training: TrainingRecipe = CPU_RECIPE

    @property
    def samples(self) -> int:
        return self.n_bg * self.n_fg * 2 * self.placements


PROFILES = {
    "smoke": Profile("smoke", n_bg=6, n_fg=6, placements=2, size=64, training=SMOKE_RECIPE),
    "demo": Profile("demo", n_bg=100, n_fg=100, placements=2, size=224, training=CPU_RECIPE),
    "full": Profile("full", n_bg=100, n_fg=100, placements=20, size=224, training=FULL_RECIPE),
}
PROFILE_VARIABLE = "FGBG_PROFILE"


def get_profile(name: str | None = None) -> Profile:
    """The profile named, else the one in $FGBG_PROFILE, else `demo`."""
    name = name or os.environ.get(PROFILE_VARIABLE) or "demo"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def in_colab() -> bool:
    return Path("/content").is_dir() and "COLAB_RELEASE_TAG" in os.environ


def mount_drive(mountpoint: str | Path = "/content/drive") -> Path | None:
    """On Colab, mount Google Drive at `mountpoint` (Colab asks for permission the first time)
    and return its "My Drive" folder; elsewhere do nothing and return None."""
    if not in_colab():
        return None
    from google.colab import drive  # only importable on Colab

    mountpoint = Path(mountpoint)
    if not (mountpoint / "MyDrive").is_dir():
        drive.mount(str(mountpoint))
    return mountpoint / "MyDrive"


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def choose_device(requested: str | None = None) -> torch.device:
    """`requested` ("cpu", "cuda", "cuda:1"), else CUDA when there is a GPU; a ValueError saying why
    when it is not a device of this machine (not torch's error from deep inside a load)."""
    import torch

    name = requested or default_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: not a device name (cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: this machine has no CUDA GPU (on Colab: Runtime > Change runtime type)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def repo_root() -> Path | None:
    """The kit's checkout when the package runs from one (editable install), else None."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").exists() and (root / "notebooks").is_dir() else None


def runs_dir() -> Path:
    """Where notebooks and `make demo` keep datasets and runs: $FGBG_RUNS, else runs/ in the
    checkout, else ./runs."""
    if "FGBG_RUNS" in os.environ:
        return Path(os.environ["FGBG_RUNS"])
    root = repo_root()
    return (root if root else Path.cwd()) / "runs"


def describe_runtime() -> str:
    """One line on where this runs: Colab or not, Python, torch, device and GPU."""
    import platform

    import torch

    device = default_device()
    gpu = f" ({torch.cuda.get_device_name(0)})" if device == "cuda" else ""
    place = "Colab" if in_colab() else platform.node() or "local"
    return f"{place}: Python {platform.python_version()}, torch {torch.__version__}, device {device}{gpu}"


def worker_context():
    """The multiprocessing context for worker pools: forkserver, or spawn where there is none
    (Windows).

    Plain fork copies the parent's thread pools (OpenCV's, torch's) in whatever state they are
    in, and a child can then deadlock on a lock no thread will release; forkserver starts
    workers from a clean, single-threaded server process and is still quick.
    """
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)
