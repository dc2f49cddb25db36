"""MiDaS through the real torch.hub path, pointed at a local stand-in: each image is predicted once,
the composites in full batches, under the shared autocast."""

import json
from pathlib import Path

import numpy as np
import torch

from fgbg_utils import precision
from fgbg_utils.build import BuildConfig, make_dataset
from fgbg_utils.depth import GroundCamera, MidasDepth

HUBCONF = '''
import torch

dependencies = ["torch"]
LOG = {log!r}


class _Tiny(torch.nn.Module):
    """Stand-in for MiDaS small: inverse depth rises with the row (and brightness); logs each batch."""

    def forward(self, x):
        with open(LOG, "a") as log:
            log.write(f"{{x.shape[0]}} {{torch.is_autocast_enabled(x.device.type)}}\\n")
        rows = torch.linspace(0, 1, x.shape[-2], device=x.device).view(1, -1, 1)
        return rows.expand(x.shape[0], -1, x.shape[-1]) + 0.1 * x.mean(dim=1)


def MiDaS_small(pretrained=True, **kwargs):
    return _Tiny()
'''


def stand_in(tmp_path: Path) -> tuple[Path, Path]:
    """A local hub folder whose model logs every batch it is given; (folder, log)."""
    hub, log = tmp_path / "hub", tmp_path / "batches.log"
    hub.mkdir()
    (hub / "hubconf.py").write_text(HUBCONF.format(log=str(log)))
    return hub, log


def batches(log: Path) -> list[tuple[int, bool]]:
    lines = log.read_text().split("\n")[:-1] if log.exists() else []
    return [(int(size), flag == "True") for size, flag in (line.split() for line in lines)]


def test_a_build_predicts_each_image_once_in_full_batches(tmp_path):
    """3 backgrounds x 3 foregrounds x 2 flips x 2 placements: 12 composites per background, asked for in
    batches of 8 (then the 4 left), after one prediction per background (its depth and its scale)."""
    hub, log = stand_in(tmp_path)
    config = BuildConfig(n_bg=3, n_fg=3, placements=2, size=32, depth="midas")
    options = {"repo_or_dir": str(hub), "source": "local", "device": "cpu", "batch_size": 8, "input_size": 32}
    make_dataset(tmp_path / "data", config, workers=1, progress=False, depth_options=options)
    sizes = [size for size, _ in batches(log)]
    assert sizes == [1, 1, 1] + [8, 4] * 3
    manifest = json.loads((tmp_path / "data" / "data_manifest.json").read_text())
    assert manifest["generation"]["depth"]["source"] == "midas"


def test_midas_runs_under_the_shared_autocast(tmp_path, monkeypatch):
    """A CPU stand-in for CUDA's autocast: the network runs inside it and its output comes back as float32."""
    hub, log = stand_in(tmp_path)
    monkeypatch.setattr(precision, "amp_dtype", lambda device, amp=None: torch.bfloat16)
    source = MidasDepth(repo_or_dir=str(hub), source="local", device="cpu", batch_size=4, input_size=32)
    bg = np.full((32, 32, 3), 100, np.uint8)
    encoded = source.background(bg, GroundCamera(), None)
    assert encoded.dtype == np.uint8 and encoded[-1].mean() > encoded[0].mean() + 200
    assert batches(log) == [(1, True)]
