"""Checkpoint files carry a format number; another one is refused by name."""

import pytest
import torch
from checkpoint_samples import untrained_checkpoint

from fgbg_utils.checkpoints import CHECKPOINT_FORMAT, load_checkpoint
from fgbg_utils.train_config import TrainConfig


@pytest.mark.parametrize("version", [CHECKPOINT_FORMAT + 1, None])
def test_another_checkpoint_format_is_refused_by_name(small_dataset, tmp_path, version):
    path = untrained_checkpoint(tmp_path / "last.pt", TrainConfig(data=str(small_dataset), out=str(tmp_path)))
    assert load_checkpoint(path)["format_version"] == CHECKPOINT_FORMAT
    state = torch.load(path, weights_only=True)
    if version is None:
        del state["format_version"]
    else:
        state["format_version"] = version
    torch.save(state, path)
    with pytest.raises(ValueError, match="another version of the kit") as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value)
