"""The prediction browser's Python side: controls, view and scores, and how it is shown (test_browser.py drives
notebook 07's browser in a real browser)."""

import re
import sys
import types

import numpy as np
import pytest
from prediction_samples import numpy_iou, synthetic

from fgbg_utils import browser as browser_module
from fgbg_utils.browser import DOM_CLASSES, PredictionBrowser, show_browser

DPI = 40
"""Browser images in these tests: small and quick to draw, still different for every change."""


def shown(browser: PredictionBrowser, name: str) -> str:
    return re.search(rf'class="fgbg-{name}"[^>]*>([^<]*)<', browser.metrics.value)[1]


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
    monkeypatch.setattr(browser_module, "in_colab", lambda: False)
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
    monkeypatch.setattr(browser_module, "in_colab", lambda: True)
    show_browser(PredictionBrowser(synthetic(), dpi=DPI))
