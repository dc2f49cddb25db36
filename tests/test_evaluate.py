"""evaluate(DatasetInfo.open(limit=N)): the same evenly spaced samples on every call, scored exactly as a full
evaluation of those samples alone would score them."""

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_samples import untrained_checkpoint
from PIL import Image

from fgbg_utils import evaluate as evaluate_module
from fgbg_utils.build import BuildConfig, make_dataset
from fgbg_utils.checkpoints import latest_checkpoint, save_checkpoint, weights_digest
from fgbg_utils.cli import main
from fgbg_utils.data import evenly_spaced_positions
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.evaluate import evaluate
from fgbg_utils.models import DEFAULT_MODEL, RefinedFgBgNet, build_model
from fgbg_utils.store import member_names, shard_name
from fgbg_utils.train import train
from fgbg_utils.train_config import TrainConfig


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """The smoke profile's shape (6 bg x 6 fg x 2 x 2 at 64 px): 16 unseen_test samples."""
    root = tmp_path_factory.mktemp("evaluate") / "data"
    make_dataset(root, BuildConfig(n_bg=6, n_fg=6, placements=2, size=64), workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def checkpoint(dataset, tmp_path_factory) -> Path:
    """An untrained fgbg_net saved as a 32 px run's checkpoint: scoring needs weights, not skill."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("run") / "last.pt"
    config = TrainConfig(data=str(dataset), out=str(path.parent), sizes=(32,))
    untrained_checkpoint(path, config)
    return path


def test_evenly_spaced_positions_cover_both_ends():
    assert evenly_spaced_positions(16, 5) == [0, 3, 7, 11, 15]
    assert evenly_spaced_positions(16, 1) == [0]
    assert evenly_spaced_positions(16, 16) == evenly_spaced_positions(16, 40) == evenly_spaced_positions(16, None)
    assert evenly_spaced_positions(16, None) == list(range(16))
    with pytest.raises(ValueError, match="at least 1"):
        evenly_spaced_positions(16, 0)


def test_limit_scores_the_same_evenly_spaced_samples_on_every_call(dataset, checkpoint, tmp_path):
    test_ids = DatasetInfo.open(dataset).splits["unseen"]["test"]
    assert len(test_ids) == 16
    first = evaluate(
        DatasetInfo.open(dataset),
        checkpoint,
        limit=5,
        json_out=tmp_path / "r.json",
        threshold_samples=16,
        progress=False,
    )
    again = evaluate(DatasetInfo.open(dataset), checkpoint, limit=5, threshold_samples=16, progress=False)

    assert first["sample_ids"] == [test_ids[i] for i in (0, 3, 7, 11, 15)] == again["sample_ids"]
    assert first["samples"] == first["limit"] == 5
    assert first["metrics"]["images"] == 5
    assert {baseline["images"] for baseline in first["baselines"].values()} == {5}
    assert first["metrics"] == again["metrics"] and first["baselines"] == again["baselines"]
    assert json.loads((tmp_path / "r.json").read_text())["samples"] == 5
    torch.manual_seed(0)  # the checkpoint fixture's weights, built again
    assert first["weights_sha256"] == weights_digest(build_model(DEFAULT_MODEL))


def test_limited_metrics_equal_a_full_evaluation_of_those_samples_alone(dataset, checkpoint, monkeypatch):
    limited = evaluate(DatasetInfo.open(dataset), checkpoint, limit=5, threshold_samples=16, progress=False)

    class OnlyThoseSamples(evaluate_module.FgBgDataset):
        """unseen_test cut down to the limited run's samples; every other split as it is."""

        def __init__(self, root, split, **kwargs):
            super().__init__(root, limited["sample_ids"] if split == "unseen_test" else split, **kwargs)

    monkeypatch.setattr(evaluate_module, "FgBgDataset", OnlyThoseSamples)
    full = evaluate(DatasetInfo.open(dataset), checkpoint, threshold_samples=16, progress=False)

    assert full["samples"] == 5 and full["limit"] is None and "sample_ids" not in full
    scored = [(limited["metrics"], full["metrics"])]
    scored += [(limited["baselines"][name], full["baselines"][name]) for name in limited["baselines"]]
    for ours, theirs in scored:
        assert ours.pop("split") == "unseen_test" and theirs.pop("split") == "custom"
        assert ours.keys() == theirs.keys()
        for key, value in ours.items():
            assert value == (pytest.approx(theirs[key], rel=1e-6) if isinstance(value, float) else theirs[key]), key


def test_cli_limit_writes_the_sample_count_and_rejects_zero(dataset, checkpoint, tmp_path, capsys):
    args = ["evaluate", "--data", str(dataset), "--checkpoint", str(checkpoint), "--json", str(tmp_path / "r.json")]
    assert main([*args, "--limit", "3"]) == 0
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["samples"] == written["metrics"]["images"] == len(written["sample_ids"]) == 3
    assert main([*args, "--limit", "0"]) == 2
    assert "limit must be at least 1" in capsys.readouterr().err


def as_earlier_revision(weights: dict) -> None:
    """`weights` as an earlier fgbg_net saved them: a per-image slope head, no camera height."""
    (camera,) = [key for key in weights if key.endswith("ground.camera_height.weight")]
    weights[camera.replace("camera_height", "slope")] = torch.zeros(1, 256)
    del weights[camera]


def test_a_checkpoint_of_another_network_revision_is_refused_by_name(dataset, checkpoint, tmp_path):
    """Weights saved by an earlier fgbg_net name the file and the layers that differ instead of a
    bare state-dict error, in evaluation and on resume; the refused resume writes nothing."""
    state = torch.load(checkpoint, weights_only=True)
    as_earlier_revision(state["model"])
    old = tmp_path / "old.pt"
    save_checkpoint(old, state)
    with pytest.raises(ValueError, match=rf"{old}: its weights do not fit this version of fgbg_net.*camera_height"):
        evaluate(DatasetInfo.open(dataset), old, split="unseen_test", limit=2)
    run = tmp_path / "old_run"
    config = TrainConfig(data=str(dataset), out=str(run), steps=2, sizes=(32,), batch_size=4, val_samples=2, workers=0)
    train(replace(config, progress=False))
    newest = latest_checkpoint(run)
    state = torch.load(newest, weights_only=True)
    as_earlier_revision(state["model"])
    save_checkpoint(newest, state)
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    with pytest.raises(ValueError, match=rf"{newest.name}: its weights do not fit .*camera_height"):
        train(replace(config, resume=True, progress=False))
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before


def random_split_checkpoint(dataset: Path, folder: Path) -> Path:
    """The fixture's untrained weights, saved as a run on the random split."""
    path = folder / "random.pt"
    config = TrainConfig(data=str(dataset), out=str(folder), sizes=(32,), split="random")
    torch.manual_seed(0)
    untrained_checkpoint(path, config)
    return path


def test_the_default_split_is_the_checkpoints_own_test_split(dataset, checkpoint, tmp_path):
    """unseen_test for an unseen run, test for a random one; a split holding training samples is
    refused (a random-split model on unseen_test), except the training split itself."""
    assert evaluate(DatasetInfo.open(dataset), checkpoint, limit=2, progress=False)["split"] == "unseen_test"
    random_run = random_split_checkpoint(dataset, tmp_path)
    assert evaluate(DatasetInfo.open(dataset), random_run, limit=2, progress=False)["split"] == "test"
    splits = DatasetInfo.open(dataset).splits
    overlap = len(set(splits["random"]["train"]) & set(splits["unseen"]["test"]))
    assert overlap > 0
    with pytest.raises(ValueError, match=f"trained on 'train', which holds {overlap:,} of the .* score it on 'test'"):
        evaluate(DatasetInfo.open(dataset), random_run, split="unseen_test", limit=2, progress=False)
    assert evaluate(DatasetInfo.open(dataset), random_run, split="train", limit=2, progress=False)["split"] == "train"
    other = tmp_path / "other"
    make_dataset(other, BuildConfig(n_bg=6, n_fg=6, placements=2, size=64, seed=9), workers=1, progress=False)
    assert (
        evaluate(DatasetInfo.open(other), random_run, split="unseen_test", limit=2, progress=False)["samples"] == 2
    ), "another dataset holds none of its training samples"


def test_size_sets_the_scoring_size(dataset, checkpoint):
    result = evaluate(DatasetInfo.open(dataset), checkpoint, size=48, limit=2, progress=False)
    assert result["size"] == 48
    assert evaluate(DatasetInfo.open(dataset), checkpoint, limit=2, progress=False)["size"] == 32  # the run's last size


def test_outputs_that_cannot_be_written_are_refused_before_scoring(dataset, checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate_module, "prepare_scoring", lambda *a, **k: pytest.fail("scored anyway"))
    with pytest.raises(ValueError, match=f"{tmp_path}: a folder; the results go to a file"):
        evaluate(DatasetInfo.open(dataset), checkpoint, json_out=tmp_path, progress=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="file: a file; predictions go to a folder"):
        evaluate(DatasetInfo.open(dataset), checkpoint, save_predictions=tmp_path / "file", progress=False)
    with pytest.raises(ValueError, match=f"cannot be written, {tmp_path / 'file'} is a file"):
        evaluate(
            DatasetInfo.open(dataset), checkpoint, json_out=tmp_path / "file" / "deeper" / "scores.json", progress=False
        )


def test_cli_names_what_is_not_a_checkpoint_or_a_device(dataset, checkpoint, tmp_path, capsys, monkeypatch):
    """No traceback: a folder, a bare state_dict, a CSV file, an unknown device, CUDA without a GPU."""
    bare = tmp_path / "bare.pt"
    torch.save(build_model("fgbg_net").state_dict(), bare)
    (tmp_path / "scores.csv").write_text("a,b\n1,2\n")
    cases = {
        str(tmp_path): "a folder, not a checkpoint file",
        str(bare): "no 'config' and 'model'",
        str(tmp_path / "scores.csv"): "not a readable checkpoint",
    }
    for path, problem in cases.items():
        assert main(["evaluate", "--data", str(dataset), "--checkpoint", path]) == 2
        assert problem in capsys.readouterr().err
    assert main(["evaluate", "--data", str(dataset), "--checkpoint", str(checkpoint), "--device", "foo"]) == 2
    assert "device 'foo': not a device name" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["evaluate", "--data", str(dataset), "--checkpoint", str(checkpoint), "--device", "cuda"]) == 2
    assert "device 'cuda': this machine has no CUDA GPU" in capsys.readouterr().err


