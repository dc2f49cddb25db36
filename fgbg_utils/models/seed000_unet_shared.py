"""``seed000_unet_shared``: the UNet of write-ups 000/001 (33,389,314 parameters, 6-channel input).

What the write-ups state: a UNet on the two images as 6 channels, whose first three modules (named
down1-down3 there; the freeze code counts them as children 1-3) are shared, after which the remaining
UNet layers are duplicated into a mask branch and a depth branch.

Reading chosen (it is the one that reproduces 33,389,314 exactly): the common bilinear UNet with base
width 64, biased convolutions and batch norm; shared = input double conv + the first two downs; each
branch = the last two downs, four ups and a 1x1 output conv. Input order is ``[bg, fg_bg]``. The
branches output raw maps; the depth one goes through a sigmoid here (no parameters) to land in [0, 1].
"""

import torch
from torch import Tensor, nn

from .outputs import Prediction, prediction
from .unet_parts import DoubleConv, Down, UNetBranch, encoder_widths

SHARED_LEVELS = 3


class Seed000SharedUNet(nn.Module):
    """Three shared UNet levels, then a full mask branch and a full depth branch."""

    def __init__(self, base: int = 64):
        super().__init__()
        widths = encoder_widths(base)
        self.shared = nn.ModuleList(
            [DoubleConv(6, widths[0])] + [Down(widths[i - 1], widths[i]) for i in range(1, SHARED_LEVELS)]
        )
        self.mask_branch = UNetBranch(base, SHARED_LEVELS)
        self.depth_branch = UNetBranch(base, SHARED_LEVELS)

    def forward(self, bg: Tensor, fg_bg: Tensor) -> Prediction:
        levels = []
        x = torch.cat((bg, fg_bg), dim=1)
        for level in self.shared:
            x = level(x)
            levels.append(x)
        return prediction(self.mask_branch(levels), torch.sigmoid(self.depth_branch(levels)))
