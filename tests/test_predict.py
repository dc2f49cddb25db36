"""predict: any image pair Pillow opens, at its displayed size, equal to the model run directly; bad
inputs refused in one line with nothing written."""

import io
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from fgbg_utils.checkpoints import latest_checkpoint
from fgbg_utils.cli import main
from fgbg_utils.depth import decode_depth, encode_depth
from fgbg_utils.manifest import read_manifest
from fgbg_utils.models import build_model
from fgbg_utils.predict import OUTPUTS, find_pairs, network_shape, predict_pair, predict_pairs
from fgbg_utils.store import read_png
from fgbg_utils.train import train
from fgbg_utils.train_config import TrainConfig

TRAINED_SIZE = 32


@pytest.fixture(scope="module")
def checkpoint(small_dataset, tmp_path_factory) -> Path:
    """A 3-step run at 32 px on the small dataset: predictions need weights, not skill."""
    out = tmp_path_factory.mktemp("predict") / "run"
    config = TrainConfig(
        data=str(small_dataset),
        out=str(out),
        sizes=(TRAINED_SIZE,),
        batch_size=4,
        steps=3,
        checkpoint_every_minutes=None,
        val_samples=4,
        workers=0,
        progress=False,
    )
    train(config)
    return latest_checkpoint(out)