def test_one_background_trains_and_scores_on_the_random_split(tmp_path):
    """Nothing to hold out for `unseen`: that split is refused by name, the random one serves."""
    data = tmp_path / "one"
    make_dataset(data, BuildConfig(n_bg=1, n_fg=3, placements=2, size=64), workers=1, progress=False)
    with pytest.raises(ValueError, match="unseen split needs at least 2 backgrounds"):
        train(TrainConfig(data=str(data), out=str(tmp_path / "u"), steps=1, sizes=(32,), workers=0, progress=False))
    run = TrainConfig(str(data), str(tmp_path / "r"), split="random", steps=1, batch_size=4, sizes=(32,), workers=0)
    assert train(run)["steps"] == 1
    result = evaluate(DatasetInfo.open(data), latest_checkpoint(run.out), progress=False)
    assert result["split"] == "test" and result["samples"] == len(DatasetInfo.open(data).splits["random"]["test"]) > 0


def test_evaluate_runs_under_the_precision_validation_uses(dataset, checkpoint, monkeypatch):
    """A CPU stand-in for CUDA's bf16: the model runs inside the shared autocast, and its scores stay
    within rounding of fp32's."""
    full = evaluate(DatasetInfo.open(dataset), checkpoint, limit=8, threshold_samples=16, progress=False)
    entered = []
    real_autocast = evaluate_module.autocast

    def spying_autocast(device, dtype):
        entered.append((torch.device(device).type, dtype))
        return real_autocast(device, dtype)

    monkeypatch.setattr(evaluate_module, "amp_dtype", lambda device, amp=None: torch.bfloat16)
    monkeypatch.setattr(evaluate_module, "autocast", spying_autocast)
    half = evaluate(DatasetInfo.open(dataset), checkpoint, limit=8, threshold_samples=16, progress=False)
    assert entered and set(entered) == {("cpu", torch.bfloat16)}
    assert half["metrics"]["images"] == full["metrics"]["images"] == 8
    assert half["metrics"] != full["metrics"], "bf16 rounds differently: the autocast really ran"
    for name in ("mask_iou", "depth_rmse"):
        assert half["metrics"][name] == pytest.approx(full["metrics"][name], abs=0.02), name
    assert half["baselines"] == full["baselines"]


