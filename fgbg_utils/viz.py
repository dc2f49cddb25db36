"""Figures the notebooks share: rows and grids of images with titles."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np


def show_images(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    columns: int | None = None,
    cmap: str | None = "gray",
    size: float = 2.4,
    suptitle: str | None = None,
):
    """Show images in a grid (one row by default); single-channel ones in `cmap`. Returns the figure."""
    columns = columns or len(images)
    rows = -(-len(images) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for i, image in enumerate(images):
        axis = axes.ravel()[i]
        if image.ndim == 2:
            limits = (0, 255) if image.dtype == np.uint8 else (None, None)
            axis.imshow(image, cmap=cmap, vmin=limits[0], vmax=limits[1])
        else:
            axis.imshow(image)
        if titles:
            axis.set_title(titles[i], fontsize=9)
    if suptitle:
        figure.suptitle(suptitle)
    figure.tight_layout()
    return figure


def overlay_mask(image: np.ndarray, mask: np.ndarray, colour=(255, 40, 40), alpha: float = 0.5) -> np.ndarray:
    """`image` (uint8 HxWx3) with `mask` (bool HxW) tinted in `colour`."""
    tinted = image.astype(np.float32)
    tinted[mask] = (1 - alpha) * tinted[mask] + alpha * np.asarray(colour, dtype=np.float32)
    return tinted.round().astype(np.uint8)


def figure_png(figure, dpi: int = 100) -> bytes:
    """The figure drawn by Matplotlib's Agg canvas as PNG bytes, whatever backend is active: the
    same bytes in Jupyter, Colab, Voilà and a test (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
