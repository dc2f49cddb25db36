"""``fgbg_net_refined``: `FgBgNet` at a low resolution for the context, with its outputs at the stored one.

The network runs `FgBgNet` on both images shrunk to `context_size` (96 px for a 224 px frame), where it
finds the object and the scene's geometry for about a fifth of the arithmetic at full size. Its
outputs then come back at the input's resolution, the way BackgroundMattingV2 refines a coarse alpha:

* Depth is drawn at full resolution from the same parts: the ground's ramp, exact at any size, the
  upsampled gate and upright depths, and the object at the ramp of its refined mask's lowest row.
* The mask's upsampled logits are corrected only in the 16 x 16 tiles that need it: tiles where
  ``fg_bg - bg`` is not 0 (the object touches them: the background is re-encoded through the photo's
  JPEG codec, so every tile it does not touch differs by exactly 0) and where the coarse mask is
  unsure within `REACH` pixels. A small `BlockRefiner` sees each chosen tile with a margin, at full
  resolution; every other pixel keeps the upsampled logit exactly.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .blocks import upsample_to
from .fgbg_net import DEFAULT_WIDTHS, FgBgNet
from .outputs import Prediction, prediction

TILE = 16
"""The refined tiles' side: two 8 x 8 JPEG blocks, and the base network's output stride at 96 px."""
REACH = 4
"""How far outside a tile the coarse mask's uncertainty still selects it, and the margin its refiner sees."""
CONFIDENCE = 0.98
"""A coarse probability above this, or below 1 minus it, counts as sure."""
CONTEXT_SCALE = 96 / 224
"""The context's share of the frame: 96 px for the course's 224 px, where the kit's CPU recipe trained."""
HIDDEN = 8
"""The refiner's channels: 16 cost three times the arithmetic per tile, more than the whole 96 px base."""


def context_size(size: int) -> int:
    """The side the base network works at for a frame side of `size`: `CONTEXT_SCALE` of it, a
    multiple of 16, at least 32, and never above `size` itself."""
    return min(size, max(32, 16 * round(size * CONTEXT_SCALE / 16)))


def changed_tiles(bg: Tensor, fg_bg: Tensor) -> Tensor:
    """Per `TILE` x `TILE` tile, whether any pixel of ``fg_bg`` differs from ``bg``: B x 1 x H/16 x W/16 bool."""
    changed = (fg_bg != bg).any(dim=1, keepdim=True).float()
    return F.max_pool2d(changed, TILE) > 0


def uncertain_tiles(coarse_logits: Tensor) -> Tensor:
    """Per tile, whether the coarse mask's probability lies strictly between sure values anywhere within
    `REACH` pixels of it: B x 1 x H/16 x W/16 bool."""
    probability = torch.sigmoid(coarse_logits.detach().float())
    unsure = ((probability > 1.0 - CONFIDENCE) & (probability < CONFIDENCE)).float()
    return F.max_pool2d(unsure, TILE + 2 * REACH, stride=TILE, padding=REACH) > 0


def tile_windows(selected: Tensor, height: int, width: int, margin: int) -> tuple[Tensor, Tensor]:
    """(image index, flat pixel indices (TILE + 2 margin)^2) of each selected tile's window in a `height` x
    `width` frame: the tile and `margin` pixels around it, edge pixels repeated beyond the frame."""
    image, tile_row, tile_column = selected[:, 0].nonzero(as_tuple=True)
    offsets = torch.arange(-margin, TILE + margin, device=selected.device)
    rows = (tile_row[:, None] * TILE + offsets).clamp(0, height - 1)
    columns = (tile_column[:, None] * TILE + offsets).clamp(0, width - 1)
    return image, (rows[:, :, None] * width + columns[:, None, :]).flatten(1)


def gather_windows(x: Tensor, image: Tensor, window: Tensor) -> Tensor:
    """The windows `tile_windows` names, out of `x` (B x C x H x W): tiles x C x side x side."""
    side = math.isqrt(window.shape[1])
    pixels = x.flatten(2)[image[:, None], :, window]  # tiles x side^2 x C
    return pixels.view(-1, side, side, x.shape[1]).permute(0, 3, 1, 2)


