"""The mixed-precision policy that training, validation, evaluation, the LR range test and MiDaS share:
which dtype autocasts on a device, the autocast context, and the GradScaler that goes with it.

One policy, so a network is never trained in fp16 and scored (or its learning rate chosen) in fp32.
"""

from __future__ import annotations

import contextlib

import torch


def amp_dtype(device: torch.device | str, amp: bool | None = None) -> torch.dtype | None:
    """bf16 on GPUs with bf16 tensor cores (compute capability 8 and up), else fp16; None = full
    precision (always on CPU, and when `amp` is False). `torch.cuda.is_bf16_supported()` also says yes
    where bf16 is only emulated, as on Colab's free T4 (7.5), which then runs slower than fp16 with a
    scaler."""
    device = torch.device(device)
    if device.type != "cuda" or amp is False:
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast on `device` in `dtype`, or no context when `dtype` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def make_scaler(device: torch.device | str, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A GradScaler, enabled for fp16 only (bf16 and fp32 have fp32's range: nothing to scale)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=dtype == torch.float16)


def precision_name(dtype: torch.dtype | None) -> str:
    """ "float16", "bfloat16" or "float32": how a checkpoint records the precision it trained in."""
    return str(dtype or torch.float32).removeprefix("torch.")


def restore_scaler(
    scaler: torch.amp.GradScaler, saved: dict | None, saved_precision: str | None, precision: str
) -> str | None:
    """Load a checkpoint's GradScaler state into `scaler` when it can continue it; else leave `scaler`
    fresh and return one sentence saying so. A run started on a CPU or in bf16 saves a disabled
    scaler's empty state, which an fp16 scaler refuses; an fp16 scaler's state means nothing to bf16.

    `precision` is this session's (`precision_name`); `saved_precision` the checkpoint's, None for
    checkpoints of earlier revisions (a non-empty scaler state was then fp16's).
    """
    saved = saved or {}
    before = saved_precision or ("float16" if saved else "float32 or bfloat16")
    if before == precision or (not saved and not scaler.is_enabled()):
        if saved and scaler.is_enabled():
            scaler.load_state_dict(saved)
        return None
    fresh = "a fresh GradScaler" if scaler.is_enabled() else "its GradScaler state is not needed"
    return f"the checkpoint trained in {before}, this session runs in {precision}: {fresh}"
