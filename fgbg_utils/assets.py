"""Loading and validating the user's own images: backgrounds and transparent foregrounds.

Students bring whatever their phones, browsers and editors produce: rotated JPEGs, CMYK
scans, 16-bit PNGs, paletted GIFs, 100-megapixel photos, half-downloaded files. Everything
here turns such a file into a plain 8-bit RGB or RGBA image, or fails with an `AssetError`
that names the file, says what is wrong and, where possible, what to do about it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
"""File name suffixes (lower case) that `list_images` picks up."""

MAX_PIXELS: int = 64_000_000
"""Decoded pixels allowed per image (after JPEG draft reduction): about 256 MB as RGBA."""

BACKGROUND_FILL = (128, 128, 128)
"""Mid-grey that transparent parts of a background are flattened onto."""

SPECK_FRACTION = 0.0005
"""`key_out_border` drops opaque islands smaller than this fraction of the image area."""

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)
_REEXPORT = "re-download or re-export the file"


class AssetError(ValueError):
    """A user image that cannot be used. str() is one sentence: '<path>: <problem>[; <what to do>]'."""

    def __init__(self, path: Path | str, problem: str, hint: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        self.hint = hint
        super().__init__(f"{self.path}: {problem}" + (f"; {hint}" if hint else ""))


def list_images(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted, so every run sees the same order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AssetError(folder, "folder not found", "check the path")
    images = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not images:
        raise AssetError(folder, "folder holds no images", f"add files ending in {', '.join(sorted(IMAGE_SUFFIXES))}")
    return images


def open_image(path: Path, min_side: int = 0, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode `path` into an upright, fully loaded "RGB" or "RGBA" image.

    `min_side` > 0 lets a huge image be reduced while it is decoded (JPEG DCT scaling) or
    right after (`Image.reduce`), keeping the shorter side >= `min_side`. The pixel count is
    checked against `max_pixels` from the header, before any pixel is decoded.
    """
    path = Path(path)
    _check_file(path)
    with warnings.catch_warnings():
        # Pillow's own bomb warning fires before JPEG draft reduction; `_check_pixels` is the gate.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as source:
                if min_side > 0:
                    source.draft(source.mode, (min_side, min_side))
                _check_pixels(source, path, max_pixels)
                source.load()
                image = _to_rgb_or_rgba(ImageOps.exif_transpose(source))  # a copy: survives the close
        except Image.DecompressionBombError as exc:
            raise AssetError(path, f"too many pixels, possible decompression bomb ({exc})", "downscale it") from exc
        except UnidentifiedImageError as exc:
            raise AssetError(path, "not an image file Pillow can read", "save it as JPEG, PNG or WebP") from exc
        except AssetError:
            raise
        except _DECODE_ERRORS as exc:
            raise AssetError(path, f"image data is truncated or corrupt ({exc})", _REEXPORT) from exc
    factor = min(image.size) // min_side if min_side > 0 else 1
    return image.reduce(factor) if factor >= 2 else image


def _check_file(path: Path) -> None:
    """Fail early with a clear message for the non-image cases Pillow reports cryptically."""
    if not path.exists():
        raise AssetError(path, "file not found", "check the path")
    if not path.is_file():
        raise AssetError(path, "not a file", "pass an image file, not a folder")
    if path.stat().st_size == 0:
        raise AssetError(path, "file is empty (0 bytes)", _REEXPORT)


def _check_pixels(image: Image.Image, path: Path, max_pixels: int) -> None:
    """Refuse, from the header size alone, images whose decoding would exhaust memory."""
    width, height = image.size
    if width * height > max_pixels:
        raise AssetError(
            path,
            f"{width}x{height} pixels exceeds the limit of {max_pixels:,} (possible decompression bomb)",
            "downscale it",
        )


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    """Normalise any Pillow mode to 8-bit "RGB", or "RGBA" when the file carries transparency."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image))).convert("RGB")
    has_alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale 16/32-bit or float samples to 0..255 (Pillow's convert("L") clips them instead).

    Integers within 0..65535 are 16-bit data (v/257, so 65535 -> 255); floats within 0..1 are
    normalised data (v*255); anything else has no agreed range and is stretched from min..max.
    """
    is_float = values.dtype.kind == "f"
    values = np.nan_to_num(values.astype(np.float64))
    low, high = float(values.min()), float(values.max())
    if is_float and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif not is_float and low >= 0.0 and high <= 65535.0:
        scaled = values / 257.0
    else:
        scaled = (values - low) * (255.0 / max(high - low, 1e-12))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def load_background(path: Path, size: int) -> np.ndarray:
    """uint8 (size, size, 3): shorter side resized to `size`, centre-cropped, transparency on mid-grey."""
    image = open_image(path, min_side=size)
    if image.mode == "RGBA":
        grey = Image.new("RGBA", image.size, (*BACKGROUND_FILL, 255))
        image = Image.alpha_composite(grey, image).convert("RGB")
    image = ImageOps.fit(image, (size, size), method=Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8).copy()


