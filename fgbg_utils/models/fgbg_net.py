"""``fgbg_net``: the kit's own network, designed for this task and for short CPU training runs.

The object is, by construction, whatever differs between ``bg`` and ``fg_bg``. So both images go through
one shared encoder (same weights, one batched pass), and at every scale the decoder sees the scene
features together with their absolute difference from the background features. Coordinate channels
give the decoder each pixel's row and column. A light UNet-style decoder with skip connections feeds
two small heads at half resolution, and one small full-resolution block sharpens both outputs from the
pixel-level difference.

Depth uses the scene's geometry. Over flat ground seen by a level camera, inverse depth grows linearly
with the row below the horizon, so the ground's depth is fixed by two numbers per image: the horizon row
and the slope (1 / camera height). A `GroundPlane` head reads both from the pooled deepest features and
draws that ramp exactly at every pixel; the depth head only decides, per pixel, between the ramp and a
value of its own (structures, the pasted object, anything off the plane). A regression head alone smears
the ramp near the horizon, where a one-pixel error is a large error in metres.

For a mask-only or depth-only model, train on one loss and read one key of the output.
"""

import torch
from torch import Tensor, nn

from ..depth import FAR_M, NEAR_M
from .blocks import ConvBNReLU, SeparableConv, coordinate_channels, upsample_to
from .outputs import Prediction, prediction

DEFAULT_WIDTHS = (24, 48, 96, 128)
"""Channels at strides 2, 4, 8 and 16 of the input."""


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


class GroundPlane(nn.Module):
    """Per-image horizon and slope from pooled features; draws the ground's encoded inverse depth.

    The ramp is the one `fgbg_utils.depth.GroundCamera` and `encode_depth` define: inverse depth
    ``(row_centre / H - horizon) * slope`` (slope = 1 / (focal * camera height)), mapped linearly from
    [1/FAR_M, 1/NEAR_M] to [0, 1] and clipped, so the sky above the horizon comes out at 0 exactly.
    The estimates start at the default camera (horizon 0.4, height 1.6 m).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.estimate = nn.Linear(2 * channels, 2)
        nn.init.zeros_(self.estimate.weight)
        nn.init.zeros_(self.estimate.bias)

    def forward(self, features: Tensor, size: tuple[int, int]) -> Tensor:
        pooled = torch.cat((features.mean(dim=(2, 3)), features.amax(dim=(2, 3))), dim=1)
        horizon_offset, log_slope = self.estimate(pooled.float()).unbind(1)
        horizon = 0.4 + 0.1 * horizon_offset
        slope = torch.exp(log_slope) / 1.6
        height = size[0]
        rows = (torch.arange(height, device=features.device, dtype=torch.float32) + 0.5) / height
        inverse = (rows[None, :] - horizon[:, None]) * slope[:, None]
        encoded = (inverse - 1.0 / FAR_M) / (1.0 / NEAR_M - 1.0 / FAR_M)
        return encoded.clamp(0.0, 1.0)[:, None, :, None].expand(-1, 1, height, size[1]).to(features.dtype)


class Refiner(nn.Module):
    """Full-resolution correction of the upsampled raw outputs, from the two input images themselves.

    The heads work at half resolution; the pixel-level change ``|fg_bg - bg|`` pins the object's outline
    exactly, and small objects far away span only a few pixels. Two narrow 3x3 layers over it (plus
    ``fg_bg``, the ground ramp and the coarse outputs) add a residual: the only layers at full
    resolution, kept narrow to stay cheap.
    """

    def __init__(self, outputs: int, hidden: int = 16):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(outputs + 3 + 3 + 1, hidden, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, outputs, kernel_size=3, padding=1),
        )

    def forward(self, coarse: Tensor, bg: Tensor, fg_bg: Tensor, ground: Tensor) -> Tensor:
        upsampled = upsample_to(coarse, fg_bg)
        return upsampled + self.residual(torch.cat((upsampled, fg_bg, (fg_bg - bg).abs(), ground), dim=1))


class FgBgNet(nn.Module):
    """Shared-weight difference encoder, coordinate-aware UNet decoder, mask head, ground-plane depth head.

    Input height and width must be divisible by 16 (four stride-2 steps).
    """

    def __init__(self, widths: tuple[int, ...] = DEFAULT_WIDTHS):
        super().__init__()
        self.encoder = SharedEncoder(widths)
        self.fusions = nn.ModuleList(DifferenceFusion(width) for width in widths)
        self.up_blocks = nn.ModuleList(
            UpBlock(deep, skip) for deep, skip in zip(reversed(widths[1:]), reversed(widths[:-1]), strict=True)
        )
        self.mask_head = Head(widths[0])
        self.depth_head = Head(widths[0], outputs=2)
        self.ground = GroundPlane(widths[-1])
        self.refiner = Refiner(outputs=3)

    def forward(self, bg: Tensor, fg_bg: Tensor) -> Prediction:
        # One encoder pass over both images (same weights), in channels-last layout: both measured
        # faster on CPU than two NCHW passes.
        both = self.encoder(torch.cat((bg, fg_bg), dim=0).contiguous(memory_format=torch.channels_last))
        fused = [fuse(*features.chunk(2, dim=0)) for fuse, features in zip(self.fusions, both, strict=True)]
        x = fused[-1]
        for up_block, skip in zip(self.up_blocks, reversed(fused[:-1]), strict=True):
            x = up_block(x, skip)
        ground = self.ground(both[-1].chunk(2, dim=0)[0], fg_bg.shape[-2:])
        coarse = torch.cat((self.mask_head(x), self.depth_head(x)), dim=1)
        mask_logits, gate_logits, value_logits = self.refiner(coarse, bg, fg_bg, ground).split(1, dim=1)
        gate = torch.sigmoid(gate_logits)
        return prediction(mask_logits, gate * ground + (1.0 - gate) * torch.sigmoid(value_logits))
