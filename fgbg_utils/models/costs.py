"""What a network costs: parameters and FLOPs per sample, measured the same way for every model."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from . import MODELS, build_model, count_parameters


def measured_copy(model: nn.Module, size: int) -> tuple[nn.Module, list[torch.Tensor]]:
    """A copy of `model` in eval mode and one bg/fg_bg pair of `size` px to measure it on.

    Usually on the meta device, so a measurement needs no memory or compute for activations: a
    100-GFLOP network is measured in well under a second. A model whose work depends on the pixels
    (``pixel_dependent``: which tiles it refines) runs on the CPU, on a background with a square a
    third of the side pasted into it, as `benchmarks/train_step.py` times it.
    """
    if not getattr(model, "pixel_dependent", False):
        return copy.deepcopy(model).to("meta").eval(), [torch.empty(1, 3, size, size, device="meta") for _ in range(2)]
    generator = torch.Generator().manual_seed(0)
    bg = torch.rand(1, 3, size, size, generator=generator)
    fg_bg = bg.clone()
    low, high = size // 3, 2 * size // 3
    fg_bg[..., low:high, low:high] = torch.rand(1, 3, high - low, high - low, generator=generator)
    return copy.deepcopy(model).cpu().eval(), [bg, fg_bg]


def flops_per_sample(model: nn.Module, size: int = 224) -> int:
    """FLOPs of one forward pass on one bg/fg_bg pair of `size` px (torch's own flop counter)."""
    copied, pair = measured_copy(model, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        copied(*pair)
    return int(counter.get_total_flops())


def architecture_table(size: int = 224) -> list[dict]:
    """One row per registered architecture: name, parameters, GFLOPs per sample at `size` px."""
    rows = []
    for name in MODELS:
        model = build_model(name)
        rows.append(
            {"model": name, "parameters": count_parameters(model), "gflops": flops_per_sample(model, size) / 1e9}
        )
    return rows


def layer_table(model: nn.Module, size: int = 64) -> list[dict]:
    """Every leaf layer in call order with its output shape and parameters, for one sample.

    Works on any model (torchsummary 1.5.1 breaks on modules that take lists or return
    tuples); measured as `measured_copy` says.
    """
    copied, pair = measured_copy(model, size)
    rows: list[dict] = []

    def record(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else "multiple"
            params = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append({"layer": name, "type": type(module).__name__, "output": shape, "parameters": params})

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in copied.named_modules() if not list(m.children())]
    try:
        with torch.no_grad():
            copied(*pair)
    finally:
        for handle in handles:
            handle.remove()
    return rows
