"""Pure pieces of the builder against hand-computed cases and independent decoders."""

import io
import json
import math
import zipfile

import numpy as np
import pytest
from PIL import Image

from fgbg_utils.compose import MASK_THRESHOLD, Box, compose, prepare_foreground, sample_box
from fgbg_utils.depth import FAR_M, NEAR_M, GroundCamera, MidasDepth, decode_depth, encode_depth, paste_depth
from fgbg_utils.stats import ChannelHistogram
from fgbg_utils.store import ShardWriter, atomic_path, encode_png_gray, read_shard_meta


def test_depth_encoding_end_points_and_round_trip():
    assert encode_depth(NEAR_M) == 255 and encode_depth(FAR_M) == 0
    assert encode_depth(0.5) == 255 and encode_depth(1e6) == 0  # clipped
    # halfway in inverse depth: 1/d = (1/2 + 1/100) / 2 -> d = 3.9216 m -> 127.5 -> 128 (rint of x.5 is even: 128)
    assert encode_depth(1 / ((1 / NEAR_M + 1 / FAR_M) / 2)) == 128
    metres = np.array([2.5, 5.0, 10.0, 40.0])
    back = decode_depth(encode_depth(metres))
    step = 1 / 255 * (1 / NEAR_M - 1 / FAR_M)  # one level in inverse depth
    assert np.all(np.abs(1 / back - 1 / metres) <= step / 2 + 1e-12)


def test_ground_camera_rows():
    camera = GroundCamera(horizon=0.5, height_m=1.6, focal=1.0)
    # row 149 of 200: centre 149.5, 49.5 px below the horizon at 100 -> d = 200 * 1.6 / 49.5
    assert camera.row_depth(149, 200) == pytest.approx(200 * 1.6 / 49.5)
    assert camera.row_depth(99, 200) == FAR_M  # above the horizon: sky
    depth = camera.ground_depth(200)
    assert depth.shape == (200, 200) and np.all(np.diff(depth[100:, 0]) <= 0)  # nearer towards the bottom
    assert np.all(np.diff(depth[110:, 0]) < 0)  # strictly, once below the far-plane clip
    assert camera.pixel_height(149, 200, relative_height=1.0) == pytest.approx(49.5)


def test_sample_box_is_inside_the_frame_and_follows_perspective():
    camera = GroundCamera(horizon=0.4)
    rng = np.random.default_rng(0)
    boxes = [sample_box(rng, (100, 50), 0.9, camera, 224) for _ in range(2000)]
    for box in boxes:
        assert box.x >= 0 and box.y >= 0 and box.x + box.w <= 224 and box.y + box.h <= 224
        assert box.h >= 0.1 * 224 - 1
        expected = min(camera.pixel_height(box.foot_row, 224, 0.9), box.foot_row + 1)
        assert abs(box.h - expected) <= 0.5 + 1e-9
        assert abs(box.w - box.h / 2) <= 1  # aspect ratio kept
    feet = np.array([b.foot_row for b in boxes])
    heights = np.array([b.h for b in boxes])
    assert np.corrcoef(feet, heights)[0, 1] > 0.99  # lower = larger
    assert feet.min() < 130 and feet.max() == 223  # the whole ground band is used


def test_compose_blends_with_alpha_and_thresholds_the_mask():
    bg = np.full((10, 10, 3), 100, np.uint8)
    fg = np.zeros((4, 4, 4), np.uint8)
    fg[..., :3] = (200, 0, 50)
    fg[..., 3] = [[255, 255, 128, 127]] * 4  # opaque, opaque, just above and just below half
    fg_bg, mask = compose(bg, prepare_foreground(fg), Box(x=3, y=2, w=4, h=4))
    assert MASK_THRESHOLD == 0.5
    np.testing.assert_array_equal(fg_bg[2, 3], [200, 0, 50])
    a = 128 / 255  # 100 * (1 - a) + 200 * a = 150.196 -> 150
    np.testing.assert_array_equal(fg_bg[2, 5], np.floor(100 * (1 - a) + np.array([200, 0, 50]) * a + 0.5))
    assert mask[2:6, 3:6].min() == 255 and mask[2:6, 6].max() == 0
    assert mask.sum() == 255 * 12 and fg_bg[0:2].max() == 100 and np.all(fg_bg[:, :3] == 100)


def test_flip_mirrors_the_foreground():
    fg = np.zeros((8, 8, 4), np.uint8)
    fg[:, :2] = (255, 0, 0, 255)  # opaque red on the left only
    bg = np.zeros((8, 8, 3), np.uint8)
    _, plain = compose(bg, prepare_foreground(fg), Box(0, 0, 8, 8))
    _, flipped = compose(bg, prepare_foreground(fg, flip=True), Box(0, 0, 8, 8))
    assert plain[:, :2].all() and not plain[:, 2:].any()
    np.testing.assert_array_equal(flipped, plain[:, ::-1])


