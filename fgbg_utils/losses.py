"""Training losses for the two heads: BCE + Dice + Lovász hinge on the mask logits, L1 + SSIM + gradient on
depth, and, for networks that predict them, BCE on where the depth follows the ground and cross-entropy
on the horizon's row.

Conventions (shared with `fgbg_utils.metrics`):

* ``outputs = {"mask": logits Bx1xHxW, "depth": Bx1xHxW in [0, 1]}`` as every model returns;
  ``batch = {"mask": Bx1xHxW in {0, 1}, "depth": Bx1xHxW in [0, 1], ...}`` as the loaders give.
  Targets are used as they are: no sigmoid is ever applied to a target (a bug of the seeds).
* Every function is device-agnostic (it follows its inputs) and computes in at least float32,
  so it is safe under autocast.
* Per-image reductions come first, then the batch mean, so a small foreground counts as much
  as a large one in the Dice term.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .depth import FAR_M, NEAR_M

MASK_PARTS = ("mask_bce", "mask_dice", "mask_lovasz")
DEPTH_PARTS = ("depth_l1", "depth_ssim", "depth_grad", "depth_ground", "depth_horizon")
PARTS = MASK_PARTS + DEPTH_PARTS
MODES = ("joint", "mask", "depth")
NEEDS = {"depth_ground": "ground", "depth_horizon": "horizon"}
"""The output each term needs besides its task's ("mask" or "depth"); without it the term reports 0."""

SSIM_C1 = 0.01**2
"""(K1 * L)^2 with K1 = 0.01 and data range L = 1 (Wang et al. 2004)."""
SSIM_C2 = 0.03**2
"""(K2 * L)^2 with K2 = 0.03 and data range L = 1."""


def _float(x: Tensor) -> Tensor:
    """At least float32: SSIM's E[x^2] - mu^2 loses everything in float16."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) or not x.is_floating_point() else x


def dice_loss(logits: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    """Soft Dice loss, 1 - (2|P.T| + eps) / (|P| + |T| + eps) per image, averaged over the batch.

    BCE alone is dominated by the background when the foreground is small; Dice scores the
    overlap itself. ``eps`` (Laplace smoothing) keeps an empty target with an empty prediction
    at a loss near 0 instead of 0/0.
    """
    probs = torch.sigmoid(_float(logits)).flatten(1)
    target = _float(target).flatten(1)
    intersection = (probs * target).sum(1)
    denominator = probs.sum(1) + target.sum(1)
    return (1.0 - (2.0 * intersection + eps) / (denominator + eps)).mean()


def lovasz_hinge(logits: Tensor, target: Tensor) -> Tensor:
    """Lovász hinge loss (Berman et al. 2018) per image, averaged over the batch.

    The Lovász extension of the IoU loss evaluated at the hinge errors ``relu(1 - logit * sign)``:
    a convex surrogate whose minimum is the mask with the best IoU of the image, where Dice
    rewards overlap only through probabilities. Each pixel's error is weighted by how much the IoU
    drops when that pixel joins the errors larger than it, so the one-pixel outline of a small
    object, most of its IoU, weighs as much as it counts.
    """
    logits, target = _float(logits).flatten(1), _float(target).flatten(1)
    errors, order = (1.0 - logits * (2.0 * target - 1.0)).sort(dim=1, descending=True)
    truth = target.gather(1, order)
    total = truth.sum(1, keepdim=True)
    intersection = total - truth.cumsum(1)
    union = total + (1.0 - truth).cumsum(1)
    iou_loss = 1.0 - intersection / union
    weights = torch.cat((iou_loss[:, :1], iou_loss[:, 1:] - iou_loss[:, :-1]), dim=1)
    return (F.relu(errors) * weights).sum(1).mean()


def _window(size: int, gaussian: bool, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A 1-D averaging kernel of `size` taps summing to 1, Gaussian (sigma) or box: the square window
    is its outer product with itself."""
    if gaussian:
        coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
        line = torch.exp(-(coords**2) / (2.0 * sigma**2))
    else:
        line = torch.ones(size, dtype=dtype, device=device)
    return line / line.sum()