def scene(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(bg, fg_bg) uint8 HxWx3: a smooth random background, and the same with a bright box pasted."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(4, 4, 3)).astype(np.uint8)
    bg = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR))
    fg_bg = bg.copy()
    fg_bg[height // 3 : height * 2 // 3, width // 4 : width // 2] = (250, 240, 30)
    return bg, fg_bg


def save_pair(folder: Path, bg: np.ndarray, fg_bg: np.ndarray, stem: str = "pair", suffix: str = ".png"):
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / f"{stem}_bg{suffix}", folder / f"{stem}{suffix}"
    for path, image in zip(paths, (bg, fg_bg), strict=True):
        Image.fromarray(image).save(path)
    return paths


def reference(checkpoint: Path, dataset: Path, bg: np.ndarray, fg_bg: np.ndarray) -> dict[str, np.ndarray]:
    """The model run directly: weights loaded by hand, inputs normalised as (x/255 - mean)/std."""
    state = torch.load(checkpoint, weights_only=True)
    model = build_model(state["config"]["model"])
    model.load_state_dict(state["model"])
    stats = read_manifest(dataset)["statistics"]["bg"]
    mean, std = (torch.tensor(stats[key]).view(3, 1, 1) for key in ("mean", "std"))

    def tensor(image):
        return ((torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255.0 - mean) / std)[None]

    with torch.no_grad():
        outputs = model.eval()(tensor(bg), tensor(fg_bg))
    return {"prob": torch.sigmoid(outputs["mask"])[0, 0].numpy(), "depth": outputs["depth"][0, 0].numpy()}


def read(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image


def assert_same_mask(mask: np.ndarray, prob: np.ndarray) -> None:
    """`mask` (0/255) is `prob` > 0.5, except where float rounding can tip a probability within 1e-4 of 0.5."""
    differ = (mask == 255) != (prob > 0.5)
    assert not np.any(differ & (np.abs(prob - 0.5) > 1e-4))


@pytest.mark.parametrize(("height", "width", "at"), [(32, 32, "trained"), (48, 80, "native")])
def test_predictions_equal_the_model_run_directly(checkpoint, small_dataset, tmp_path, height, width, at):
    bg, fg_bg = scene(height, width)
    paths = predict_pair(checkpoint, *save_pair(tmp_path, bg, fg_bg), tmp_path / "out", at=at, progress=False)
    expected = reference(checkpoint, small_dataset, bg, fg_bg)  # both sizes are the network's own: no resize
    prob = np.asarray(read(paths["prob"]), dtype=np.int16)
    assert np.abs(prob - np.rint(expected["prob"] * 255)).max() <= 1
    assert_same_mask(np.asarray(read(paths["mask"])), expected["prob"])
    depth = np.asarray(read(paths["depth"]), dtype=np.int16)
    assert np.abs(depth - np.rint(np.clip(expected["depth"], 0, 1) * 255)).max() <= 1


def test_native_pads_to_the_stride_and_crops_back(checkpoint, small_dataset, tmp_path):
    bg, fg_bg = scene(333, 517, seed=1)
    paths = predict_pair(checkpoint, *save_pair(tmp_path, bg, fg_bg), tmp_path / "out", at="native", progress=False)
    padded = [np.pad(image, ((0, 3), (0, 11), (0, 0))) for image in (bg, fg_bg)]  # to 336 x 528, black
    expected = reference(checkpoint, small_dataset, *padded)["prob"][:333, :517]
    assert_same_mask(np.asarray(read(paths["mask"])), expected)


def test_output_files_their_modes_sizes_and_values(checkpoint, tmp_path):
    bg, fg_bg = scene(40, 56)
    paths = predict_pair(checkpoint, *save_pair(tmp_path, bg, fg_bg, "street"), tmp_path / "out", progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"street_{n}.png" for n in OUTPUTS)
    images = {name: read(path) for name, path in paths.items()}
    assert {name: image.mode for name, image in images.items()} == {
        "mask": "L",
        "prob": "L",
        "depth": "L",
        "depth_color": "RGB",
        "overlay": "RGB",
    }
    assert all(image.size == (56, 40) for image in images.values())
    mask, prob = np.asarray(images["mask"]), np.asarray(images["prob"])
    assert set(np.unique(mask)) <= {0, 255}
    assert np.isin(prob[(mask == 255) != (prob > 127)], (127, 128)).all()  # the mask is prob > 0.5
    overlay = np.asarray(images["overlay"])
    assert np.array_equal(overlay[mask == 0], fg_bg[mask == 0])  # untouched outside the mask


def test_depth_png_is_the_kits_encoding(checkpoint, small_dataset, tmp_path):
    bg, fg_bg = scene(32, 32, seed=2)
    paths = predict_pair(checkpoint, *save_pair(tmp_path, bg, fg_bg), tmp_path / "out", progress=False)
    depth = np.asarray(read(paths["depth"]))
    metres = decode_depth(depth)
    assert np.array_equal(encode_depth(metres), depth)  # depth.py reads it back to the same levels
    expected = np.clip(reference(checkpoint, small_dataset, bg, fg_bg)["depth"], 0, 1)  # 1 = near = 255
    assert np.abs(depth.astype(np.int16) - np.rint(expected * 255)).max() <= 1


def save_in_mode(rgb: np.ndarray, path: Path, mode: str) -> np.ndarray:
    """Save `rgb` converted to `mode`; returns the RGB that the file should read back as."""
    if mode == "I;16":
        grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint16) * 257  # 0..65535
        Image.fromarray(grey).save(path)
        return np.repeat(np.rint(grey / 257.0).astype(np.uint8)[..., None], 3, axis=2)
    image = Image.fromarray(rgb).convert(mode)
    image.save(path, **({"lossless": True} if path.suffix == ".webp" else {}))
    with Image.open(path) as saved:
        return np.asarray(saved.convert("RGB"))


MODES = [
    ("RGB", ".jpg"),
    ("RGB", ".webp"),
    ("RGBA", ".png"),
    ("L", ".jpg"),
    ("LA", ".png"),
    ("P", ".png"),
    ("CMYK", ".jpg"),
    ("I;16", ".png"),
]


@pytest.mark.parametrize(("mode", "suffix"), MODES, ids=[f"{m}{s}" for m, s in MODES])
def test_every_image_mode_reads_as_its_rgb(checkpoint, tmp_path, mode, suffix):
    bg, fg_bg = scene(48, 64, seed=3)
    files = tmp_path / "bg" / f"a{suffix}", tmp_path / "photo" / f"a{suffix}"
    for path in files:
        path.parent.mkdir()
    as_rgb = [save_in_mode(image, path, mode) for image, path in zip((bg, fg_bg), files, strict=True)]
    with Image.open(files[1]) as check:
        assert check.mode == mode
    got = predict_pair(checkpoint, *files, tmp_path / "out", progress=False)
    want = predict_pair(checkpoint, *save_pair(tmp_path / "rgb", *as_rgb), tmp_path / "want", progress=False)
    for name in OUTPUTS:
        assert np.array_equal(np.asarray(read(got[name])), np.asarray(read(want[name]))), name


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_honoured_on_both_images(checkpoint, tmp_path, orientation):
    bg, fg_bg = scene(64, 48, seed=4)  # upright: 48 wide, 64 high
    stored_turn = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    rotated, upright = [], []
    for name, image in (("bg", bg), ("photo", fg_bg)):
        path = tmp_path / f"{name}.jpg"
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(image).transpose(stored_turn).save(path, exif=exif, quality=95)
        with Image.open(path) as saved:
            assert saved.size == (64, 48)  # stored on its side
            shown = np.asarray(ImageOps.exif_transpose(saved))
        assert shown.shape[:2] == (64, 48)
        rotated.append(path)
        upright.append(shown)
    got = predict_pair(checkpoint, *rotated, tmp_path / "out", progress=False)
    want = predict_pair(checkpoint, *save_pair(tmp_path / "upright", *upright), tmp_path / "want", progress=False)
    for name in OUTPUTS:
        image = read(got[name])
        assert image.size == (48, 64), name
        assert np.array_equal(np.asarray(image), np.asarray(read(want[name]))), name


@pytest.mark.parametrize(("height", "width"), [(333, 517), (1100, 1500)])
def test_odd_and_large_photos_come_back_at_their_size(checkpoint, tmp_path, height, width):
    bg, fg_bg = scene(height, width, seed=5)
    paths = predict_pair(checkpoint, *save_pair(tmp_path, bg, fg_bg, suffix=".jpg"), tmp_path / "out", progress=False)
    assert all(read(path).size == (width, height) for path in paths.values())
    assert set(np.unique(np.asarray(read(paths["mask"])))) <= {0, 255}


def test_the_trained_size_keeps_the_aspect_on_the_stride():
    assert network_shape(1100, 1500, 96, "trained") == (96, 128)
    assert network_shape(517, 333, 64, "trained") == (96, 64)
    assert network_shape(64, 64, 64, "trained") == (64, 64)
    assert network_shape(333, 517, 64, "native") == (336, 528)


def test_folders_are_matched_by_stem(checkpoint, tmp_path):
    for stem, seed in (("b", 6), ("a", 7)):
        bg, fg_bg = scene(32, 32, seed=seed)
        (tmp_path / "bgs").mkdir(exist_ok=True)
        (tmp_path / "photos").mkdir(exist_ok=True)
        Image.fromarray(bg).save(tmp_path / "bgs" / f"{stem}.png")
        Image.fromarray(fg_bg).save(tmp_path / "photos" / f"{stem}.jpg")
    (tmp_path / "photos" / "notes.txt").write_text("not an image: not listed")
    pairs = find_pairs(tmp_path / "bgs", tmp_path / "photos")
    assert [(bg.name, photo.name) for bg, photo in pairs] == [("a.png", "a.jpg"), ("b.png", "b.jpg")]
    code = main(["predict", "--checkpoint", str(checkpoint), "--bg", str(tmp_path / "bgs")]
                + ["--fg-bg", str(tmp_path / "photos"), "--out", str(tmp_path / "out"), "--no-progress"])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{stem}_{name}.png" for stem in "ab" for name in OUTPUTS
    )
    single = predict_pair(checkpoint, *pairs[0], tmp_path / "single", progress=False)
    assert np.array_equal(np.asarray(read(single["prob"])), np.asarray(read(tmp_path / "out" / "a_prob.png")))