def test_the_default_network_is_scored_at_224_px_against_the_stored_masks(tmp_path, monkeypatch):
    """A run at the dataset's size (the default recipe) on a 224 px build is scored on its full-size
    outputs against the mask PNGs in the shards, read here with zipfile and PIL alone: no resize."""
    dataset = tmp_path / "data"
    make_dataset(dataset, BuildConfig(n_bg=5, n_fg=5, placements=1, size=224), workers=1, progress=False)
    torch.manual_seed(0)
    config = TrainConfig(data=str(dataset), out=str(tmp_path / "run"), sizes=())
    assert config.model == DEFAULT_MODEL == "fgbg_net_refined"
    checkpoint = untrained_checkpoint(tmp_path / "last.pt", config)
    predicted = []
    forward = RefinedFgBgNet.forward
    monkeypatch.setattr(
        RefinedFgBgNet, "forward", lambda self, *pair: predicted.append(forward(self, *pair)) or predicted[-1]
    )
    result = evaluate(DatasetInfo.open(dataset), checkpoint, limit=4, batch_size=2, threshold_samples=4, progress=False)

    assert result["size"] == 224 == DatasetInfo.open(dataset).size
    logits = torch.cat([outputs["mask"] for outputs in predicted])[:, 0].numpy()
    assert logits.shape == (4, 224, 224)
    info = DatasetInfo.open(dataset)
    shard_of = dict(zip(info.index["sample"].tolist(), info.index["bg"].tolist(), strict=True))
    ious = []
    for sample, prediction in zip(result["sample_ids"], logits > 0, strict=True):
        with zipfile.ZipFile(dataset / shard_name(shard_of[sample])) as archive:
            stored = np.asarray(Image.open(io.BytesIO(archive.read(member_names(sample)[1])))) > 127
        assert stored.shape == (224, 224)
        union = np.logical_or(prediction, stored).sum()
        ious.append(np.logical_and(prediction, stored).sum() / union if union else 1.0)
    assert result["metrics"]["mask_iou"] == pytest.approx(np.mean(ious), abs=1e-12)


def test_freed_memory_is_handed_back_after_every_scored_batch(dataset, checkpoint, monkeypatch):
    """Without it, scoring 12,000 images at 224 px grew past 24 GiB (glibc kept the freed temporaries)."""
    calls = []
    monkeypatch.setattr(evaluate_module, "release_freed_memory", lambda: calls.append(1) or True)
    evaluate(DatasetInfo.open(dataset), checkpoint, limit=6, batch_size=2, threshold_samples=4, progress=False)
    assert len(calls) == 3
