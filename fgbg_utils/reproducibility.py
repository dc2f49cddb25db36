"""Every random state a resumed run needs to continue exactly, and the global torch settings of a
run (determinism, denormal flushing), restored afterwards."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from .train_config import (
    TrainConfig,
)


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
