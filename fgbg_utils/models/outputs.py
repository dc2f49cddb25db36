"""The one output format every network in this package returns."""

from torch import Tensor

Prediction = dict[str, Tensor]
"""``{"mask": logits Bx1xHxW, "depth": inverse depth Bx1xHxW in [0, 1]}``; networks built on the
ground plane add ``"ground"`` (logits Bx1xHxW that a pixel's depth follows the ground's rows) and
``"horizon"`` (logits BxH over the rows, of holding the horizon)."""


def prediction(
    mask_logits: Tensor, depth: Tensor, ground_logits: Tensor | None = None, horizon_scores: Tensor | None = None
) -> Prediction:
    """Pack the heads under fixed keys, so training and evaluation code never depends on the network."""
    outputs = {"mask": mask_logits, "depth": depth}
    if ground_logits is not None:
        outputs["ground"] = ground_logits
    if horizon_scores is not None:
        outputs["horizon"] = horizon_scores
    return outputs
