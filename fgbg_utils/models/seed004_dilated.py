"""``seed004_dilated``: the two-path dilated network of write-up 004 (1,340,224 parameters).

What the write-up prints (layer table and module list): two identical, independent paths, one for
the mask and one for depth. Each path runs ``fg_bg`` and ``bg`` through their own four 3x3 layers
(3-16-16-32-32), concatenates them (64), widens the receptive field with dilated 3x3 layers at full
resolution (dilation 2, 4, 8), halves the resolution with a stride-2 conv, continues with dilations up to
16, upsamples (nearest) and concatenates the full-resolution features as a skip, and ends with two 3x3
layers, the last one to 1 channel without batch norm or ReLU. Every conv is bias-free and uses
circular padding (the helper's default); all others are followed by batch norm and ReLU.

Choices: the author's nearest upsampling to a fixed 100x100 becomes a nearest 2x upsampling, which gives
back the skip's size for any even input (the registry promises multiples of 16). The mask path's output
is used as logits as is; the depth path's raw output (trained with L1 on normalised depth) goes through a
sigmoid (no parameters) to land in [0, 1]. Circular padding needs the padding (16 at half resolution) to
be at most the feature size, so inputs must be at least 32 px.
"""

import torch
from torch import Tensor, nn

from .outputs import Prediction, prediction


class CircularConv(nn.Sequential):
    """Bias-free 3x3 conv with circular "same" padding, then (unless ``last``) batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1, stride: int = 1, last: bool = False):
        conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
            padding_mode="circular",
            bias=False,
        )
        layers = [conv] if last else [conv, nn.BatchNorm2d(out_channels), nn.ReLU()]
        super().__init__(*layers)


def image_branch() -> nn.Sequential:
    """The four plain 3x3 layers each input image gets before the two are concatenated."""
    return nn.Sequential(CircularConv(3, 16), CircularConv(16, 16), CircularConv(16, 32), CircularConv(32, 32))


class DilatedPath(nn.Module):
    """One of the two identical paths: turns (fg_bg, bg) into one raw 1-channel map."""

    def __init__(self):
        super().__init__()
        self.scene_branch = image_branch()
        self.background_branch = image_branch()
        self.full_resolution = nn.Sequential(
            CircularConv(64, 64, dilation=2),
            CircularConv(64, 64, dilation=4),
            CircularConv(64, 128, dilation=8),
            CircularConv(128, 64),
        )
        self.half_resolution = nn.Sequential(
            CircularConv(64, 16, stride=2),
            CircularConv(16, 16),
            CircularConv(16, 32, dilation=2),
            CircularConv(32, 32, dilation=4),
            CircularConv(32, 64, dilation=8),
            CircularConv(64, 64, dilation=16),
            CircularConv(64, 128, dilation=16),
            CircularConv(128, 64, dilation=16),
            CircularConv(64, 64),
        )
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.output = nn.Sequential(CircularConv(128, 128), CircularConv(128, 1, last=True))

    def forward(self, fg_bg: Tensor, bg: Tensor) -> Tensor:
        background = self.background_branch(bg)
        skip = self.full_resolution(torch.cat((self.scene_branch(fg_bg), background), dim=1))
        return self.output(torch.cat((self.upsample(self.half_resolution(skip)), skip), dim=1))


class Seed004Dilated(nn.Module):
    """Independent mask and depth paths; nothing is shared between them."""

    def __init__(self):
        super().__init__()
        self.mask_path = DilatedPath()
        self.depth_path = DilatedPath()

    def forward(self, bg: Tensor, fg_bg: Tensor) -> Prediction:
        return prediction(self.mask_path(fg_bg, bg), torch.sigmoid(self.depth_path(fg_bg, bg)))
