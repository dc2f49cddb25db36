"""The one output format every network in this package returns."""

from torch import Tensor

Prediction = dict[str, Tensor]
"""``{"mask": logits Bx1xHxW, "depth": inverse depth Bx1xHxW in [0, 1]}``, and ``"ground"``
(logits Bx1xHxW that a pixel's depth follows the ground's rows) from networks that decide that."""


def prediction(mask_logits: Tensor, depth: Tensor, ground_logits: Tensor | None = None) -> Prediction:
    """Pack the heads under fixed keys, so training and evaluation code never depends on the network."""
    outputs = {"mask": mask_logits, "depth": depth}
    if ground_logits is not None:
        outputs["ground"] = ground_logits
    return outputs
