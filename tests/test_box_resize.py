"""Box-local resizing (`fgbg_utils.box_resize`) and the virtual dataset's resized CPU batches built on it,
checked against whole-frame torch resizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fgbg_utils.box_resize import BoxResizer
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.transforms import nearest_exact_index, resize_nearest
from fgbg_utils.virtual_dataset import VirtualFgBgDataset


@pytest.mark.parametrize(("source", "size"), [(224, 96), (64, 32), (64, 48), (100, 37)])
def test_the_weights_are_torchs_antialiased_resize_and_the_spans_are_where_they_are_not_zero(source, size):
    resizer = BoxResizer(source, size)
    lines = torch.rand(5, 1, 1, source)
    expected = F.interpolate(lines, size=(1, size), mode="bilinear", antialias=True)[:, 0, 0]
    torch.testing.assert_close(lines[:, 0, 0] @ resizer.weights.T, expected, atol=1e-5, rtol=0)
    touched = (resizer.weights != 0).numpy()
    nearest = nearest_exact_index(source, size)
    for start, length in [(0, 1), (0, source), (source - 1, 1), (source // 3, 5), (7, source // 2)]:
        reading = np.flatnonzero(touched[:, start : start + length].any(1))
        assert resizer.span(start, length) == (reading[0], reading[-1] + 1)
        picking = np.flatnonzero((nearest >= start) & (nearest < start + length))
        first, stop = resizer.nearest_span(start, length)
        assert (first, stop) == (picking[0], picking[-1] + 1) if len(picking) else first == stop


def test_a_change_resized_on_its_span_is_the_whole_frame_resize():
    resizer = BoxResizer(64, 24)
    change = torch.zeros(3, 64, 64)
    change[:, 20:31, 9:40] = torch.randn(3, 11, 31)
    whole = F.interpolate(change[None], size=(24, 24), mode="bilinear", antialias=True)[0]
    rows, columns = resizer.span(20, 11), resizer.span(9, 31)
    part = resizer.resize_change(change[:, 20:31, 9:40].numpy(), rows, columns, 20, 9)
    torch.testing.assert_close(
        torch.from_numpy(part), whole[:, rows[0] : rows[1], columns[0] : columns[1]], atol=1e-5, rtol=0
    )
    outside = torch.ones(24, 24, dtype=torch.bool)
    outside[rows[0] : rows[1], columns[0] : columns[1]] = False
    assert whole[:, outside].abs().max() < 1e-6


@pytest.mark.parametrize("size", [32, 48])
def test_resized_cpu_batches_are_the_composed_frames_resized_in_float(small_dataset, size):
    """fg_bg and bg: the float resize of the composed frames, rounded (one level apart at most, on a
    rare pixel within float error of a half); mask and depth exactly the nearest resize; and fg_bg
    equals bg on every pixel whose filter does not reach the object's box."""
    info = DatasetInfo.open(small_dataset)
    virtual = VirtualFgBgDataset(info, size=size, output="uint8")
    rows = np.arange(len(virtual))
    got = virtual.batch(rows)
    composed = VirtualFgBgDataset(info, output="uint8").compose_batch(rows)
    for key in ("bg", "fg_bg"):
        expected = F.interpolate(composed[key].float(), size=(size, size), mode="bilinear", antialias=True)
        difference = (got[key].int() - expected.round().clamp(0, 255).int()).abs()
        assert got[key].dtype == torch.uint8 and difference.max() <= 1 and (difference > 0).float().mean() < 1e-3
    for key in ("mask", "depth"):
        assert torch.equal(got[key], resize_nearest(composed[key], size))
    resizer = BoxResizer(info.size, size)
    for b, row in enumerate(rows):
        x, y, w, h = (int(virtual._ix[k][row]) for k in ("x", "y", "w", "h"))
        (top, bottom), (left, right) = resizer.span(y, h), resizer.span(x, w)
        reached = torch.zeros(size, size, dtype=torch.bool)
        reached[top:bottom, left:right] = True
        assert torch.equal(got["fg_bg"][b][:, ~reached], got["bg"][b][:, ~reached])
        assert got["fg_bg"][b][:, reached].ne(got["bg"][b][:, reached]).any()
    assert torch.equal(got["sample"], torch.from_numpy(virtual.samples.astype(np.int64)))
