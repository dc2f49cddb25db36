"""``fgbg_net``: the kit's own network, designed for this task and for short CPU training runs.

The object is, by construction, whatever differs between ``bg`` and ``fg_bg``. So both images go through
one shared encoder (same weights, one batched pass), and at every scale the decoder sees the scene
features together with their absolute difference from the background features. Coordinate channels
give the decoder each pixel's row and column. A light UNet-style decoder with skip connections feeds
two small heads at half resolution, and one small full-resolution block sharpens both outputs from the
pixel-level difference.

Depth uses the scene's geometry. Over flat ground seen by a level camera, inverse depth grows linearly
with the row below the horizon, so the ground's depth is fixed by two numbers per image: the horizon row
and the slope (1 / camera height). A `Horizon` head scores every row of the background's per-row
profile (sub-pixel, by soft-argmax); a `GroundPlane` learns one slope for the dataset's cameras and
draws that ramp exactly.
Everything upright (trees, buildings, the pasted object) stands on the ground and takes the depth of
its foot row. The depth head predicts, per pixel, a gate between the ground ramp and an upright depth.
The upright depth is read where an upright thing's column ends, just above a pixel the gate calls
ground (the ramp there, or a predicted offset lower for an overhang such as a tree's crown), and
carried up the column to every pixel above it: once the gate tells structures from the ground, a
tall building's depth is right everywhere, with nothing to regress per pixel. The pasted object is
one such thing, and the mask head has already found it: it takes the ramp at the lowest row of its
own predicted mask (the builder's rule for its depth), through a learnt "stands on the ground" gate
that a depth source without that rule (MiDaS) can close. Any depth map can still be expressed (with
the gate at "ground" below every pixel, an offset reaches any value of the ramp), so other depth
sources train too. A regression head alone smears the ramp near the horizon,
where a one-pixel error is a large error in metres.

For a mask-only or depth-only model, train on one loss and read one key of the output.
"""

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..depth import FAR_M, NEAR_M
from .blocks import ConvBNReLU, SeparableConv, coordinate_channels, upsample_to
from .outputs import Prediction, prediction

DEFAULT_WIDTHS = (24, 48, 96, 128)
"""Channels at strides 2, 4, 8 and 16 of the input."""


def scaled_widths(widths: tuple[int, ...], width: float) -> tuple[int, ...]:
    """`widths` times the multiplier `width`, each rounded to a multiple of 8 (at least 8): channel
    counts that tensor cores and vectorised CPU kernels handle without padding."""
    if not width > 0:
        raise ValueError(f"width must be above 0, got {width}")
    return tuple(max(8, 8 * round(channels * width / 8)) for channels in widths)


class SharedEncoder(nn.Module):
    """Features of one image at strides 2, 4, 8, 16; applied to ``bg`` and ``fg_bg`` alike.

    The stem strides at once: on a CPU, layers at full resolution cost far more in memory traffic than
    in arithmetic, so none of the encoder runs there.
    """

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        self.stem = nn.Sequential(ConvBNReLU(3, widths[0], stride=2), SeparableConv(widths[0], widths[0]))
        self.stages = nn.ModuleList(
            nn.Sequential(SeparableConv(narrow, wide, stride=2), SeparableConv(wide, wide))
            for narrow, wide in zip(widths[:-1], widths[1:], strict=True)
        )

    def forward(self, image: Tensor) -> list[Tensor]:
        features = [self.stem(image)]
        for stage in self.stages:
            features.append(stage(features[-1]))
        return features


