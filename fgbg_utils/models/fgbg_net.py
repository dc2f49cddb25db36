"""``fgbg_net``: the kit's own network, designed for this task and for short CPU training runs.

The object is, by construction, whatever differs between ``bg`` and ``fg_bg``. So both images go through
one shared encoder (same weights, one batched pass), and at every scale the decoder sees the scene
features together with their absolute difference from the background features. Coordinate channels
give the decoder each pixel's row and column, which carries depth in ground-plane scenes. A light
UNet-style decoder with skip connections feeds two small heads: mask logits and depth in [0, 1].

For a mask-only or depth-only model, train on one loss and read one key of the output.
"""

import torch
from torch import Tensor, nn

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
    """A separable 3x3 layer of its own, then a 1x1 projection to one raw channel (at half resolution)."""

    def __init__(self, channels: int):
        super().__init__(SeparableConv(channels, channels), nn.Conv2d(channels, 1, kernel_size=1))


class EdgeRefiner(nn.Module):
    """Full-resolution correction of both upsampled raw outputs from the two input images themselves.

    The heads work at half resolution; the pixel-level change ``|fg_bg - bg|`` pins the object's outline
    exactly, so one small 3x3 conv over it (plus ``fg_bg`` and the coarse outputs) adds a residual. It is
    the only layer at full resolution and has just two output channels, which keeps it cheap.
    """

    def __init__(self):
        super().__init__()
        self.residual = nn.Conv2d(2 + 3 + 3, 2, kernel_size=3, padding=1)

    def forward(self, coarse: Tensor, bg: Tensor, fg_bg: Tensor) -> Tensor:
        upsampled = upsample_to(coarse, fg_bg)
        return upsampled + self.residual(torch.cat((upsampled, fg_bg, (fg_bg - bg).abs()), dim=1))


class FgBgNet(nn.Module):
    """Shared-weight difference encoder, coordinate-aware UNet decoder, mask and depth heads.

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
        self.depth_head = Head(widths[0])
        self.refiner = EdgeRefiner()

    def forward(self, bg: Tensor, fg_bg: Tensor) -> Prediction:
        # One encoder pass over both images (same weights), in channels-last layout: both measured
        # faster on CPU than two NCHW passes.
        both = self.encoder(torch.cat((bg, fg_bg), dim=0).contiguous(memory_format=torch.channels_last))
        fused = [fuse(*features.chunk(2, dim=0)) for fuse, features in zip(self.fusions, both, strict=True)]
        x = fused[-1]
        for up_block, skip in zip(self.up_blocks, reversed(fused[:-1]), strict=True):
            x = up_block(x, skip)
        coarse = torch.cat((self.mask_head(x), self.depth_head(x)), dim=1)
        mask_logits, depth_logits = self.refiner(coarse, bg, fg_bg).split(1, dim=1)
        return prediction(mask_logits, torch.sigmoid(depth_logits))
