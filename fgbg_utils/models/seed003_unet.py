"""``seed003_unet``: the UNet whose full module list write-up 003 prints (34,520,514 parameters).

What the printed modules give: four encoder blocks of two padded 3x3 convs (6-64-128-256-512, each
with batch norm and ReLU, no bias) and 2x2 max-pools; a bottleneck of two *unpadded* 3x3 convs
(512-1024-1024) and a stride-2 transposed conv to 512; four decoder blocks of two unpadded 3x3 convs
(1024-512, 512-256, 256-128, 128-64), the first three ending in a transposed conv that halves the width,
the last in an unpadded 3x3 conv to 1 channel, batch norm and ReLU. Summing them: 34,520,514 (the
write-up's "~34.5M").

Choices the printout leaves open:
* Unpadded convs shrink the map, so (as in the original UNet) each skip is centre-cropped to the
  decoder's size before ``cat([upsampled, skip])``, and the network's output is the input size minus
  126 px. To still predict every pixel of an HxW frame, the input is padded by 64 px on each side
  (replicate padding, which unlike reflection works for any size) and the 1 px excess is cropped.
  This makes the network process 2.5x the pixels at 224 px and 9x at 64 px: the seed's design.
* Input order is ``[bg, fg_bg]``.
* There is one output channel: the author trained this network once for overlays/masks and once for
  depth. The registry entry is one such network; both keys are read from its single map, so train one
  instance per task and read its key (mask-only / depth-only usage).
* The map ends in ReLU, so it is >= 0. It is read as the odds ``r = p / (1 - p)``: mask logits are
  ``log(r + 1e-4)`` and depth is ``r / (1 + r)`` in [0, 1). Neither adds parameters; using the
  non-negative map directly as logits would make every pixel at least 50 % foreground.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .outputs import Prediction, prediction

SHRINK = 126
"""Input size minus output size, from the 22 unpadded 3x3 convs at their scales."""
BORDER = 64
"""Padding per side: the smallest multiple of 16 that covers ``SHRINK`` once split over two sides."""
ODDS_EPSILON = 1e-4


def conv_bn_relu(in_channels: int, out_channels: int, padding: int) -> list[nn.Module]:
    """A bias-free 3x3 conv (``padding`` 1 keeps the size, 0 shrinks it by 2), batch norm, ReLU."""
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    ]


def upsample(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    """Bias-free stride-2 transposed 3x3 conv that exactly doubles the size."""
    return nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1, bias=False)


def encoder_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn_relu(in_channels, out_channels, 1), *conv_bn_relu(out_channels, out_channels, 1))


def decoder_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two unpadded convs, then upsampling to half the width for the next level."""
    return nn.Sequential(
        *conv_bn_relu(in_channels, out_channels, 0),
        *conv_bn_relu(out_channels, out_channels, 0),
        upsample(out_channels, out_channels // 2),
    )


def centre_crop(x: Tensor, like: Tensor) -> Tensor:
    """The centre of ``x`` with the spatial size of ``like`` (the original UNet's skip cropping)."""
    top = (x.shape[-2] - like.shape[-2]) // 2
    left = (x.shape[-1] - like.shape[-1]) // 2
    return x[..., top : top + like.shape[-2], left : left + like.shape[-1]]


class Seed003UNet(nn.Module):
    """Printed module list of write-up 003, wrapped to take and give full frames."""

    def __init__(self):
        super().__init__()
        self.convblock1 = encoder_block(6, 64)
        self.convblock2 = encoder_block(64, 128)
        self.convblock3 = encoder_block(128, 256)
        self.convblock4 = encoder_block(256, 512)
        self.pool = nn.MaxPool2d(2)
        self.base = decoder_block(512, 1024)
        self.convblock5 = decoder_block(1024, 512)
        self.convblock6 = decoder_block(512, 256)
        self.convblock7 = decoder_block(256, 128)
        self.convblock_final = nn.Sequential(
            *conv_bn_relu(128, 64, 0), *conv_bn_relu(64, 64, 0), *conv_bn_relu(64, 1, 0)
        )

    def odds(self, x: Tensor) -> Tensor:
        """The raw non-negative map the printed network computes, for a 6-channel input."""
        skips = []
        for block in (self.convblock1, self.convblock2, self.convblock3, self.convblock4):
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.base(x)
        for block in (self.convblock5, self.convblock6, self.convblock7, self.convblock_final):
            x = block(torch.cat((x, centre_crop(skips.pop(), x)), dim=1))
        return x

    def forward(self, bg: Tensor, fg_bg: Tensor) -> Prediction:
        frame = torch.cat((bg, fg_bg), dim=1)
        padded = F.pad(frame, (BORDER, BORDER, BORDER, BORDER), mode="replicate")
        odds = centre_crop(self.odds(padded), frame)
        return prediction(torch.log(odds + ODDS_EPSILON), odds / (1 + odds))