class DifferenceFusion(nn.Module):
    """Mixes scene features, their absolute change from the background, and the pixel coordinates.

    ``|f(fg_bg) - f(bg)|`` is near zero wherever nothing was pasted, which makes the mask easy; the
    scene features themselves keep the appearance the depth head needs.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.mix = ConvBNReLU(2 * channels + 2, channels, kernel_size=1)

    def forward(self, background: Tensor, scene: Tensor) -> Tensor:
        change = (scene - background).abs()
        return self.mix(torch.cat((scene, change, coordinate_channels(scene)), dim=1))


class UpBlock(nn.Module):
    """Doubles the resolution and merges the fused skip features of that scale.

    The deep features are narrowed to the skip's width *before* upsampling and then added, not
    concatenated: the work stays at the coarse scale and the fine scale holds one tensor fewer.
    """

    def __init__(self, in_channels: int, skip_channels: int):
        super().__init__()
        self.narrow = ConvBNReLU(in_channels, skip_channels, kernel_size=1)
        self.merge = SeparableConv(skip_channels, skip_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.merge(upsample_to(self.narrow(x), skip) + skip)


class Head(nn.Sequential):
    """A separable 3x3 layer of its own, then a 1x1 projection to raw channels (at half resolution)."""

    def __init__(self, channels: int, outputs: int = 1):
        super().__init__(SeparableConv(channels, channels), nn.Conv2d(channels, outputs, kernel_size=1))


def mean_and_max(features: Tensor, dim: int | tuple[int, ...]) -> Tensor:
    """Mean and maximum over `dim`, side by side along the channels: what is typical there, and
    whether something stands out."""
    return torch.cat((features.mean(dim=dim), features.amax(dim=dim)), dim=1)


def row_centres(rows: int, device: torch.device) -> Tensor:
    """Each row's centre as a fraction of the height from the top (the depth encoding's rows)."""
    return (torch.arange(rows, device=device, dtype=torch.float32) + 0.5) / rows


def row_statistics(image: Tensor) -> Tensor:
    """Per row of `image`: each channel's mean, its spread along the row, and its mean change to
    the next row down, shape (batch, 3 * channels, rows). The sky is smooth and changes little from
    row to row; the ground is textured; the haze band between them changes fastest."""
    down = F.pad((image[..., 1:, :] - image[..., :-1, :]).abs(), (0, 0, 0, 1), mode="replicate")
    return torch.cat((image.mean(dim=3), image.std(dim=3), down.mean(dim=3)), dim=1)


class Horizon(nn.Module):
    """Each image's horizon row, read from a per-row profile of the background.

    The horizon is a line across the frame: where the sky's gradient meets the ground's texture and
    where the ground's lines converge. Averaging (and max-pooling) features along each row turns
    that into a 1-D signal at full resolution: the raw image's row statistics, which need no
    training to show the sky ending, and the encoder's fine and coarse features, which see the
    converging lines. A few 1-D convolutions score every row, and the softmax-weighted mean row
    (soft-argmax, `soft_argmax_row`) gives a sub-pixel position: near the horizon one pixel is tens of
    metres, and a linear read-out of pooled features lands pixels off (README, results). The row
    scores are an output of their own, trained on the horizon fitted to each depth target
    (`fgbg_utils.losses.horizon_loss`).
    """

    def __init__(self, image_channels: int, fine_channels: int, coarse_channels: int, hidden: int = 16):
        super().__init__()
        self.fine = nn.Conv2d(fine_channels, hidden, kernel_size=1)
        self.coarse = nn.Conv2d(coarse_channels, hidden, kernel_size=1)
        self.score = nn.Sequential(
            nn.Conv1d(3 * image_channels + 4 * hidden, 2 * hidden, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv1d(2 * hidden, 2 * hidden, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv1d(2 * hidden, 1, kernel_size=5, padding=2),
        )

    def forward(self, image: Tensor, fine: Tensor, coarse: Tensor) -> Tensor:
        """Each row's score (a logit over the rows) of holding the horizon, shape (batch, rows)."""
        rows = image.shape[2]
        learnt = [mean_and_max(self.fine(fine), dim=3), mean_and_max(self.coarse(coarse), dim=3)]
        upsampled = [F.interpolate(profile.float(), size=rows, mode="linear") for profile in learnt]
        profile = torch.cat([row_statistics(image.float()), *upsampled], dim=1)
        return self.score(profile)[:, 0].float()


def soft_argmax_row(scores: Tensor) -> Tensor:
    """The softmax-weighted mean row centre of `scores` (batch, rows), as a fraction of the height."""
    return (torch.softmax(scores, dim=1) * row_centres(scores.shape[1], scores.device)).sum(dim=1)


class CameraHeight(nn.Module):
    """One learnt camera height for the whole dataset, given as the ground's slope for each image.

    Held as log(height / 1.6 m) in ``weight``, the name layer tables such as torchsummary count.
    """

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, like: Tensor) -> Tensor:
        """The slope 1 / height, shaped like `like` (one value per image)."""
        return (torch.exp(-self.weight.clamp(-2.0, 2.0)) / 1.6).expand_as(like)  # bounded: 0.2 m to 12 m