def test_paste_depth_uses_the_foot_row():
    camera = GroundCamera(horizon=0.5)
    bg_depth = encode_depth(camera.ground_depth(64))
    mask = np.zeros((64, 64), np.uint8)
    mask[40:50, 10:20] = 255
    depth = paste_depth(bg_depth, mask, (10, 40, 10, 10), camera)
    assert np.all(depth[40:50, 10:20] == bg_depth[49, 0])  # the ground row it stands on
    assert np.array_equal(depth[mask == 0], bg_depth[mask == 0])


@pytest.mark.parametrize("level", [1, 6])
def test_png_encoder_decodes_identically_with_pillow(level):
    rng = np.random.default_rng(level)
    image = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    decoded = Image.open(io.BytesIO(encode_png_gray(image, level)))
    assert decoded.mode == "L" and decoded.size == (53, 37)
    np.testing.assert_array_equal(np.asarray(decoded), image)


def test_histogram_statistics_match_numpy_and_merge_exactly():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8) for i in range(5)]
    whole, parts = ChannelHistogram(3), [ChannelHistogram(3), ChannelHistogram(3)]
    for i, image in enumerate(images):
        whole.add(image)
        parts[i % 2].add(image)
    parts[0].merge(parts[1])
    assert np.array_equal(parts[0].counts, whole.counts)
    pixels = np.concatenate([im.reshape(-1, 3) for im in images]).astype(np.float64) / 255
    mean, std = whole.mean_std()
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-12)
    box = images[0][3:9, 4:10]
    whole.add(box, sign=-1)
    whole.add(box)
    assert np.array_equal(parts[0].counts, whole.counts)


def test_histogram_hand_case():
    hist = ChannelHistogram(1)
    hist.add(np.array([[0, 255], [255, 255]], np.uint8))
    (mean,), (std,) = hist.mean_std()
    assert mean == 0.75 and std == pytest.approx(math.sqrt(0.75 * 0.25))


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_shard_writer_is_deterministic_and_atomic(tmp_path):
    digests = []
    for name in ("a.zip", "b.zip"):
        writer = ShardWriter(tmp_path / name)
        assert not (tmp_path / name).exists(), "no file under the real name until it is whole"
        writer.add("mask/0000000.png", b"png bytes")
        digests.append(writer.close({"samples": 1}))
    assert digests[0] == digests[1]
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert read_shard_meta(tmp_path / "a.zip") == {"samples": 1}
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert archive.getinfo("mask/0000000.png").compress_type == zipfile.ZIP_STORED
    (tmp_path / "cut.zip").write_bytes((tmp_path / "a.zip").read_bytes()[:-30])
    with pytest.raises(ValueError, match="cut.zip"):
        read_shard_meta(tmp_path / "cut.zip")


HUBCONF = '''
import torch

dependencies = ["torch"]


class _Tiny(torch.nn.Module):
    """Stand-in for MiDaS small: inverse depth rises with the image row (and with brightness)."""

    def forward(self, x):
        rows = torch.linspace(0, 1, x.shape[-2], device=x.device).view(1, -1, 1)
        return rows.expand(x.shape[0], -1, x.shape[-1]) + 0.1 * x.mean(dim=1)


def MiDaS_small(pretrained=True, **kwargs):
    return _Tiny()
'''


def test_midas_source_through_torch_hub_with_a_local_stand_in(tmp_path):
    """The real torch.hub code path, pointed at a local hubconf.py instead of GitHub."""
    (tmp_path / "hubconf.py").write_text(HUBCONF)
    source = MidasDepth(repo_or_dir=str(tmp_path), source="local", device="cpu", batch_size=3)
    bg = np.full((32, 32, 3), 100, np.uint8)
    encoded_bg = source.background(bg, GroundCamera(), None)
    assert encoded_bg.dtype == np.uint8 and encoded_bg.shape == (32, 32)
    assert encoded_bg[-1].mean() > encoded_bg[0].mean() + 200  # bottom near (bright), top far
    composites = [bg.copy() for _ in range(5)]
    composites[0][10:20, 10:20] = 255  # a bright pasted object reads nearer than the background there
    depths = source.composites(composites, [None] * 5, [None] * 5, bg, encoded_bg, GroundCamera())
    assert len(depths) == 5
    np.testing.assert_array_equal(depths[1], encoded_bg)  # same scale for every composite of one background
    assert depths[0][12:18, 12:18].mean() > encoded_bg[12:18, 12:18].mean()
    assert json.dumps(source.describe())  # serialisable into the manifest


def test_midas_is_loaded_from_a_pinned_release():
    """By default torch.hub gets one tagged release, recorded in the manifest, not the moving default branch."""
    from torch import nn

    calls = []

    def loader(repo, model, **options):
        calls.append((repo, model, options))
        return nn.Identity()

    source = MidasDepth(device="cpu", loader=loader)
    assert calls == [("intel-isl/MiDaS:v3_1", "MiDaS_small", {"source": "github", "trust_repo": True})]
    assert source.describe()["repo"] == "intel-isl/MiDaS:v3_1"


def test_worker_pools_start_from_forkserver_or_spawn_where_there_is_none(monkeypatch):
    import multiprocessing

    from fgbg_utils.runtime import worker_context

    assert worker_context().get_start_method() == "forkserver"
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])  # as on Windows
    assert worker_context().get_start_method() == "spawn"