def load_foreground(
    path: Path, max_side: int = 448, key_border: bool = False, key_tolerance: float = 24.0
) -> np.ndarray:
    """uint8 (h, w, 4) cropped to the object (alpha > 0), longest side <= `max_side`, never enlarged.

    The full image is decoded (no draft reduction) because the object may fill only a small
    part of it. `key_border` makes an image without transparency usable by keying out its
    uniform border colour (see `key_out_border`).
    """
    path = Path(path)
    image = open_image(path).convert("RGBA")
    alpha = np.asarray(image.getchannel("A"))
    if alpha.min() == 255:
        if not key_border:
            raise AssetError(
                path,
                "foreground has no transparency",
                "use an RGBA PNG/WebP with a transparent background, or pass --key-border to key out"
                " a uniform border colour",
            )
        try:
            alpha = key_out_border(np.asarray(image)[..., :3], key_tolerance)
        except ValueError as exc:
            raise AssetError(path, str(exc), "use an RGBA PNG/WebP with a transparent background") from exc
        image.putalpha(Image.fromarray(alpha))
    box = Image.fromarray(alpha).getbbox()
    if box is None:
        raise AssetError(path, "foreground is fully transparent", "check that the object is not erased")
    return np.asarray(_fit_premultiplied(image.crop(box), max_side), dtype=np.uint8).copy()


def _fit_premultiplied(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink an RGBA image so its longest side is <= `max_side`, never enlarging.

    Resampling premultiplied ("RGBa") colour keeps the colour of fully transparent pixels
    from bleeding into the edge as a dark or coloured fringe.
    """
    scale = max_side / max(image.size)
    if scale >= 1.0:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    premultiplied = image.convert("RGBa").resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return premultiplied.convert("RGBA")


def key_out_border(rgb: np.ndarray, tolerance: float = 24.0) -> np.ndarray:
    """Alpha uint8 (h, w) that removes a uniform backdrop (e.g. white paper) around an object.

    The backdrop colour is the median of the 1-px frame; backdrop pixels are those within
    `tolerance` (Euclidean RGB) of it that are connected to the frame, so backdrop-coloured
    parts inside the object stay opaque; isolated specks are dropped. ValueError if the
    frame is not uniform.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    frame = np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]])
    colour = np.median(frame, axis=0)
    if np.mean(np.linalg.norm(frame - colour, axis=1) > tolerance) > 0.10:
        raise ValueError("border is not a uniform colour")
    near = (np.linalg.norm(rgb - colour, axis=2) <= tolerance).astype(np.uint8)
    _, labels = cv2.connectedComponents(near, connectivity=4)
    frame_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    backdrop = np.isin(labels, frame_labels[frame_labels > 0])
    return _soften_edge(np.where(_drop_specks(~backdrop), 255, 0).astype(np.uint8))


def _drop_specks(opaque: np.ndarray) -> np.ndarray:
    """Remove opaque islands smaller than SPECK_FRACTION of the image.

    JPEG ringing and dust leave isolated pixels beyond the tolerance; kept, they would show as
    dots and stretch the crop box far past the object.
    """
    _, labels, stats, _ = cv2.connectedComponentsWithStats(opaque.astype(np.uint8), connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < SPECK_FRACTION * opaque.size)
    return opaque & ~np.isin(labels, small[small > 0])  # label 0 is the backdrop itself


def _soften_edge(alpha: np.ndarray) -> np.ndarray:
    """Antialias a hard 0/255 matte: object pixels next to the backdrop become partly transparent.

    Taking the minimum with a 3x3 box blur only lowers alpha on the object's outer 1-px rim;
    backdrop pixels stay 0, so no backdrop colour leaks in as a halo.
    """
    blurred = cv2.blur(alpha, (3, 3), borderType=cv2.BORDER_REPLICATE)
    return np.minimum(alpha, blurred)
