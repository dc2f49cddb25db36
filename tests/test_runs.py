"""Finding or training the run a notebook looks at, its cached scores and the scores table."""

import json

import pytest

from fgbg_utils import runs
from fgbg_utils.checkpoints import load_checkpoint, save_checkpoint, state_digest
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.evaluate import SCORES_FORMAT
from fgbg_utils.runs import ensure_run, fallback_run, load_or_evaluate, scores_table
from fgbg_utils.train_config import TrainConfig


def test_ensure_run_prefers_the_run_asked_for_and_trains_the_fallback_once(trained_run, monkeypatch, tmp_path):
    folder, checkpoint = trained_run
    assert folder.name == "fallback" and checkpoint == folder / "checkpoints" / "step_0000002.pt"
    monkeypatch.setattr(runs, "train", lambda config: pytest.fail("trained again"))
    other = TrainConfig(data="unused", out=str(tmp_path / "other"))
    assert ensure_run(tmp_path / "missing", TrainConfig(data="unused", out=str(folder))) == trained_run
    assert ensure_run(folder, other) == trained_run


def test_ensure_run_skips_a_checkpoint_the_model_cannot_load(trained_run, monkeypatch, tmp_path, capsys):
    stale = load_checkpoint(trained_run[1])
    del stale["model"][next(iter(stale["model"]))]  # a weight the current model has, missing
    save_checkpoint(tmp_path / "old" / "checkpoints" / "last.pt", stale)
    monkeypatch.setattr(runs, "train", lambda config: pytest.fail("trained although the fallback loads"))
    assert ensure_run(tmp_path / "old", TrainConfig(data="unused", out=str(trained_run[0]))) == trained_run
    printed = capsys.readouterr().out
    assert f"{tmp_path / 'old' / 'checkpoints' / 'last.pt'}: does not load" in printed
    assert printed.count(str(tmp_path / "old" / "checkpoints" / "last.pt")) == 1  # the file is named once


def test_scores_are_read_back_only_for_the_same_weights_split_dataset_and_limit(
    trained_run, small_dataset, monkeypatch, tmp_path
):
    """Another run trained into the same folder for as many steps has other weights, and scores of
    another dataset or of fewer samples are not these: their scores file is not this checkpoint's."""
    calls = []

    def fake_evaluate(data, checkpoint, split, json_out, **options):
        calls.append(split)
        return {"split": split, "step": -1}

    monkeypatch.setattr(runs, "evaluate", fake_evaluate)
    state = load_checkpoint(trained_run[1])
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
    assert (
        load_or_evaluate(tmp_path, DatasetInfo.open(small_dataset), trained_run[1], "unseen_test")["cached"]
        and not calls
    )
    for stale in ({"weights_sha256": "another run's"}, {"dataset": {**identity, "samples": 1}}, {"limit": 8}):
        (tmp_path / "eval_unseen.json").write_text(json.dumps({**cached, **stale}))
        assert load_or_evaluate(tmp_path, DatasetInfo.open(small_dataset), trained_run[1], "unseen_test") == {
            "split": "unseen_test",
            "step": -1,
        }
    assert load_or_evaluate(tmp_path, DatasetInfo.open(small_dataset), trained_run[1], "test")["split"] == "test"
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


def test_the_fallback_run_is_shared_and_short(tmp_path):
    quick, timed = fallback_run(tmp_path, "smoke", None), fallback_run(tmp_path, "demo", 2)
    assert quick.out.endswith("smoke/visualize_train") and quick.steps == 2 and quick.minutes is None
    assert timed.minutes == 2 and timed.steps is None and timed.sizes == (64, 96) and timed.data == str(tmp_path)
