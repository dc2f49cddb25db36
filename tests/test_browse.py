"""Notebook 07's predictions, figures and widget browser (the Python side; test_browser.py drives a real browser)."""

import json
import re
import shutil
import sys
import types
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from fgbg_utils import browse
from fgbg_utils.browse import (
    COLUMNS,
    DOM_CLASSES,
    PredictionBrowser,
    SplitPredictions,
    ensure_run,
    learning_curves,
    load_or_evaluate,
    metric_distributions,
    predict_split,
    prediction_grid,
    read_run_metrics,
    scores_table,
    show_browser,
    worst_cases,
)
from fgbg_utils.checkpoints import load_checkpoint, save_checkpoint, state_digest
from fgbg_utils.data import FgBgDataset, evenly_spaced_positions
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.depth import FAR_M, NEAR_M
from fgbg_utils.evaluate import SCORES_FORMAT, evaluation_size, load_model
from fgbg_utils.manifest import read_manifest
from fgbg_utils.train_config import TrainConfig
from fgbg_utils.transforms import make_transforms

DPI = 40
"""Browser images in these tests: small and quick to draw, still different for every change."""


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def run(small_dataset, tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, checkpoint) of a 2-step run, made by ensure_run because the run asked for is missing."""
    folder = tmp_path_factory.mktemp("browse")
    fallback = TrainConfig(
        data=str(small_dataset),
        out=str(folder / "fallback"),
        sizes=(32,),
        batch_size=4,
        steps=2,
        checkpoint_every_steps=1,
        checkpoint_every_minutes=None,
        val_samples=4,
        augment=False,
        progress=False,
    )
    return ensure_run(folder / "missing", fallback)


@pytest.fixture(scope="module")
def predicted(run, small_dataset) -> SplitPredictions:
    return predict_split(run[1], DatasetInfo.open(small_dataset), "unseen_test", device="cpu", progress=False)


def synthetic(split: str = "synthetic", count: int = 6, size: int = 12, seed: int = 0) -> SplitPredictions:
    """Random images; a square object per sample; probabilities that overlap between object and
    background, so every threshold gives other masks and IoUs."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((count, size, size), np.uint8)
    for i in range(count):
        side = 2 + i % 5
        top, left = rng.integers(0, size - side, 2)
        mask[i, top : top + side, left : left + side] = 1
    prob = (0.6 * rng.random(mask.shape) + 0.4 * mask).astype(np.float32)
    return SplitPredictions.from_arrays(
        split,
        bg=rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8),
        fg_bg=rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8),
        mask=mask,
        mask_prob=prob,
        depth=rng.integers(0, 256, (count, size, size), dtype=np.uint8),
        depth_pred=rng.random((count, size, size)).astype(np.float32),
        ids={
            "sample": np.arange(100, 100 + count),
            "bg_id": np.arange(count) % 3,
            "fg_id": np.arange(count) % 2,
            "flip": np.arange(count) % 2,
        },
    )


def numpy_iou(prob: np.ndarray, mask: np.ndarray, threshold: float) -> float:
    predicted, target = prob > threshold, mask > 0
    union = np.logical_or(predicted, target).sum()
    return 1.0 if union == 0 else np.logical_and(predicted, target).sum() / union


def shown(browser: PredictionBrowser, name: str) -> str:
    return re.search(rf'class="fgbg-{name}"[^>]*>([^<]*)<', browser.metrics.value)[1]


# --- predictions ----------------------------------------------------------------------------


def test_predictions_equal_the_model_outputs(run, predicted, small_dataset):
    state = load_checkpoint(run[1])
    model = load_model(state, torch.device("cpu"))
    manifest = read_manifest(small_dataset)
    size = evaluation_size(state["config"], manifest["generation"]["parameters"]["size"])
    floats = FgBgDataset(
        DatasetInfo.open(small_dataset), "unseen_test", transform=make_transforms(size, False, manifest["statistics"])
    )
    raw = FgBgDataset(
        DatasetInfo.open(small_dataset),
        "unseen_test",
        transform=make_transforms(size, False, manifest["statistics"], output="uint8"),
    )
    assert len(predicted) == len(floats) > 0 and predicted.size == size == 32
    with torch.no_grad():
        for i in range(len(floats)):
            item, pixels = floats[i], raw[i]
            outputs = model(item["bg"][None], item["fg_bg"][None])
            np.testing.assert_allclose(predicted.mask_prob[i], torch.sigmoid(outputs["mask"])[0, 0].numpy(), atol=1e-5)
            np.testing.assert_allclose(predicted.depth_pred[i], outputs["depth"][0, 0].numpy(), atol=1e-5)
            assert np.array_equal(predicted.bg[i], pixels["bg"].permute(1, 2, 0).numpy())
            assert np.array_equal(predicted.fg_bg[i], pixels["fg_bg"].permute(1, 2, 0).numpy())
            assert np.array_equal(predicted.mask[i], pixels["mask"][0].numpy())
            assert np.array_equal(predicted.depth[i], pixels["depth"][0].numpy())
            assert predicted.ids["sample"][i] == item["sample"] and predicted.ids["bg_id"][i] == item["bg_id"]
    sample = predicted.sample(0)
    assert {name: (str(a.dtype), a.shape) for name, a in sample.items()} == {
        "bg": ("uint8", (32, 32, 3)),
        "fg_bg": ("uint8", (32, 32, 3)),
        "mask": ("uint8", (32, 32)),
        "mask_prob": ("float32", (32, 32)),
        "depth": ("uint8", (32, 32)),
        "depth_pred": ("float32", (32, 32)),
    }
    assert predicted.step == 2 and predicted.split == "unseen_test"


