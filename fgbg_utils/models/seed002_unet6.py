"""``seed002_unet6``: the UNet of write-up 002 (8,631,810 parameters, 6-channel input).

What the write-up states: bg and fg_bg concatenated to 6 channels; an input double conv; four
downsamplings (to 1/16); four upsamplings back to full size; a mask output and a depth output.

Reading chosen (the one that reproduces 8,631,810 exactly, and the layout of the module the write-up
links to): only the input double conv (6 -> 32) is shared; after it come two complete bilinear UNet
branches of base width 32 (four downs, four ups, a 1x1 conv), one per output. The depth branch's raw
map goes through a sigmoid (no parameters) to land in [0, 1]; the author trained depth with BCE, which
applies the same sigmoid.
"""

import torch
from torch import Tensor, nn

from .outputs import Prediction, prediction
from .unet_parts import DoubleConv, UNetBranch


class Seed002UNet6(nn.Module):
    """A shared input double conv, then one full UNet branch for the mask and one for depth."""

    def __init__(self, base: int = 32):
        super().__init__()
        self.stem = DoubleConv(6, base)
        self.mask_branch = UNetBranch(base, shared_levels=1)
        self.depth_branch = UNetBranch(base, shared_levels=1)

    def forward(self, bg: Tensor, fg_bg: Tensor) -> Prediction:
        levels = [self.stem(torch.cat((bg, fg_bg), dim=1))]
        return prediction(self.mask_branch(levels), torch.sigmoid(self.depth_branch(levels)))