class GroundPlane(nn.Module):
    """The ground's encoded inverse depth at any (fractional) row, for each image's camera.

    The ramp is the one `fgbg_utils.depth.GroundCamera` and `encode_depth` define: inverse depth
    ``(row / H - horizon) * slope`` (slope = 1 / (focal * camera height)), mapped linearly from
    [1/FAR_M, 1/NEAR_M] to [0, 1] and clipped, so the sky above the horizon comes out at 0 exactly.
    The horizon comes from `Horizon`'s row scores, per image. The slope is one learnt number for the whole
    dataset, starting at the default camera height (1.6 m): a per-image slope read from pooled
    features learnt the training backgrounds' cameras by heart and missed unseen ones by more
    than a constant does (the README gives the figures).
    """

    def __init__(self):
        super().__init__()
        self.camera_height = CameraHeight()

    def forward(self, horizon_scores: Tensor) -> tuple[Tensor, Tensor]:
        """(horizon, slope), each of shape (batch, 1, 1, 1), from the horizon's row scores (batch, rows)."""
        horizon = soft_argmax_row(horizon_scores)[:, None, None, None]
        return horizon, self.camera_height(horizon)

    @staticmethod
    def encoded(rows: Tensor, horizon: Tensor, slope: Tensor, straight_through: bool = False) -> Tensor:
        """Encoded depth of the ground at fractional `rows`, clipped to [0, 1].

        With `straight_through` the clip passes gradients on as if it were not there: a foot row
        still guessed in the sky would otherwise get none, and never learn to reach the ground.
        """
        raw = ((rows - horizon) * slope - 1.0 / FAR_M) / (1.0 / NEAR_M - 1.0 / FAR_M)
        clipped = raw.clamp(0.0, 1.0)
        return clipped + (raw - raw.detach()) if straight_through else clipped


class Refiner(nn.Module):
    """Full-resolution correction of the upsampled raw outputs, from the two input images themselves.

    The heads work at half resolution; the pixel-level change pins the object's outline exactly,
    and small objects far away span only a few pixels. Where the outline cuts a pixel, the change
    is a fraction of the object's full contrast with the background, so the layers see the signed
    change ``fg_bg - bg`` (the contrast's direction) as well as its size, beside ``fg_bg``, the
    ground ramp and the coarse outputs. Two narrow 3x3 layers add a residual: the only layers at
    full resolution, kept narrow to stay cheap.
    """

    def __init__(self, outputs: int, hidden: int = 16):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(outputs + 3 + 3 + 3 + 1, hidden, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, outputs, kernel_size=3, padding=1),
        )

    def forward(self, coarse: Tensor, bg: Tensor, fg_bg: Tensor, ground: Tensor) -> Tensor:
        upsampled = upsample_to(coarse, fg_bg)
        change = fg_bg - bg
        return upsampled + self.residual(torch.cat((upsampled, fg_bg, change, change.abs(), ground), dim=1))


def carry_up(foot: Tensor, value: Tensor) -> Tensor:
    """Along each column, from the bottom row up: a pixel takes its own `value` where `foot` is 1
    and the (already carried) value of the pixel below where it is 0; in between, the mix.

    The bottom row always keeps its own value. A linear recurrence, so gradients reach every
    `foot` and `value` on the way: one small step per row, on rows made contiguous first (7x
    faster forward and backward on a CPU than strided row slices).
    """
    feet, values = (x.movedim(-2, 0).contiguous().unbind(0) for x in (foot, value))
    carried = [values[-1]]
    for row in range(len(values) - 2, -1, -1):
        carried.append(torch.lerp(carried[-1], values[row], feet[row]))
    return torch.stack(carried[::-1], dim=-2)


def lowest_rows(mask_probability: Tensor) -> Tensor:
    """Each image's lowest row holding a pixel above 0.5, as its centre's fraction of the height from
    the top (the ramp's rows), shape (batch, 1, 1, 1); the bottom row where there is none."""
    height = mask_probability.shape[-2]
    present = mask_probability.amax(dim=-1, keepdim=True) > 0.5  # (batch, 1, height, 1)
    rows = torch.arange(height, device=mask_probability.device).view(1, 1, height, 1)
    lowest = torch.where(present, rows, -1).amax(dim=-2, keepdim=True)
    return (torch.where(lowest < 0, height - 1, lowest).float() + 0.5) / height


class Heads(NamedTuple):
    """What `FgBgNet.heads` computes: the `raw` outputs at the input's resolution (mask, stands, gate
    and foot-offset logits), the horizon's row scores, and each image's horizon and ground slope."""

    raw: Tensor
    horizon_scores: Tensor
    horizon: Tensor
    slope: Tensor


def camera(heads: Heads) -> tuple[Tensor, Tensor]:
    """The horizon and slope behind a stop-gradient: the reads of the ramp that must not teach the camera."""
    return heads.horizon.detach(), heads.slope.detach()


