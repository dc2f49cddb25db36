"""Networks for the fg/bg task, all with one interface, and a registry to build them by name.

Every model is called as ``model(bg, fg_bg)`` with two Bx3xHxW tensors (H, W divisible by 16) and returns
``{"mask": logits Bx1xHxW, "depth": Bx1xHxW in [0, 1]}`` (inverse depth, 1 = near). torchsummary 1.5.1
accepts these dict outputs: ``summary(model, [(3, 64, 64), (3, 64, 64)], device="cpu")``.

* ``fgbg_net``: the kit's own design (shared-weight difference encoder), well under 1.5M parameters.
* ``fgbg_net_wide``: the same at twice the channels (`WIDE_WIDTH`), for the full profile's hour on a GPU.
* ``fgbg_net_refined`` (the default), ``fgbg_net_refined_wide``: those at a low resolution for the
  context, with the mask refined and the depth drawn at the input's resolution (the stored 224 px);
  ``fgbg_net_upsampled``, the same without the refiner, measures what it adds.
* ``seed004_dilated``, ``seed002_unet6``, ``seed000_unet_shared``, ``seed003_unet``: reproductions of
  the course write-ups, with their exact parameter counts, to compare against side by side.
"""

from collections.abc import Callable
from functools import partial
from pathlib import Path

from torch import nn

from .fgbg_net import FgBgNet
from .fgbg_net_refined import RefinedFgBgNet
from .outputs import Prediction, prediction
from .seed000_unet_shared import Seed000SharedUNet
from .seed002_unet6 import Seed002UNet6
from .seed003_unet import Seed003UNet
from .seed004_dilated import Seed004Dilated

DEFAULT_MODEL = "fgbg_net_refined"
WIDE_WIDTH = 2.0
"""`fgbg_net_wide`'s width multiplier: 583,834 parameters (width 3, 1,270,266, is inside the course's
1.5M too). Which width scores best at 224 px is not measured yet (that takes GPU runs); notebook 06
gives what `benchmarks/fgbg_net_widths.py` measured on a CPU."""

MODELS: dict[str, Callable[..., nn.Module]] = {
    "fgbg_net": FgBgNet,
    "fgbg_net_wide": partial(FgBgNet, width=WIDE_WIDTH),
    DEFAULT_MODEL: RefinedFgBgNet,
    "fgbg_net_refined_wide": partial(RefinedFgBgNet, width=WIDE_WIDTH),
    "fgbg_net_upsampled": partial(RefinedFgBgNet, refine=False),
    "seed004_dilated": Seed004Dilated,
    "seed002_unet6": Seed002UNet6,
    "seed000_unet_shared": Seed000SharedUNet,
    "seed003_unet": Seed003UNet,
}


def build_model(name: str = DEFAULT_MODEL, **kwargs) -> nn.Module:
    """A fresh, randomly initialised model from the registry; ``kwargs`` go to its constructor."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}") from None
    return factory(**kwargs)


def load_weights(model: nn.Module, weights: dict, path: str | Path, name: str) -> nn.Module:
    """`model` with a checkpoint's `weights`; weights saved by another revision of network `name` are
    refused with a message that names the checkpoint's `path` and the layers that differ."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        differences = " ".join(str(error).split("\n", 1)[-1].split())
        raise ValueError(
            f"{path}: its weights do not fit this version of {name} (made by another revision of the kit; "
            f"retrain, or use that revision): {differences[:300]}"
        ) from error
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (the figure the write-ups report)."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "WIDE_WIDTH",
    "FgBgNet",
    "Prediction",
    "RefinedFgBgNet",
    "Seed000SharedUNet",
    "Seed002UNet6",
    "Seed003UNet",
    "Seed004Dilated",
    "build_model",
    "count_parameters",
    "load_weights",
    "prediction",
]
