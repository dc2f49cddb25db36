"""Small building blocks for the task-specific network (``fgbg_net``)."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class ConvBNReLU(nn.Sequential):
    """Convolution, batch norm, ReLU: the unit every layer of ``fgbg_net`` is made of.

    The convolution has no bias because batch norm adds one straight after it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1: about 1/8 of the weights and work of a full 3x3 at these widths."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(
            ConvBNReLU(in_channels, in_channels, 3, stride=stride, groups=in_channels),
            ConvBNReLU(in_channels, out_channels, 1),
        )


def coordinate_channels(like: Tensor) -> Tensor:
    """Two channels holding each pixel's normalised row (y) and column (x) position, each in [-1, 1].

    Convolutions cannot tell where in the frame they are; in ground-plane scenes the row says a lot about
    depth (lower in the frame is nearer), so the network is given the position explicitly.
    """
    batch, _, height, width = like.shape
    rows = torch.linspace(-1.0, 1.0, height, device=like.device, dtype=like.dtype)
    columns = torch.linspace(-1.0, 1.0, width, device=like.device, dtype=like.dtype)
    grid_y, grid_x = torch.meshgrid(rows, columns, indexing="ij")
    return torch.stack((grid_y, grid_x)).expand(batch, 2, height, width)


def upsample_to(x: Tensor, like: Tensor) -> Tensor:
    """Bilinear resize of ``x`` to the spatial size of ``like`` (no weights, unlike a transposed conv)."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
