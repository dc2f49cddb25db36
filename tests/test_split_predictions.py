"""A checkpoint applied to a split: the kept arrays equal the model's outputs, the scores a numpy reference."""

import numpy as np
import pytest
import torch
from prediction_samples import numpy_iou, synthetic

from fgbg_utils.checkpoints import load_checkpoint
from fgbg_utils.data import FgBgDataset, evenly_spaced_positions
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.depth import FAR_M, NEAR_M
from fgbg_utils.evaluate import evaluation_size, load_model
from fgbg_utils.manifest import read_manifest
from fgbg_utils.split_predictions import SplitPredictions, predict_split
from fgbg_utils.transforms import make_transforms


@pytest.fixture(scope="module")
def predicted(trained_run, small_dataset) -> SplitPredictions:
    return predict_split(trained_run[1], DatasetInfo.open(small_dataset), "unseen_test", device="cpu", progress=False)


def test_predictions_equal_the_model_outputs(trained_run, predicted, small_dataset):
    state = load_checkpoint(trained_run[1])
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


def test_limit_keeps_evenly_spaced_samples(trained_run, predicted, small_dataset):
    kept = predict_split(
        trained_run[1], DatasetInfo.open(small_dataset), "unseen_test", limit=3, device="cpu", progress=False
    )
    rows = evenly_spaced_positions(len(predicted), 3)
    assert len(kept) == 3 and rows[0] == 0 and rows[-1] == len(predicted) - 1
    assert np.array_equal(kept.ids["sample"], predicted.ids["sample"][rows])
    assert np.array_equal(kept.fg_bg, predicted.fg_bg[rows])
    np.testing.assert_allclose(kept.mask_prob, predicted.mask_prob[rows], atol=1e-5)
    with pytest.raises(ValueError, match="limit"):
        predict_split(trained_run[1], DatasetInfo.open(small_dataset), "unseen_test", limit=0, progress=False)


def test_arrays_of_the_wrong_shape_are_named():
    good = synthetic()
    arrays = {name: getattr(good, name) for name in ("bg", "fg_bg", "mask", "mask_prob", "depth", "depth_pred")}
    arrays["depth_pred"] = arrays["depth_pred"][:, :-1]
    with pytest.raises(ValueError, match="depth_pred"):
        SplitPredictions.from_arrays("x", **arrays)