def test_a_csv_lists_pairs_relative_to_its_folder(checkpoint, tmp_path):
    bg, fg_bg = scene(32, 48, seed=8)
    save_pair(tmp_path / "lists" / "images", bg, fg_bg, "kitchen")
    (tmp_path / "lists" / "pairs.csv").write_text("bg,fg_bg\nimages/kitchen_bg.png,images/kitchen.png\n")
    written = predict_pairs(checkpoint, find_pairs(pairs_csv=tmp_path / "lists" / "pairs.csv"), tmp_path / "out",
                            progress=False)  # fmt: skip
    assert written[0]["mask"] == tmp_path / "out" / "kitchen_mask.png" and written[0]["mask"].exists()
    (tmp_path / "bad.csv").write_text("background,photo\na.png,b.png\n")
    with pytest.raises(ValueError, match=r"bad\.csv: needs the columns bg,fg_bg"):
        find_pairs(pairs_csv=tmp_path / "bad.csv")


def bad_inputs(folder: Path) -> dict[str, tuple[list[str], str]]:
    """Each bad input: (the predict arguments, the file its error must name)."""
    bg, fg_bg = scene(32, 32)
    good_bg, good = save_pair(folder / "good", bg, fg_bg)
    Image.fromarray(scene(32, 48)[1]).save(folder / "wide.png")
    data = io.BytesIO()
    Image.fromarray(fg_bg).save(data, format="JPEG")
    (folder / "truncated.jpg").write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    data = io.BytesIO()
    Image.fromarray(fg_bg).save(data, format="PNG")
    (folder / "truncated.png").write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("these are notes, not a photo\n")
    Image.new("1", (9000, 8000)).save(folder / "bomb.png")  # 72 MP: above the 64 MP limit, a few kB on disk
    (folder / "bgs").mkdir()
    (folder / "photos").mkdir()
    Image.fromarray(bg).save(folder / "bgs" / "a.png")
    Image.fromarray(fg_bg).save(folder / "photos" / "a.png")
    Image.fromarray(fg_bg).save(folder / "photos" / "lonely.png")

    def pair(photo: Path) -> list[str]:
        return ["--bg", str(good_bg), "--fg-bg", str(photo)]

    return {
        "different sizes": (pair(folder / "wide.png"), "wide.png"),
        "truncated JPEG": (pair(folder / "truncated.jpg"), "truncated.jpg"),
        "truncated PNG": (pair(folder / "truncated.png"), "truncated.png"),
        "empty": (pair(folder / "empty.jpg"), "empty.jpg"),
        "not an image": (pair(folder / "text.jpg"), "text.jpg"),
        "decompression bomb": (pair(folder / "bomb.png"), "bomb.png"),
        "missing file": (pair(folder / "absent.jpg"), "absent.jpg"),
        "missing partner": (["--bg", str(folder / "bgs"), "--fg-bg", str(folder / "photos")], "lonely.png"),
        "bad background": (["--bg", str(folder / "truncated.png"), "--fg-bg", str(good)], "truncated.png"),
    }