class FgBgNet(nn.Module):
    """Shared-weight difference encoder, coordinate-aware UNet decoder, mask head, ground-plane depth head.

    Input height and width must be divisible by 16 (four stride-2 steps). `width` multiplies the
    channels of the encoder, decoder and heads (`scaled_widths`); the horizon's and the refiner's
    narrow layers keep theirs.
    """

    def __init__(self, widths: tuple[int, ...] = DEFAULT_WIDTHS, width: float = 1.0):
        super().__init__()
        widths = scaled_widths(widths, width)
        self.encoder = SharedEncoder(widths)
        self.fusions = nn.ModuleList(DifferenceFusion(width) for width in widths)
        self.up_blocks = nn.ModuleList(
            UpBlock(deep, skip) for deep, skip in zip(reversed(widths[1:]), reversed(widths[:-1]), strict=True)
        )
        self.mask_head = Head(widths[0])
        self.depth_head = Head(widths[0], outputs=3)  # stands, gate, offset
        nn.init.constant_(self.depth_head[-1].bias[:1], 3.0)  # the object starts on its foot row (p = 0.95)
        self.horizon = Horizon(3, widths[0], widths[1])
        self.ground = GroundPlane()
        self.refiner = Refiner(outputs=4)

    def heads(self, bg: Tensor, fg_bg: Tensor) -> Heads:
        """The raw outputs at the input's resolution and the camera, before any depth is drawn."""
        # One encoder pass over both images (same weights), in channels-last layout: both measured
        # faster on CPU than two NCHW passes.
        both = self.encoder(torch.cat((bg, fg_bg), dim=0).contiguous(memory_format=torch.channels_last))
        pairs = [features.chunk(2, dim=0) for features in both]
        fused = [fuse(*pair) for fuse, pair in zip(self.fusions, pairs, strict=True)]
        x = fused[-1]
        for up_block, skip in zip(self.up_blocks, reversed(fused[:-1]), strict=True):
            x = up_block(x, skip)
        (fine, _), (coarse, _) = pairs[:2]
        horizon_scores = self.horizon(bg, fine, coarse)
        horizon, slope = self.ground(horizon_scores)
        ground = self.ground_at(horizon, slope, *fg_bg.shape[-2:])
        raw = torch.cat((self.mask_head(x), self.depth_head(x)), dim=1)
        raw = self.refiner(raw, bg, fg_bg, ground.to(fg_bg.dtype)).float()
        return Heads(raw, horizon_scores, horizon, slope)

    def ground_at(self, horizon: Tensor, slope: Tensor, height: int, width: int) -> Tensor:
        """The ground's encoded depth at every pixel of a `height` x `width` frame (the ramp is exact at any size)."""
        rows = row_centres(height, horizon.device)[:, None]
        return self.ground.encoded(rows, horizon, slope).expand(-1, 1, height, width)

    def upright(self, heads: Heads, gate_logits: Tensor, foot_offset: Tensor) -> Tensor:
        """The depth of upright things: the ramp at each one's foot row, carried up its column."""
        # Off the ground the depth is the ramp read at the thing's foot row: where the pixel below is
        # ground, `foot_offset` (a fraction of the height) lower; above that, carried up the column.
        # Those reads see the camera through a stop-gradient: an offset could otherwise absorb any
        # horizon error (shift every offset by it), and the horizon would never have to be right.
        # The camera learns from the ground alone, which the gate picks per pixel.
        rows = row_centres(gate_logits.shape[-2], gate_logits.device)[:, None]
        offset = foot_offset.clamp(-2.0, 2.0)  # bounded, so the straight-through read stays finite
        at_foot = self.ground.encoded(rows + offset, *camera(heads), straight_through=True)
        ground_below = F.pad(torch.sigmoid(gate_logits)[..., 1:, :], (0, 0, 0, 1), value=1.0)  # below: ground
        return carry_up(ground_below, at_foot)

    @staticmethod
    def scene(ground: Tensor, gate_logits: Tensor, upright: Tensor) -> Tensor:
        """The depth without the pasted object: the ramp where the gate says ground, else the upright depth."""
        gate = torch.sigmoid(gate_logits)
        return gate * ground + (1.0 - gate) * upright

    def with_object(self, scene: Tensor, mask_logits: Tensor, stands_logits: Tensor, heads: Heads) -> Tensor:
        """`scene` with the pasted object at the ramp's depth at its mask's lowest row."""
        # The mask is read, not taught, here (detached): the depth loss must not move the outline.
        object_probability = torch.sigmoid(mask_logits).detach()
        on_its_foot = self.ground.encoded(lowest_rows(object_probability), *camera(heads))
        weight = object_probability * torch.sigmoid(stands_logits)
        return scene + weight * (on_its_foot - scene)

    def forward(self, bg: Tensor, fg_bg: Tensor) -> Prediction:
        heads = self.heads(bg, fg_bg)
        mask_logits, stands_logits, gate_logits, foot_offset = heads.raw.split(1, dim=1)
        ground = self.ground_at(heads.horizon, heads.slope, *fg_bg.shape[-2:])
        scene = self.scene(ground, gate_logits, self.upright(heads, gate_logits, foot_offset))
        depth = self.with_object(scene, mask_logits, stands_logits, heads)
        return prediction(mask_logits, depth, ground_logits=gate_logits, horizon_scores=heads.horizon_scores)
