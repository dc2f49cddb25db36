"""Tests for fgbg_utils.assets: every image the user may bring either loads correctly or fails clearly."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fgbg_utils.assets import (
    IMAGE_SUFFIXES,
    AssetError,
    key_out_border,
    list_images,
    load_background,
    load_foreground,
    open_image,
)

RED = (200, 30, 40)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Incompressible RGB, so that cutting a file in half cuts into the pixel data."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _disc(size: int, radius: float, centre: tuple[float, float] | None = None) -> np.ndarray:
    """Boolean (size, size) mask of a disc."""
    cy, cx = centre if centre is not None else ((size - 1) / 2, (size - 1) / 2)
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


# --- modes and pixel values -------------------------------------------------------------


def test_rgb_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.new("RGB", (32, 32), RED).save(path, quality=95)
    image = open_image(path)
    assert image.mode == "RGB"
    assert np.abs(_pixels(image)[16, 16] - RED).max() <= 4


def test_rgb_png(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (8, 8), RED).save(path)
    image = open_image(path)
    assert image.mode == "RGB"
    assert tuple(_pixels(image)[3, 3]) == RED


def test_rgba_png(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGBA", (8, 8), (*RED, 77)).save(path)
    image = open_image(path)
    assert image.mode == "RGBA"
    assert tuple(_pixels(image)[3, 3]) == (*RED, 77)


def test_grayscale_png(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("L", (8, 8), 77).save(path)
    image = open_image(path)
    assert image.mode == "RGB"
    assert tuple(_pixels(image)[3, 3]) == (77, 77, 77)


def test_grayscale_alpha_png(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("LA", (8, 8), (77, 100)).save(path)
    image = open_image(path)
    assert image.mode == "RGBA"
    assert tuple(_pixels(image)[3, 3]) == (77, 77, 77, 100)


def _paletted(path: Path, **save_args: object) -> None:
    """4x4 paletted image: index 0 (blue) on the left half, index 1 (RED) on the right half."""
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 255, *RED] + [0, 0, 0] * 254)
    image.paste(1, (2, 0, 4, 4))
    image.save(path, **save_args)


def test_paletted_png_with_transparency(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    _paletted(path, transparency=0)
    assert "transparency" in Image.open(path).info  # the file really carries tRNS
    image = open_image(path)
    assert image.mode == "RGBA"
    assert _pixels(image)[1, 0, 3] == 0
    assert tuple(_pixels(image)[1, 3]) == (*RED, 255)


def test_paletted_png_without_transparency(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    _paletted(path)
    image = open_image(path)
    assert image.mode == "RGB"
    assert tuple(_pixels(image)[1, 0]) == (0, 0, 255)
    assert tuple(_pixels(image)[1, 3]) == RED


def test_rgb_png_with_transparent_colour(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    array = np.zeros((4, 4, 3), np.uint8)
    array[:, 2:] = RED
    Image.fromarray(array).save(path, transparency=(0, 0, 0))
    image = open_image(path)
    assert image.mode == "RGBA"
    assert _pixels(image)[0, 0, 3] == 0
    assert tuple(_pixels(image)[0, 3]) == (*RED, 255)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    assert Image.open(path).mode == "CMYK"
    image = open_image(path)
    assert image.mode == "RGB"
    assert np.abs(_pixels(image)[8, 8] - (255, 0, 0)).max() <= 4


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    values = np.array([[0, 300, 1000, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    image = open_image(path)
    assert image.mode == "RGB"
    assert _pixels(image)[0, :, 0].tolist() == [0, 1, 4, 128, 255]  # clipping would give 255 from 300 on


def test_16bit_rgb_png(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    bgr = np.zeros((4, 4, 3), np.uint16)
    bgr[..., 2], bgr[..., 1], bgr[..., 0] = 65535, 32896, 1000  # R, G, B in cv2's BGR order
    assert cv2.imwrite(str(path), bgr)
    image = open_image(path)
    assert image.mode == "RGB"
    assert tuple(_pixels(image)[2, 2]) == (255, 128, 3)  # high byte of each sample


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([[0, 1000, 65535]], dtype=np.int32), [0, 4, 255]),  # 32-bit int holding 16-bit data
        (np.array([[0.0, 0.5, 1.0]], dtype=np.float32), [0, 128, 255]),  # normalised float
        (np.array([[-10.0, 0.0, 10.0]], dtype=np.float32), [0, 128, 255]),  # no agreed range: stretched
    ],
)
def test_32bit_tiff(tmp_path: Path, array: np.ndarray, expected: list[int]) -> None:
    path = tmp_path / "a.tif"
    Image.fromarray(array).save(path)
    assert Image.open(path).mode in ("I", "F")
    image = open_image(path)
    assert image.mode == "RGB"
    assert _pixels(image)[0, :, 0].tolist() == expected


def test_webp_with_alpha(tmp_path: Path) -> None:
    path = tmp_path / "a.webp"
    array = np.zeros((8, 8, 4), np.uint8)
    array[:, 4:] = (*RED, 255)
    Image.fromarray(array).save(path, lossless=True)
    image = open_image(path)
    assert image.mode == "RGBA"
    assert _pixels(image)[4, 0, 3] == 0
    assert tuple(_pixels(image)[4, 6]) == (*RED, 255)


def test_animated_gif_uses_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "a.gif"
    frames = [Image.new("RGB", (8, 8), colour) for colour in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(path).n_frames == 2
    assert tuple(_pixels(open_image(path))[4, 4]) == (255, 0, 0)


@pytest.mark.parametrize(("orientation", "corner"), [(6, (0, -1)), (3, (-1, -1)), (8, (-1, 0))])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, corner: tuple[int, int]) -> None:
    array = np.full((40, 60, 3), 255, np.uint8)
    array[:10, :10] = (255, 0, 0)  # marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "a.jpg"
    Image.fromarray(array).save(path, exif=exif, quality=95)
    image = _pixels(open_image(path))
    assert image.shape[:2] == ((40, 60) if orientation == 3 else (60, 40))
    y, x = corner
    assert np.abs(image[y, x] - (255, 0, 0)).max() < 40  # the marker moved to the displayed corner
    assert image[0, 0].min() > 200  # and left the top-left one


# --- huge images and decompression bombs ------------------------------------------------


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    array = np.zeros((4000, 6000, 3), np.uint8)
    array[..., 0] = np.linspace(0, 255, 6000, dtype=np.uint8)
    Image.fromarray(array).save(path, quality=80)
    return path


def test_huge_jpeg_is_reduced_on_load(huge_jpeg: Path) -> None:
    image = open_image(huge_jpeg, min_side=224)
    assert image.width <= 750  # DCT-scaled by 8 while decoding (and maybe reduced further)
    assert min(image.size) >= 224
    assert image.width / image.height == pytest.approx(1.5, rel=0.01)


def test_huge_jpeg_counts_pixels_after_draft(huge_jpeg: Path) -> None:
    with pytest.raises(AssetError, match="decompression bomb"):
        open_image(huge_jpeg, max_pixels=1_000_000)
    assert min(open_image(huge_jpeg, min_side=224, max_pixels=1_000_000).size) >= 224


def test_huge_jpeg_background(huge_jpeg: Path) -> None:
    background = load_background(huge_jpeg, 224)
    assert background.shape == (224, 224, 3) and background.dtype == np.uint8
    red = background[112, :, 0].astype(int)
    assert red[0] < red[-1] and 60 < red[112] < 200  # centre crop of the left-to-right ramp


def test_large_png_is_reduced_after_load(tmp_path: Path) -> None:
    path = tmp_path / "large.png"
    Image.new("RGB", (2000, 1000), RED).save(path)
    image = open_image(path, min_side=224)
    assert image.size == (500, 250)  # reduce(4): the largest factor keeping the shorter side >= 224
    assert tuple(_pixels(image)[100, 100]) == RED
    assert open_image(path).size == (2000, 1000)  # no min_side: full resolution


def _png_claiming_size(path: Path, width: int, height: int) -> None:
    """A tiny valid PNG whose IHDR then gets patched to claim `width` x `height` pixels."""
    Image.new("1", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 12  # 8-byte signature + 4-byte chunk length; then b"IHDR" and its 13 data bytes
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("side", [9_000, 100_000])  # below and far above Pillow's own limit
def test_decompression_bomb_is_refused_from_header(tmp_path: Path, side: int) -> None:
    path = tmp_path / "bomb.png"
    _png_claiming_size(path, side, side)
    # Decoding would fail as truncated; "decompression bomb" proves the header check came first.
    with pytest.raises(AssetError, match="decompression bomb") as caught:
        open_image(path)
    assert caught.value.path == path


# --- broken files -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cut.jpg", "cut.png"])
def test_truncated_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    Image.fromarray(_noise(64, 64)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AssetError, match="truncated") as caught:
        open_image(path)
    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "empty"), (b"these are not the pixels you are looking for\n", "not an image"), (None, "not found")],
)
def test_unusable_file(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "x.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AssetError) as caught:
        open_image(path)
    message = str(caught.value)
    assert "x.jpg" in message and problem in message
    assert caught.value.path == path and problem in caught.value.problem


def test_error_message_shape() -> None:
    assert str(AssetError(Path("a/b.png"), "it is broken", "fix it")) == "a/b.png: it is broken; fix it"
    assert str(AssetError(Path("a/b.png"), "it is broken")) == "a/b.png: it is broken"


# --- backgrounds ------------------------------------------------------------------------


def test_background_is_centre_cropped(tmp_path: Path) -> None:
    array = np.zeros((100, 300, 3), np.uint8)
    array[:, 100:200] = RED  # the middle third: exactly what a centre crop keeps
    path = tmp_path / "wide.png"
    Image.fromarray(array).save(path)
    background = load_background(path, 50)
    assert background.shape == (50, 50, 3)
    assert np.abs(background[2:-2, 2:-2].astype(int) - RED).max() <= 2


def test_background_transparency_becomes_grey(tmp_path: Path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (64, 64), (255, 0, 0, 0)).save(path)
    assert np.all(load_background(path, 32) == 128)


# --- foregrounds ------------------------------------------------------------------------


def test_foreground_without_transparency_asks_for_key_border(tmp_path: Path) -> None:
    for name, mode in [("rgb.png", "RGB"), ("opaque.png", "RGBA")]:
        path = tmp_path / name
        Image.new(mode, (16, 16), RED).save(path)
        with pytest.raises(AssetError, match="--key-border") as caught:
            load_foreground(path)
        assert "no transparency" in str(caught.value)


def test_fully_transparent_foreground(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    Image.new("RGBA", (16, 16), (*RED, 0)).save(path)
    with pytest.raises(AssetError, match="fully transparent"):
        load_foreground(path)


def test_foreground_is_cropped_and_never_enlarged(tmp_path: Path) -> None:
    array = np.zeros((100, 100, 4), np.uint8)
    array[20:50, 10:70] = (*RED, 255)
    path = tmp_path / "fg.png"
    Image.fromarray(array).save(path)
    foreground = load_foreground(path, max_side=448)
    assert foreground.shape == (30, 60, 4)
    assert np.all(foreground == (*RED, 255))
    assert load_foreground(path, max_side=30).shape == (15, 30, 4)


def _disc_on_white(size: int = 120) -> np.ndarray:
    """A red disc on white with a white hole inside the disc (not touching the border)."""
    array = np.full((size, size, 3), 255, np.uint8)
    array[_disc(size, 45)] = (220, 0, 0)
    array[_disc(size, 8, centre=(60, 85))] = 255  # the hole, right of the centre
    return array


def test_key_out_border_keeps_inner_white() -> None:
    alpha = key_out_border(_disc_on_white())
    assert alpha.dtype == np.uint8 and alpha.shape == (120, 120)
    assert alpha[0, 0] == alpha[-1, -1] == alpha[0, -1] == alpha[-1, 0] == 0
    assert alpha[60, 60] == 255  # the disc
    assert alpha[60, 85] == 255  # the white hole, not connected to the border
    specked = _disc_on_white()
    specked[5, 5] = specked[100, 110:112] = 0  # dust: islands far smaller than the object
    assert np.array_equal(key_out_border(specked), alpha)
    edge = alpha[60, :20]  # from the left border into the disc (edge near x = 15)
    assert np.any((edge > 0) & (edge < 255))  # antialiased rim
    assert np.all(edge[:10] == 0)


def test_foreground_key_border(tmp_path: Path) -> None:
    path = tmp_path / "disc.jpg"
    Image.fromarray(_disc_on_white()).save(path, quality=75)  # ringing specks around the disc
    foreground = load_foreground(path, key_border=True)
    height, width = foreground.shape[:2]
    assert 88 <= height <= 94 and 88 <= width <= 94  # cropped to the disc
    alpha = foreground[..., 3]
    assert alpha[0, 0] == alpha[-1, -1] == 0
    assert alpha[height // 2, width // 2] == 255
    assert np.abs(foreground[height // 2, width // 2, :3].astype(int) - (220, 0, 0)).max() <= 12


def test_foreground_key_border_rejects_busy_border(tmp_path: Path) -> None:
    array = _disc_on_white()
    array[:, :60] = 0  # left half black, right half white: no single border colour
    path = tmp_path / "busy.png"
    Image.fromarray(array).save(path)
    with pytest.raises(AssetError, match="border is not a uniform colour"):
        load_foreground(path, key_border=True)


def test_foreground_resize_is_premultiplied(tmp_path: Path) -> None:
    array = np.zeros((400, 400, 4), np.uint8)
    array[..., 1] = 255  # fully transparent GREEN around the object
    array[_disc(400, 181)] = (255, 0, 0, 255)
    path = tmp_path / "disc.png"
    Image.fromarray(array).save(path)
    foreground = load_foreground(path, max_side=91)  # about 4x smaller
    assert max(foreground.shape[:2]) == 91
    alpha = foreground[..., 3]
    edge = (alpha > 0) & (alpha < 255)
    assert edge.sum() > 20  # there is a soft edge to check
    assert foreground[..., 1][alpha > 0].max() <= 8  # no green fringe


# --- listing ------------------------------------------------------------------------------


def test_list_images(tmp_path: Path) -> None:
    for name in ["b.png", "a.jpg", "C.JPEG", ".hidden.png", "notes.txt", "d.webp"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["C.JPEG", "a.jpg", "b.png", "d.webp"]


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="not found"):
        list_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(AssetError, match="no images"):
        list_images(tmp_path)


def test_image_suffixes() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"} == IMAGE_SUFFIXES
