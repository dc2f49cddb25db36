"""The one output format every network in this package returns."""

from torch import Tensor

Prediction = dict[str, Tensor]
"""``{"mask": logits Bx1xHxW, "depth": inverse depth Bx1xHxW in [0, 1]}``."""


def prediction(mask_logits: Tensor, depth: Tensor) -> Prediction:
    """Pack both heads under fixed keys, so training and evaluation code never depends on the network."""
    return {"mask": mask_logits, "depth": depth}
