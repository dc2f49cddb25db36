"""upload: uploaded bytes in each widget's form become files, paired and predicted on."""

import datetime
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from fgbg_utils.checkpoints import latest_checkpoint
from fgbg_utils.predict import OUTPUTS, predict_pair
from fgbg_utils.train import train
from fgbg_utils.train_config import TrainConfig
from fgbg_utils.upload import UploadPredictor, pair_uploads, predict_uploads, save_uploads, uploaded_files


@pytest.fixture(scope="module")
def checkpoint(small_dataset, tmp_path_factory) -> Path:
    """A 2-step run at 32 px: the handler needs weights, not skill."""
    out = tmp_path_factory.mktemp("upload") / "run"
    config = TrainConfig(data=str(small_dataset), out=str(out), sizes=(32,), batch_size=4, steps=2,
                         checkpoint_every_minutes=None, val_samples=4, workers=0, progress=False)  # fmt: skip
    train(config)
    return latest_checkpoint(out)


def png_bytes(image: np.ndarray) -> bytes:
    data = io.BytesIO()
    Image.fromarray(image).save(data, format="PNG")
    return data.getvalue()


def pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    fg_bg = bg.copy()
    fg_bg[8:24, 10:30] = (240, 30, 200)
    return bg, fg_bg


def widget_value(files: dict[str, bytes]) -> tuple[dict, ...]:
    """What ipywidgets 8's FileUpload.value holds after an upload."""
    stamp = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    return tuple(
        {"name": name, "type": "image/png", "size": len(data), "content": memoryview(data), "last_modified": stamp}
        for name, data in files.items()
    )


def test_the_three_upload_forms_give_the_same_files():
    files = {"a.png": b"\x89PNG one", "b.jpg": b"\xff\xd8 two"}
    colab = files  # google.colab.files.upload()
    widgets7 = {name: {"metadata": {"name": name}, "content": data} for name, data in files.items()}
    expected = list(files.items())
    assert uploaded_files(widget_value(files)) == uploaded_files(colab) == uploaded_files(widgets7) == expected


def test_saved_uploads_keep_their_bytes_and_lose_folder_parts(tmp_path):
    paths = save_uploads({"../../evil.png": b"abc", "C:\\Users\\me\\b.png": b"de"}, tmp_path / "in")
    assert paths == [tmp_path / "in" / "evil.png", tmp_path / "in" / "b.png"]
    assert [p.read_bytes() for p in paths] == [b"abc", b"de"]
    with pytest.raises(ValueError, match="nothing was uploaded"):
        save_uploads((), tmp_path / "in")
    with pytest.raises(ValueError, match="'.hidden'"):
        save_uploads({".hidden": b"x"}, tmp_path / "in")


def test_one_background_serves_every_photo_and_several_match_by_stem(tmp_path):
    one = [tmp_path / "street.png"]
    photos = [tmp_path / "p" / "a.jpg", tmp_path / "p" / "b.jpg"]
    assert pair_uploads(one, photos) == [(one[0], photos[0]), (one[0], photos[1])]
    several = [tmp_path / "b.png", tmp_path / "a.png"]
    assert pair_uploads(several, photos) == [(several[1], photos[0]), (several[0], photos[1])]
    with pytest.raises(ValueError, match=r"c\.jpg: has no background named c"):
        pair_uploads(several, [tmp_path / "c.jpg"])


def test_uploads_are_predicted_as_the_files_would_be(checkpoint, tmp_path):
    bg, fg_bg = pair()
    written = predict_uploads(checkpoint, widget_value({"room.png": png_bytes(bg)}),
                              widget_value({"room_cat.png": png_bytes(fg_bg)}), tmp_path / "out",
                              progress=False)  # fmt: skip
    assert len(written) == 1 and set(written[0]) == {*OUTPUTS, "bg", "fg_bg"}
    for name, path in (("bg", bg), ("fg_bg", fg_bg)):
        with Image.open(written[0][name]) as saved:
            assert np.array_equal(np.asarray(saved), path)
    (tmp_path / "files").mkdir()
    Image.fromarray(bg).save(tmp_path / "files" / "room.png")
    Image.fromarray(fg_bg).save(tmp_path / "files" / "room_cat.png")
    direct = predict_pair(checkpoint, tmp_path / "files" / "room.png", tmp_path / "files" / "room_cat.png",
                          tmp_path / "direct", progress=False)  # fmt: skip
    for name in OUTPUTS:
        assert written[0][name].read_bytes() == direct[name].read_bytes(), name


def test_the_widget_predicts_on_click_and_shows_a_bad_file_in_one_line(checkpoint, tmp_path):
    bg, fg_bg = pair(1)
    widget = UploadPredictor(checkpoint, tmp_path / "out", progress=False)
    widget.backgrounds.value = widget_value({"bg.png": png_bytes(bg)})
    widget.photos.value = widget_value({"photo.png": png_bytes(fg_bg)})
    widget.button.click()
    assert [paths["mask"].name for paths in widget.written] == ["photo_mask.png"]
    assert any("image/png" in output.get("data", {}) for output in widget.output.outputs)
    widget.photos.value = widget_value({"broken.png": png_bytes(fg_bg)[:60]})
    widget.button.click()
    text = "".join(output.get("text", "") for output in widget.output.outputs)
    assert text.startswith("error: ") and "broken.png" in text and text.count("\n") == 1
    plt.close("all")
