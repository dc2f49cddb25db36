"""UNet pieces shared by the seed reproductions 000 and 002 (the widely copied bilinear UNet layout).

Their write-ups' parameter counts are reproduced only with this variant: 3x3 convolutions *with* bias
followed by batch norm, bilinear upsampling (``align_corners=True``) and a narrower middle width in
the up blocks. Heights and widths must be divisible by 16 (four 2x2 max-pools).
"""

import torch
from torch import Tensor, nn


class DoubleConv(nn.Sequential):
    """Two (3x3 conv with bias, batch norm, ReLU) layers; ``middle`` is the width between them."""

    def __init__(self, in_channels: int, out_channels: int, middle: int | None = None):
        middle = middle or out_channels
        super().__init__(
            nn.Conv2d(in_channels, middle, kernel_size=3, padding=1),
            nn.BatchNorm2d(middle),
            nn.ReLU(inplace=True),
            nn.Conv2d(middle, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """Halve the resolution with a 2x2 max-pool, then a double conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))


class Up(nn.Module):
    """Bilinear 2x upsampling, concatenation ``[skip, upsampled]``, then a double conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat((skip, self.upsample(x)), dim=1))


def encoder_widths(base: int) -> list[int]:
    """Widths of the five encoder levels; the bottleneck is halved because upsampling is bilinear."""
    return [base, 2 * base, 4 * base, 8 * base, 8 * base]


class UNetBranch(nn.Module):
    """The part of a UNet after its first ``shared_levels`` encoder levels, ending in a 1-channel 1x1 conv.

    A seed that shares the first levels between its mask and depth outputs builds one branch per output.
    """

    def __init__(self, base: int, shared_levels: int):
        super().__init__()
        widths = encoder_widths(base)
        self.downs = nn.ModuleList(Down(widths[i - 1], widths[i]) for i in range(shared_levels, len(widths)))
        up_outputs = [widths[level - 1] if level > 0 else widths[0] for level in range(len(widths) - 2, -1, -1)]
        up_inputs = [2 * widths[level] for level in range(len(widths) - 2, -1, -1)]
        self.ups = nn.ModuleList(Up(i, o) for i, o in zip(up_inputs, up_outputs, strict=True))
        self.out = nn.Conv2d(widths[0], 1, kernel_size=1)

    def forward(self, shared: list[Tensor]) -> Tensor:
        """``shared``: the shared encoder levels' outputs, finest first; returns the raw 1-channel map."""
        levels = list(shared)
        for down in self.downs:
            levels.append(down(levels[-1]))
        x = levels.pop()
        for up in self.ups:
            x = up(x, levels.pop())
        return self.out(x)