BAD = [
    "different sizes",
    "truncated JPEG",
    "truncated PNG",
    "empty",
    "not an image",
    "decompression bomb",
    "missing file",
    "missing partner",
    "bad background",
]


@pytest.mark.parametrize("case", BAD)
def test_a_bad_input_is_one_line_naming_the_file_and_writes_nothing(checkpoint, tmp_path, capsys, case):
    arguments, named = bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    code = main(["predict", "--checkpoint", str(checkpoint), *arguments, "--out", str(out), "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1 and error.startswith("error: ") and named in error, error
    assert "Traceback" not in error
    assert not out.exists() or not any(out.iterdir())


def test_in_a_folder_a_bad_pair_after_good_ones_stops_before_any_output(checkpoint, tmp_path):
    for stem in ("a", "b"):
        save_pair(tmp_path / "in", *scene(32, 32), stem)
    (tmp_path / "in" / "b.png").write_bytes((tmp_path / "in" / "b.png").read_bytes()[:200])  # truncated, listed last
    pairs = [(tmp_path / "in" / f"{s}_bg.png", tmp_path / "in" / f"{s}.png") for s in "ab"]
    with pytest.raises(ValueError, match=r"b\.png: image data is truncated"):
        predict_pairs(checkpoint, pairs, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_the_command_line_exits_non_zero_without_a_traceback(checkpoint, tmp_path):
    """The real process: exit status and stderr as a user sees them."""
    (tmp_path / "empty.png").write_bytes(b"")
    bg = save_pair(tmp_path, *scene(32, 32))[0]
    command = [sys.executable, "-m", "fgbg_utils", "predict", "--checkpoint", str(checkpoint), "--bg", str(bg),
               "--fg-bg", str(tmp_path / "empty.png"), "--out", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'empty.png'}: file is empty (0 bytes); "
                                                "re-download or re-export the file"]  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_predicts_without_its_dataset(checkpoint, tmp_path):
    """The checkpoint carries the normalisation and size it needs: a run moved to another machine predicts."""
    state = torch.load(checkpoint, weights_only=True)
    state["config"]["data"] = str(tmp_path / "gone")
    moved = tmp_path / "moved.pt"
    torch.save(state, moved)
    files = save_pair(tmp_path, *scene(32, 32))
    moved_paths = predict_pair(moved, *files, tmp_path / "moved_out", progress=False)
    paths = predict_pair(checkpoint, *files, tmp_path / "out", progress=False)
    assert np.array_equal(read_png(moved_paths["mask"]), read_png(paths["mask"]))


def test_trained_size_resizes_in_and_back_bilinearly(checkpoint, small_dataset, tmp_path):
    bg, fg_bg = scene(64, 96, seed=9)  # seen at 32 x 48, with area averaging
    paths = predict_pair(checkpoint, *save_pair(tmp_path, bg, fg_bg), tmp_path / "out", progress=False)
    small = [cv2.resize(image, (48, 32), interpolation=cv2.INTER_AREA) for image in (bg, fg_bg)]
    seen = reference(checkpoint, small_dataset, *small)
    prob = F.interpolate(torch.from_numpy(seen["prob"])[None, None], size=(64, 96), mode="bilinear")[0, 0].numpy()
    assert_same_mask(np.asarray(read(paths["mask"])), prob)
    assert np.abs(np.asarray(read(paths["prob"]), dtype=np.int16) - np.rint(prob * 255)).max() <= 1


def test_batches_of_mixed_sizes_give_what_pairs_one_by_one_give(checkpoint, tmp_path):
    pairs = [save_pair(tmp_path / "in", *scene(*shape, seed=i), f"p{i}") for i, shape in
             enumerate([(32, 32), (32, 32), (48, 32), (32, 32)])]  # fmt: skip
    together = predict_pairs(checkpoint, pairs, tmp_path / "together", batch_size=2, progress=False)
    alone = predict_pairs(checkpoint, pairs, tmp_path / "alone", batch_size=1, progress=False)
    for a, b in zip(together, alone, strict=True):  # equal up to float rounding, which batch sizes may change
        for name in ("prob", "depth"):
            difference = np.asarray(read(a[name]), dtype=np.int16) - np.asarray(read(b[name]), dtype=np.int16)
            assert np.abs(difference).max() <= 1, (a[name], name)
        prob = np.asarray(read(b["prob"]))
        differ = np.asarray(read(a["mask"])) != np.asarray(read(b["mask"]))
        assert np.isin(prob[differ], (127, 128)).all()


def test_two_photos_of_one_name_are_refused_before_anything_is_written(checkpoint, tmp_path):
    first = save_pair(tmp_path / "one", *scene(32, 32), "same")
    second = save_pair(tmp_path / "two", *scene(32, 32, seed=1), "same")
    with pytest.raises(ValueError, match=r"two/same\.png: has the same name as .*one/same\.png"):
        predict_pairs(checkpoint, [first, second], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
