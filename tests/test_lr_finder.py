"""The LR range test on a problem whose good learning rates are known."""

import numpy as np
import torch
from torch import nn

from fgbg_utils.lr_finder import lr_range_test, suggest_lr


class PixelModel(nn.Module):
    """A two-input model with one weight per output: mask = w1 * fg_bg, depth = w2 * bg."""

    def __init__(self):
        super().__init__()
        self.mask_weight = nn.Parameter(torch.zeros(1))
        self.depth_weight = nn.Parameter(torch.zeros(1))

    def forward(self, bg, fg_bg):
        return {"mask": self.mask_weight * fg_bg[:, :1], "depth": self.depth_weight * bg[:, :1]}


def squared_error(outputs, batch):
    return ((outputs["mask"] - batch["mask"]) ** 2).mean() + ((outputs["depth"] - batch["depth"]) ** 2).mean()


def batches(count=4):
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        bg, fg_bg = torch.rand(8, 3, 4, 4, generator=generator), torch.rand(8, 3, 4, 4, generator=generator)
        out.append({"bg": bg, "fg_bg": fg_bg, "mask": 2 * fg_bg[:, :1], "depth": 0.5 * bg[:, :1]})
    return out


def test_sweep_is_geometric_restores_state_and_stops_on_divergence():
    model = PixelModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.123, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sweep = lr_range_test(model, optimizer, squared_error, batches(), start_lr=1e-4, end_lr=1e3, steps=120)
    ratios = np.diff(np.log(sweep.lrs))
    assert np.allclose(ratios, ratios[0]) and sweep.lrs[0] == 1e-4
    assert sweep.diverged and sweep.lrs[-1] < 1e3, "plain SGD on this problem blows up well before lr=1000"
    assert sweep.losses[len(sweep.losses) // 2] < sweep.losses[0], "the loss falls before it diverges"
    assert 1e-3 < sweep.suggestion < sweep.lrs[-1]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.param_groups[0]["lr"] == 0.123 and not optimizer.state_dict()["state"]


def test_suggestion_is_the_steepest_descent():
    lrs = list(np.geomspace(1e-5, 1, 50))
    losses = [1.0 / (1 + np.exp(4 * (np.log10(lr) + 2.5))) for lr in lrs]  # steepest at lr = 10**-2.5
    assert abs(np.log10(suggest_lr(lrs, losses)) + 2.5) < 0.15


class AutocastRecorder(PixelModel):
    """PixelModel noting, at each forward, whether CPU autocast is on and in which dtype."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, bg, fg_bg):
        self.seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return super().forward(bg, fg_bg)


def test_sweep_runs_under_the_training_precision(monkeypatch):
    """CPU stand-ins for CUDA: bf16 autocast, and fp16 autocast with a GradScaler scaling every loss."""
    from fgbg_utils import lr_finder

    model = AutocastRecorder()
    sweep = lr_range_test(model, torch.optim.SGD(model.parameters(), lr=0.1), squared_error, batches(), steps=6,
                          dtype=torch.bfloat16)  # fmt: skip
    assert len(sweep.lrs) == 6 and model.seen == [torch.bfloat16] * 6

    scaled = []
    real_scaler = lr_finder.make_scaler

    def spying_scaler(device, dtype):
        scaler = real_scaler(device, dtype)
        original = scaler.scale
        scaler.scale = lambda loss: scaled.append(float(loss.detach())) or original(loss)
        return scaler

    monkeypatch.setattr(lr_finder, "make_scaler", spying_scaler)
    model = AutocastRecorder()
    lr_range_test(model, torch.optim.SGD(model.parameters(), lr=0.1), squared_error, batches(), steps=6,
                  dtype=torch.float16)  # fmt: skip
    assert model.seen == [torch.float16] * 6 and len(scaled) == 6
    model = AutocastRecorder()
    lr_range_test(model, torch.optim.SGD(model.parameters(), lr=0.1), squared_error, batches(), steps=3)
    assert model.seen == [None] * 3, "no dtype: full precision, as on a CPU"
