"""Resizing frames that equal a known background outside one box each, by working on the box alone.

A composed sample is its background everywhere but in the object's box. Resizing is linear, so the
resized frame is the resized background (computed once per background) plus the resized change, and
the change is 0 outside the box: only the few output rows and columns whose filter support meets the
box need any work. `BoxResizer` holds the antialiased bilinear resize of one side as a matrix (torch's
``F.interpolate(..., antialias=True)``, read off by resizing each unit vector) and the source pixel
that nearest-neighbour resizing reads for each output (`transforms.nearest_exact_index`, the targets').
Per sample that is two small matrix products, tens of microseconds where the whole-frame resizes cost
a quarter of a millisecond.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .transforms import nearest_exact_index


class BoxResizer:
    """One side of `source` pixels resized to `size`: the bilinear weights and the nearest sources."""

    def __init__(self, source: int, size: int):
        units = torch.eye(source, dtype=torch.float32).view(source, 1, 1, source)
        resized = F.interpolate(units, size=(1, size), mode="bilinear", align_corners=False, antialias=True)
        self.weights = resized[:, 0, 0, :].T.contiguous()
        """size x source: output i is ``weights[i] @ line``."""
        touched = (self.weights != 0).numpy()
        first = touched.argmax(1)  # each output's weights are one contiguous run
        stop = source - touched[:, ::-1].argmax(1)
        self.nearest = nearest_exact_index(source, size)
        edges = np.arange(source + 1)
        # per source edge p: the first output reading pixel p or later, one past the last reading before p
        self._from = np.searchsorted(stop, edges, side="right").tolist()
        self._to = np.searchsorted(first, edges).tolist()
        self._nearest_at = np.searchsorted(self.nearest, edges).tolist()

    def span(self, start: int, length: int) -> tuple[int, int]:
        """The outputs whose bilinear support meets source pixels ``start .. start + length - 1``."""
        return self._from[start], self._to[start + length]

    def nearest_span(self, start: int, length: int) -> tuple[int, int]:
        """The outputs whose nearest source pixel lies in ``start .. start + length - 1``."""
        return self._nearest_at[start], self._nearest_at[start + length]

    def resize_change(
        self, change: np.ndarray, rows: tuple[int, int], columns: tuple[int, int], y: int, x: int
    ) -> np.ndarray:
        """The bilinear resize of `change` (C x h x w float32, placed at source row `y`, column `x` and 0
        elsewhere) on output `rows` x `columns`: C x rows x columns. The products run in torch, which
        keeps to its thread setting (one thread in a loader worker); NumPy's OpenBLAS would start its
        own threads and fight the other workers for the cores."""
        height, width = change.shape[1:]
        down = self.weights[rows[0] : rows[1], y : y + height]
        across = self.weights[columns[0] : columns[1], x : x + width].T
        return ((down @ torch.from_numpy(change)) @ across).numpy()