def test_per_sample_metrics_agree_with_numpy(predicted):
    for i in range(len(predicted)):
        prob, mask = predicted.mask_prob[i], predicted.mask[i]
        assert predicted.metrics["mask_iou"][i] == pytest.approx(numpy_iou(prob, mask, 0.5))
        truth = predicted.depth[i] / 255.0
        error = predicted.depth_pred[i].astype(np.float64) - truth
        assert predicted.metrics["depth_rmse"][i] == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-6)
        metres = lambda v: 1 / (1 / FAR_M + np.clip(v, 0, 1) * (1 / NEAR_M - 1 / FAR_M))
        gt, pred = metres(truth), metres(predicted.depth_pred[i].astype(np.float64))
        assert predicted.metrics["depth_delta1"][i] == pytest.approx(np.mean(np.maximum(gt / pred, pred / gt) < 1.25))


def test_limit_keeps_evenly_spaced_samples(run, predicted, small_dataset):
    kept = predict_split(run[1], DatasetInfo.open(small_dataset), "unseen_test", limit=3, device="cpu", progress=False)
    rows = evenly_spaced_positions(len(predicted), 3)
    assert len(kept) == 3 and rows[0] == 0 and rows[-1] == len(predicted) - 1
    assert np.array_equal(kept.ids["sample"], predicted.ids["sample"][rows])
    assert np.array_equal(kept.fg_bg, predicted.fg_bg[rows])
    np.testing.assert_allclose(kept.mask_prob, predicted.mask_prob[rows], atol=1e-5)
    with pytest.raises(ValueError, match="limit"):
        predict_split(run[1], DatasetInfo.open(small_dataset), "unseen_test", limit=0, progress=False)


def test_arrays_of_the_wrong_shape_are_named():
    good = synthetic()
    arrays = {name: getattr(good, name) for name in ("bg", "fg_bg", "mask", "mask_prob", "depth", "depth_pred")}
    arrays["depth_pred"] = arrays["depth_pred"][:, :-1]
    with pytest.raises(ValueError, match="depth_pred"):
        SplitPredictions.from_arrays("x", **arrays)


# --- runs and scores ------------------------------------------------------------------------


def test_ensure_run_prefers_the_run_asked_for_and_trains_the_fallback_once(run, monkeypatch, tmp_path):
    folder, checkpoint = run
    assert folder.name == "fallback" and checkpoint == folder / "checkpoints" / "step_0000002.pt"
    monkeypatch.setattr(browse, "train", lambda config: pytest.fail("trained again"))
    other = TrainConfig(data="unused", out=str(tmp_path / "other"))
    assert ensure_run(tmp_path / "missing", TrainConfig(data="unused", out=str(folder))) == run
    assert ensure_run(folder, other) == run


def test_ensure_run_skips_a_checkpoint_the_model_cannot_load(run, monkeypatch, tmp_path, capsys):
    stale = load_checkpoint(run[1])
    del stale["model"][next(iter(stale["model"]))]  # a weight the current model has, missing
    save_checkpoint(tmp_path / "old" / "checkpoints" / "last.pt", stale)
    monkeypatch.setattr(browse, "train", lambda config: pytest.fail("trained although the fallback loads"))
    assert ensure_run(tmp_path / "old", TrainConfig(data="unused", out=str(run[0]))) == run
    printed = capsys.readouterr().out
    assert f"{tmp_path / 'old' / 'checkpoints' / 'last.pt'}: does not load" in printed
    assert printed.count(str(tmp_path / "old" / "checkpoints" / "last.pt")) == 1  # the file is named once


