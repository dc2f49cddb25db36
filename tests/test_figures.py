"""Figures of predictions and of a run: panels per sample, worst cases first, every sample counted, the logged steps."""

import json
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pytest
from prediction_samples import numpy_iou, synthetic

from fgbg_utils.figures import COLUMNS, learning_curves, metric_distributions, prediction_grid, worst_cases
from fgbg_utils.runs import read_run_metrics


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


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


def test_learning_curves_from_metrics_json_or_csv(trained_run, tmp_path):
    rows = json.loads((trained_run[0] / "metrics.json").read_text())
    figure = learning_curves(trained_run[0])
    assert len(figure.axes) == 4
    line = next(line for line in figure.axes[1].lines if line.get_label() == "val_mask_iou")
    assert list(line.get_xdata()) == [row["step"] for row in rows] == [1, 2]
    assert list(line.get_ydata()) == pytest.approx([row["val_mask_iou"] for row in rows])
    shutil.copy(trained_run[0] / "metrics.csv", tmp_path / "metrics.csv")
    from_csv = read_run_metrics(tmp_path)
    assert [row["step"] for row in from_csv] == [1, 2] and from_csv[1]["val_split"] == "unseen_test"
    assert [row["val_mask_iou"] for row in from_csv] == pytest.approx([row["val_mask_iou"] for row in rows])
    with pytest.raises(FileNotFoundError, match="metrics"):
        read_run_metrics(tmp_path / "empty")