class BlockRefiner(nn.Module):
    """Corrects the mask's logits inside chosen tiles from the full-resolution pixels around them.

    Each tile is read with a `REACH`-pixel margin, gathered by pixel index (padding the whole frame
    and cutting windows out of it cost more, forward and backward, than the layers themselves on a CPU):
    the coarse logits, ``fg_bg``, ``bg``, their signed change and its size. Four unpadded 3 x 3
    convolutions shrink the window back to the tile, so no tile sees padding or its neighbours'
    results. The last layer starts at zero: an untrained refiner leaves the coarse logits as they are.
    """

    def __init__(self, hidden: int = HIDDEN):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1 + 4 * 3, hidden, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 3),
        )
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def forward(self, logits: Tensor, bg: Tensor, fg_bg: Tensor, selected: Tensor) -> Tensor:
        """`logits` (B x 1 x H x W) plus a correction in the `selected` tiles (B x 1 x H/16 x W/16).

        With no tile selected the layers still run, on none: every parameter stays in the graph, as
        DistributedDataParallel needs on every rank."""
        height, width = logits.shape[-2:]
        image, window = tile_windows(selected, height, width, REACH)
        scene, background = (gather_windows(x, image, window) for x in (fg_bg, bg))
        change = scene - background
        coarse = gather_windows(logits, image, window).to(scene.dtype)
        correction = self.layers(torch.cat((coarse, scene, background, change, change.abs()), dim=1))
        image, core = tile_windows(selected, height, width, 0)
        flat = torch.zeros_like(logits).flatten(1).index_put((image[:, None], core), correction.flatten(1).float())
        return logits + flat.view_as(logits)


class Refinement(NamedTuple):
    """The prediction at full resolution, and how it came about: the upsampled mask logits before
    refinement and the tiles the refiner changed (B x 1 x H/16 x W/16)."""

    prediction: Prediction
    coarse_mask: Tensor
    selected: Tensor


class RefinedFgBgNet(nn.Module):
    """`FgBgNet` at `context_size`, its mask refined in the tiles the object touches, depth drawn at full size.

    Input height and width must be divisible by 16. `width` multiplies the base network's channels.
    With `refine` False the tiles are never refined (the upsampled logits are the mask): the ablation
    ``fgbg_net_upsampled`` that measures what the refiner adds.
    """

    pixel_dependent = True
    """Its work depends on the pixels (the tiles it refines): `fgbg_utils.models.costs` measures it on real values."""

    def __init__(self, widths: tuple[int, ...] = DEFAULT_WIDTHS, width: float = 1.0, refine: bool = True):
        super().__init__()
        self.base = FgBgNet(widths, width)
        self.refiner = BlockRefiner() if refine else None

    def refine(self, bg: Tensor, fg_bg: Tensor) -> Refinement:
        """The prediction at the input's size, with the coarse mask and the tiles refined beside it."""
        height, width = fg_bg.shape[-2:]
        context = context_size(height), context_size(width)
        if context == (height, width):
            small_bg, small_fg_bg = bg, fg_bg
        else:
            small_bg, small_fg_bg = (
                F.interpolate(x, size=context, mode="bilinear", antialias=True) for x in (bg, fg_bg)
            )
        base = self.base
        heads = base.heads(small_bg, small_fg_bg)
        mask_logits, stands_logits, gate_logits, foot_offset = heads.raw.split(1, dim=1)
        upright = base.upright(heads, gate_logits, foot_offset)
        gate_logits, upright, stands_logits, coarse_mask = (
            upsample_to(x, fg_bg) for x in (gate_logits, upright, stands_logits, mask_logits)
        )
        if self.refiner is None:
            selected = torch.zeros_like(changed_tiles(bg, fg_bg))
            mask = coarse_mask
        else:
            selected = changed_tiles(bg, fg_bg) & uncertain_tiles(coarse_mask)
            mask = self.refiner(coarse_mask, bg, fg_bg, selected)
        ground = base.ground_at(heads.horizon, heads.slope, height, width)
        depth = base.with_object(base.scene(ground, gate_logits, upright), mask, stands_logits, heads)
        outputs = prediction(mask, depth, ground_logits=gate_logits, horizon_scores=heads.horizon_scores)
        return Refinement(outputs, coarse_mask, selected)

    def forward(self, bg: Tensor, fg_bg: Tensor) -> Prediction:
        return self.refine(bg, fg_bg).prediction