def ssim_map(x: Tensor, y: Tensor, window: int = 7, gaussian: bool = True, sigma: float = 1.5) -> Tensor:
    """Per-pixel SSIM of BxCxHxW images with values in [0, 1], shape Bx1xH'xW' (mean over channels).

    The window is applied without padding ("valid"), so border pixels never see padding; it
    shrinks to the largest odd size that fits an image smaller than ``window``.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim needs two BxCxHxW tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = _float(x), _float(y)
    channels, height, width = x.shape[1:]
    size = min(window, height, width)
    size -= 1 - size % 2
    line = _window(size, gaussian, sigma, x.dtype, x.device).expand(5 * channels, 1, size)
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1).contiguous(memory_format=torch.channels_last)
    # under autocast the conv would run in bf16/fp16, and the variances below (E[x^2] - mu^2) would
    # cancel to negative values, an SSIM of -inf: it stays in float32. The window is applied as a
    # column then a row pass in channels-last layout: 7x faster forward and backward on a CPU at
    # 224 px than one square depthwise convolution (benchmarks/train_step.py's step).
    with torch.autocast(x.device.type, enabled=False):
        columns = F.conv2d(stacked, line[..., :, None], groups=5 * channels)
        windowed = F.conv2d(columns, line[..., None, :], groups=5 * channels)
    mu_x, mu_y, e_xx, e_yy, e_xy = windowed.chunk(5, dim=1)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov = e_xy - mu_x * mu_y
    numerator = (2.0 * mu_x * mu_y + SSIM_C1) * (2.0 * cov + SSIM_C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return (numerator / denominator).mean(1, keepdim=True)


def ssim(x: Tensor, y: Tensor, window: int = 7, gaussian: bool = True, sigma: float = 1.5) -> Tensor:
    """Mean SSIM of each image pair, shape (B,): 1 for identical images, lower for less similar.

    Gaussian window (sigma 1.5) by default, box window with ``gaussian=False``; the constants
    are the standard C1 = 0.01^2, C2 = 0.03^2 for data in [0, 1]. See `ssim_map`.
    """
    return ssim_map(x, y, window, gaussian, sigma).flatten(1).mean(1)


def gradient_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean |dx(pred) - dx(target)| + mean |dy(pred) - dy(target)| with forward differences.

    L1 alone blurs depth edges; matching the finite differences keeps the foreground's outline
    sharp (the edge term of the best student solutions).
    """
    pred, target = _float(pred), _float(target)
    diff = pred - target
    dx = diff[..., :, 1:] - diff[..., :, :-1]
    dy = diff[..., 1:, :] - diff[..., :-1, :]
    zero = diff.new_zeros(())
    return (dx.abs().mean() if dx.numel() else zero) + (dy.abs().mean() if dy.numel() else zero)


def ground_target(depth: Tensor) -> Tensor:
    """1 where a pixel's depth follows the ground, 0 where it belongs to an upright thing, from the
    depth map alone; shape Bx1x(H-1)xW (the bottom row has nothing below to compare with).

    Over the ground, each row is nearer (a larger value) than the row above it. An upright thing
    stands at one depth, so its pixels have the depth of the pixel below them, or are nearer than
    it where the thing overhangs farther ground (the underside of a tree's crown). The sky (0, the
    far plane) counts as ground: the ground's ramp is 0 there too. This suits the 8-bit maps up to
    224 px, where one row of ground is at least one level. Rows that an augmentation's
    nearest-neighbour resampling repeated read as upright: label noise on a few rows, which the
    gate's probability absorbs.
    """
    depth = _float(depth).detach()
    upright = (depth[..., :-1, :] >= depth[..., 1:, :]) & (depth[..., :-1, :] > 0)
    return (~upright).to(depth.dtype)


def ground_loss(ground_logits: Tensor, depth: Tensor) -> Tensor:
    """BCE between the predicted ground logits and `ground_target` (bottom row left out).

    The depth loss alone teaches the ground/upright choice only through the depth it mixes, and
    the sky (a third of the pixels, where the ramp is right) pulled it to "ground" everywhere
    above the horizon: trees and buildings came out as sky.
    """
    return F.binary_cross_entropy_with_logits(_float(ground_logits)[..., :-1, :], ground_target(depth))


