"""Checkpoint files: atomic writes, the newest, the last k and the best, loading with
``weights_only=True``, and digests of the weights. A checkpoint of another format number is refused
by name."""

from __future__ import annotations

import hashlib
import pickle
import shutil
from pathlib import Path

import torch
from torch import nn

from .store import atomic_path

CHECKPOINT_FORMAT = 1
"""The checkpoint format this kit writes and reads (`load_checkpoint` refuses any other)."""


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
    if state.get("format_version") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path}: checkpoint format {state.get('format_version')}, written by another version of the kit "
            f"(this one reads format {CHECKPOINT_FORMAT}): retrain"
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