def test_scores_are_read_back_only_for_the_same_weights_split_dataset_and_limit(
    run, small_dataset, monkeypatch, tmp_path
):
    """Another run trained into the same folder for as many steps has other weights, and scores of
    another dataset or of fewer samples are not these: their scores file is not this checkpoint's."""
    calls = []

    def fake_evaluate(data, checkpoint, split, json_out, **options):
        calls.append(split)
        return {"split": split, "step": -1}

    monkeypatch.setattr(browse, "evaluate", fake_evaluate)
    state = load_checkpoint(run[1])
    weights = state_digest(state["model"])
    identity = DatasetInfo.open(small_dataset).identity
    cached = {
        "format_version": SCORES_FORMAT,
        "split": "unseen_test",
        "step": state["step"],
        "weights_sha256": weights,
        "cached": True,
    }
    cached |= {"dataset": identity, "limit": None, "size": 32}
    (tmp_path / "eval_unseen.json").write_text(json.dumps(cached))
    assert load_or_evaluate(tmp_path, DatasetInfo.open(small_dataset), run[1], "unseen_test")["cached"] and not calls
    for stale in ({"weights_sha256": "another run's"}, {"dataset": {**identity, "samples": 1}}, {"limit": 8}):
        (tmp_path / "eval_unseen.json").write_text(json.dumps({**cached, **stale}))
        assert load_or_evaluate(tmp_path, DatasetInfo.open(small_dataset), run[1], "unseen_test") == {
            "split": "unseen_test",
            "step": -1,
        }
    assert load_or_evaluate(tmp_path, DatasetInfo.open(small_dataset), run[1], "test")["split"] == "test"
    assert calls == ["unseen_test"] * 3 + ["test"]


def test_scores_table_has_a_row_per_prediction_and_dashes_for_what_was_not_measured():
    result = {
        "metrics": {"mask_iou": 0.5, "depth_rmse": 0.25},
        "baselines": {"difference_mask": {"mask_iou": 0.125}, "background_depth": {"depth_rmse": 0.0625}},
    }
    header, model, difference, depth = scores_table(result, keys=("mask_iou", "depth_rmse")).splitlines()
    assert header.split() == ["mask_iou", "depth_rmse"]
    assert model.split() == ["model", "0.5000", "0.2500"]
    assert difference.split() == ["difference_mask", "0.1250", "-"]
    assert depth.split() == ["background_depth", "-", "0.0625"]


# --- figures --------------------------------------------------------------------------------


def test_prediction_grid_has_a_row_of_seven_panels_per_sample():
    predictions = synthetic(count=8)
    assert len(prediction_grid(predictions, [0, 3, 5]).axes) == 3 * len(COLUMNS)
    assert len(prediction_grid(predictions).axes) == 6 * len(COLUMNS)


def test_worst_cases_start_with_the_lowest_iou():
    predictions = synthetic(count=8)
    iou = np.array([numpy_iou(predictions.mask_prob[i], predictions.mask[i], 0.5) for i in range(8)])
    figure = worst_cases(predictions, k=2)
    assert len(figure.axes) == 2 * len(COLUMNS)
    assert figure.axes[3].get_title().endswith(f"IoU {np.sort(iou)[0]:.2f}")
    assert figure.axes[len(COLUMNS) + 3].get_title().endswith(f"IoU {np.sort(iou)[1]:.2f}")
    assert figure.axes[1].get_title() == f"fg_bg #{100 + int(np.argsort(iou, kind='stable')[0])}"


def test_metric_distributions_count_every_sample():
    predictions = synthetic(count=7)
    figure = metric_distributions(predictions)
    assert len(figure.axes) == 2
    for axis in figure.axes:
        assert sum(patch.get_height() for patch in axis.patches) == 7


def test_learning_curves_from_metrics_json_or_csv(run, tmp_path):
    rows = json.loads((run[0] / "metrics.json").read_text())
    figure = learning_curves(run[0])
    assert len(figure.axes) == 4
    line = next(line for line in figure.axes[1].lines if line.get_label() == "val_mask_iou")
    assert list(line.get_xdata()) == [row["step"] for row in rows] == [1, 2]
    assert list(line.get_ydata()) == pytest.approx([row["val_mask_iou"] for row in rows])
    shutil.copy(run[0] / "metrics.csv", tmp_path / "metrics.csv")
    from_csv = read_run_metrics(tmp_path)
    assert [row["step"] for row in from_csv] == [1, 2] and from_csv[1]["val_split"] == "unseen_test"
    assert [row["val_mask_iou"] for row in from_csv] == pytest.approx([row["val_mask_iou"] for row in rows])
    with pytest.raises(FileNotFoundError, match="metrics"):
        read_run_metrics(tmp_path / "empty")


# --- the browser ----------------------------------------------------------------------------


