"""Exact per-channel statistics of 8-bit images, accumulated as value histograms.

A 256-bin histogram per channel holds everything needed for the mean and standard deviation
over every pixel of a kind, in integers: nothing is rounded until the final division, partial
results from workers or build slices add up exactly, and a mean of per-image means (which
weighs images, not pixels, and is what the course notebooks computed) never enters.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

LEVELS = np.arange(256, dtype=np.int64)


class ChannelHistogram:
    """Counts of each 8-bit value per channel, for one kind of image."""

    def __init__(self, channels: int, counts: np.ndarray | None = None):
        self.channels = channels
        self.counts = np.zeros((channels, 256), dtype=np.int64) if counts is None else np.asarray(counts, np.int64)

    def add(self, image: np.ndarray, sign: int = 1) -> None:
        """Count (sign=1) or uncount (sign=-1) the values of one HxW or HxWxC uint8 image.

        Uncounting lets a composite be counted as "its background, minus the box that changed,
        plus the new box", which costs a box instead of a whole image.
        """
        if image.dtype != np.uint8:
            raise TypeError(f"expected uint8 pixels, got {image.dtype}")
        planes = cv2.split(np.ascontiguousarray(image)) if image.ndim == 3 else [np.ascontiguousarray(image)]
        for c, plane in enumerate(planes):
            hist = cv2.calcHist([plane], [0], None, [256], [0, 256])
            self.counts[c] += sign * hist.ravel().astype(np.int64)

    def merge(self, other: ChannelHistogram) -> None:
        self.counts += other.counts

    @property
    def pixels(self) -> int:
        return int(self.counts[0].sum())

    def mean_std(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and population std on the [0, 1] scale (value / 255), exact."""
        means, stds = [], []
        for row in self.counts:
            n = int(row.sum())
            total = int((row * LEVELS).sum())
            squares = int((row * LEVELS * LEVELS).sum())
            variance = (squares * n - total * total) / (n * n)  # integer numerator: no cancellation
            means.append(total / n / 255.0)
            stds.append(math.sqrt(variance) / 255.0)
        return means, stds

    def to_dict(self) -> dict:
        mean, std = self.mean_std()
        return {"pixels": self.pixels, "mean": mean, "std": std, "histogram": self.counts.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> ChannelHistogram:
        counts = np.asarray(data["histogram"], dtype=np.int64)
        return cls(counts.shape[0], counts)


KIND_CHANNELS = {"bg": 3, "fg_bg": 3, "mask": 1, "depth": 1}


def empty_statistics() -> dict[str, ChannelHistogram]:
    return {kind: ChannelHistogram(channels) for kind, channels in KIND_CHANNELS.items()}


def merge_statistics(parts: list[dict[str, ChannelHistogram]]) -> dict[str, ChannelHistogram]:
    total = empty_statistics()
    for part in parts:
        for kind, hist in part.items():
            total[kind].merge(hist)
    return total