def horizon_from_depth(depth: Tensor) -> tuple[Tensor, Tensor]:
    """Each image's horizon at its centre column, as a fraction of the height from the top, fitted
    to its ground; and whether there was ground enough to fit, both of shape (B,).

    Inverse depth over flat ground is an affine function of the pixel's row and column that is 0
    on the horizon (a function of the row alone for a level camera; a rotated frame tilts it). So
    a least-squares plane through the ground pixels (`ground_target`, strictly between the far and
    the near plane) gives the horizon from the depth map alone: where the plane reaches 0 in the
    middle column, the best level horizon for a tilted frame. A second fit leaves out what the
    first could not explain (more than 2 levels of the 8-bit encoding off it).
    """
    depth = _float(depth).detach()
    values = depth[..., :-1, :]
    weights = ((ground_target(depth) > 0.5) & (values > 0) & (values < 1)).to(depth.dtype)
    inverse = 1.0 / FAR_M + values * (1.0 / NEAR_M - 1.0 / FAR_M)
    height, width = depth.shape[-2:]
    rows = ((torch.arange(height - 1, device=depth.device, dtype=depth.dtype) + 0.5) / height).view(1, 1, -1, 1)
    columns = ((torch.arange(width, device=depth.device, dtype=depth.dtype) + 0.5) / width).view(1, 1, 1, -1)
    level = (1.0 / NEAR_M - 1.0 / FAR_M) / 255.0  # one step of the 8-bit encoding, in inverse metres
    for _ in range(2):
        fitted, horizon, valid = _fit_ground_plane(rows, columns, inverse, weights)
        weights = weights * ((inverse - fitted).abs() <= 2 * level)
    return horizon, valid