def test_moving_the_slider_changes_the_image_and_the_scores():
    browser = PredictionBrowser(synthetic(), dpi=DPI)
    before = (browser.png, browser.metrics.value)
    assert before[0].startswith(b"\x89PNG") and bytes(browser.image.value) == before[0]
    assert shown(browser, "sample") == "100 (bg 0, fg 0)"
    browser.sample.value = 3
    assert browser.png != before[0] and browser.metrics.value != before[1]
    assert shown(browser, "sample") == "103 (bg 0, fg 1, mirrored)" and browser.index == 3


def test_threshold_recomputes_the_predicted_mask_and_the_shown_iou():
    predictions = synthetic()
    browser = PredictionBrowser(predictions, dpi=DPI)
    browser.sample.value = 4
    masks, images = [], []
    for threshold in (0.3, 0.7):
        browser.threshold.value = threshold
        assert np.array_equal(browser.predicted_mask(), predictions.mask_prob[4] > threshold)
        expected = numpy_iou(predictions.mask_prob[4], predictions.mask[4], threshold)
        assert float(shown(browser, "iou")) == pytest.approx(expected, abs=5e-5)
        assert shown(browser, "threshold") == f"{threshold:.2f}"
        masks.append(browser.predicted_mask())
        images.append(browser.png)
    assert not np.array_equal(*masks) and images[0] != images[1]


def test_worst_iou_order_walks_the_samples_by_ascending_iou():
    predictions = synthetic(count=5)
    browser = PredictionBrowser(predictions, threshold=0.5, dpi=DPI)
    browser.sample.value = 2
    browser.sort.value = "worst IoU"
    assert browser.sample.value == 0  # a new order starts at its first sample
    seen, ious = [], []
    for position in range(len(predictions)):
        browser.sample.value = position
        seen.append(browser.index)
        ious.append(float(shown(browser, "iou")))
    expected = [numpy_iou(predictions.mask_prob[i], predictions.mask[i], 0.5) for i in range(5)]
    assert sorted(seen) == list(range(5))
    assert ious == sorted(ious) == pytest.approx(sorted(expected), abs=5e-5)
    assert len(set(ious)) > 1


def test_overlay_and_colormap_change_the_image():
    browser = PredictionBrowser(synthetic(), dpi=DPI)
    plain = browser.png
    browser.overlay.value = True
    overlaid = browser.png
    browser.colormap.value = "gray"
    assert len({plain, overlaid, browser.png}) == 3


def test_split_dropdown_offers_the_predicted_splits():
    browser = PredictionBrowser(
        [synthetic("unseen_test", count=6), synthetic("unseen_train", count=3, seed=1)], dpi=DPI
    )
    assert browser.split.options == ("unseen_test", "unseen_train")
    browser.sample.value = 5
    browser.split.value = "unseen_train"
    assert (browser.sample.max, browser.sample.value) == (2, 0)
    assert shown(browser, "split") == "unseen_train" and shown(browser, "position") == "0 in 0..2 (index)"


def test_browser_exposes_its_widgets_with_stable_dom_classes():
    browser = PredictionBrowser(synthetic(), dpi=DPI)
    for name, css in DOM_CLASSES.items():
        assert css in getattr(browser, name)._dom_classes, name
    assert browser.sample.description == "sample"
    assert [line.split(":")[0] for line in browser.controls()] == [
        "split",
        "order",
        "sample",
        "threshold",
        "overlay mask on fg_bg",
        "depth colours",
    ]


@pytest.fixture
def displayed(monkeypatch):
    import IPython.display

    shown_objects = []
    monkeypatch.setattr(IPython.display, "display", lambda *objects: shown_objects.extend(objects))
    for name in ("FGBG_STATIC", "SERVER_SOFTWARE", "VOILA_PREHEAT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(browse, "in_colab", lambda: False)
    return shown_objects


@pytest.mark.parametrize(
    ("static", "environment", "with_copy"),
    [
        (True, {"SERVER_SOFTWARE": "voila/0.5.8"}, True),
        (False, {}, False),
        (None, {}, True),
        (None, {"FGBG_STATIC": "0"}, False),
        (None, {"SERVER_SOFTWARE": "voila/0.5.8"}, False),
        (None, {"VOILA_PREHEAT": "True"}, False),
    ],
)
def test_show_browser_adds_a_static_copy_where_widgets_may_not_render(
    displayed, monkeypatch, static, environment, with_copy
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    browser = PredictionBrowser(synthetic(), dpi=DPI)
    show_browser(browser, static=static)
    assert displayed[0] is browser.widget and len(displayed) == (3 if with_copy else 1)
    if with_copy:
        assert displayed[1].data == browser.png and displayed[2].data == browser.metrics.value


def test_show_browser_turns_on_colab_widgets(displayed, monkeypatch):
    calls = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("enabled"))
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(browse, "in_colab", lambda: True)
    show_browser(PredictionBrowser(synthetic(), dpi=DPI))
    assert calls == ["enabled"] and len(displayed) == 1