def _fit_ground_plane(rows: Tensor, columns: Tensor, values: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Weighted least-squares plane ``values = a * row + b * column + c`` per image:
    (the plane at every pixel, the row where it is 0 in the middle column, whether that fit holds)."""

    def mean(x: Tensor) -> Tensor:
        return (weights * x).sum((1, 2, 3), keepdim=True) / weights.sum((1, 2, 3), keepdim=True).clamp(min=1.0)

    def moment(x: Tensor, y: Tensor) -> Tensor:
        return (weights * x * y).sum((1, 2, 3), keepdim=True)

    r, c = rows - mean(rows), columns - mean(columns)
    v = values - mean(values)
    rr, cc, rc, rv, cv = moment(r, r), moment(c, c), moment(r, c), moment(r, v), moment(c, v)
    determinant = rr * cc - rc * rc
    safe = torch.where(determinant > 0, determinant, 1.0)
    a, b = (cc * rv - rc * cv) / safe, (rr * cv - rc * rv) / safe
    plane = mean(values) + a * r + b * c
    middle = mean(values) + b * (0.5 - mean(columns))  # the plane at the mean row, middle column
    zero = (mean(rows) - middle / torch.where(a > 0, a, 1.0)).flatten()
    holds = (determinant > 1e-12 * weights.sum((1, 2, 3), keepdim=True) ** 2).flatten() & (a.flatten() > 0)
    return plane, zero, holds & (zero >= 0) & (zero <= 1)


def horizon_loss(scores: Tensor, depth: Tensor) -> Tensor:
    """Cross-entropy between the horizon's row scores (B x rows) and the fitted horizon
    (`horizon_from_depth`), spread over the two rows around it so that their soft-argmax is exactly
    that horizon; images without ground to fit are left out.

    Learnt only through the ramp's depth error, `fgbg_net`'s horizon was still 0.85 to 2 px off
    at 96 px after 10-minute runs; scored row by row like this (how a localisation head is
    usually trained) it was 0.38 px off after 560 steps.
    """
    scores = _float(scores)
    horizon, valid = horizon_from_depth(depth)
    rows = scores.shape[1]
    position = (horizon * rows - 0.5).clamp(0.0, rows - 1.0)
    lower = position.floor().clamp(max=rows - 2)
    upper_share = (position - lower)[:, None]
    index = lower.long()[:, None]
    target = torch.zeros_like(scores).scatter(1, index, 1.0 - upper_share).scatter(1, index + 1, upper_share)
    per_image = -(target * torch.log_softmax(scores, dim=1)).sum(1)
    return torch.where(valid, per_image, 0.0).sum() / valid.sum().clamp(min=1)


@dataclass
class LossWeights:
    """Weight of each term in the total; a weight of 0 skips computing the term."""

    mask_bce: float = 1.0
    mask_dice: float = 1.0
    mask_lovasz: float = 1.0
    depth_l1: float = 1.0
    depth_ssim: float = 1.0
    depth_grad: float = 1.0
    depth_ground: float = 1.0
    depth_horizon: float = 1.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class NonFiniteLossError(FloatingPointError):
    """The total loss is NaN or inf; `parts` names the terms that went non-finite."""

    def __init__(self, message: str, parts: list[str], inputs: list[str]):
        super().__init__(message)
        self.parts = parts
        self.inputs = inputs


class FgBgLoss(nn.Module):
    """Weighted sum of the mask terms (BCE-with-logits, Dice, Lovász hinge) and the depth terms
    (L1, (1 - SSIM) / 2, gradient L1, and `ground_loss` and `horizon_loss` for a network whose
    outputs hold ``"ground"`` and ``"horizon"``; reported as 0 for the others).

    ``mode="mask"`` or ``"depth"`` drops the other task's terms (their parts are reported as
    0), to answer the course's question of solving one output first; ``"joint"`` uses both.
    ``forward`` returns ``(total, parts)`` with ``parts`` the unweighted terms, detached, so a
    training loop can log them without holding the graph. A non-finite total raises
    `NonFiniteLossError` naming the culprits instead of silently poisoning the weights.
    """

    def __init__(
        self,
        weights: LossWeights | None = None,
        mode: str = "joint",
        ssim_window: int = 7,
        check_finite: bool = True,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown loss mode {mode!r}: choose one of {', '.join(MODES)}")
        self.weights = weights if weights is not None else LossWeights()
        self.mode = mode
        self.ssim_window = ssim_window
        self.check_finite = check_finite

    def active_parts(self) -> tuple[str, ...]:
        """The terms this mode computes (weight 0 terms included, they are skipped later)."""
        return {"joint": PARTS, "mask": MASK_PARTS, "depth": DEPTH_PARTS}[self.mode]

    def _term(self, name: str, outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> Tensor:
        if name in MASK_PARTS:
            logits, target = _float(outputs["mask"]), _float(batch["mask"]).to(outputs["mask"].device)
            if name == "mask_bce":
                return F.binary_cross_entropy_with_logits(logits, target)
            if name == "mask_dice":
                return dice_loss(logits, target)
            return lovasz_hinge(logits, target)
        pred, target = _float(outputs["depth"]), _float(batch["depth"]).to(outputs["depth"].device)
        if name == "depth_ground":
            return ground_loss(outputs["ground"], target)
        if name == "depth_horizon":
            return horizon_loss(outputs["horizon"], target)
        if name == "depth_l1":
            return F.l1_loss(pred, target)
        if name == "depth_ssim":
            return (1.0 - ssim(pred, target, window=self.ssim_window).mean()) / 2.0
        return gradient_loss(pred, target)

    def forward(self, outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        active = self.active_parts()
        reference = outputs["mask"] if "mask" in outputs else outputs["depth"]
        zero = reference.new_zeros((), dtype=torch.float32)
        total = zero
        parts: dict[str, Tensor] = {}
        for name in PARTS:
            weight = getattr(self.weights, name)
            needed = NEEDS.get(name, "mask" if name in MASK_PARTS else "depth")
            if name not in active or weight == 0 or needed not in outputs:
                parts[name] = zero.detach()
                continue
            value = self._term(name, outputs, batch)
            parts[name] = value.detach()
            total = total + weight * value
        parts["total"] = total.detach()
        if self.check_finite and not bool(torch.isfinite(total)):
            self._raise(parts, outputs, batch, active)
        return total, parts

    @staticmethod
    def _raise(parts: dict[str, Tensor], outputs: dict, batch: dict, active: tuple[str, ...]) -> None:
        bad_parts = [name for name in active if not math.isfinite(float(parts[name]))]
        bad_inputs = [
            f"{where}[{key!r}]"
            for where, tensors in (("outputs", outputs), ("batch", batch))
            for key in ("mask", "depth")
            if key in tensors and torch.is_tensor(tensors[key]) and not bool(torch.isfinite(tensors[key]).all())
        ]
        values = ", ".join(f"{name}={float(parts[name])}" for name in bad_parts)
        where = f"; non-finite values already in {', '.join(bad_inputs)}" if bad_inputs else ""
        raise NonFiniteLossError(
            f"non-finite loss: {values or 'total=' + str(float(parts['total']))}{where} "
            "(check the inputs, the learning rate, and mixed precision)",
            bad_parts,
            bad_inputs,
        )
