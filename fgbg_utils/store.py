"""Storage: image encodings, zip shards, index.csv, the manifest, checksums, atomic writes.

Every file is written under a temporary name in its final folder and renamed when whole, so a
killed job never leaves a half-written file under a real name.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

JPEG_QUALITY = 90
PNG_LEVEL = 1
"""zlib level for masks and depth: level 1 is 3x faster than 6 for 2x the (tiny) size."""
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
"""Fixed member timestamp, so the same samples always give byte-identical shards."""
INDEX_COLUMNS = ("sample", "bg", "fg", "flip", "x", "y", "w", "h", "shard", "fg_bg", "mask", "depth")
MANIFEST_NAME = "data_manifest.json"
INDEX_NAME = "index.csv"
SPLITS_NAME = "splits.json"
SHARD_META = "meta.json"


# --- atomic files -------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: Path, data: dict) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=1) + "\n").encode())


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --- image encodings ----------------------------------------------------------------------


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png_gray(image: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """An 8-bit grayscale PNG (no row filter).

    Written directly because it is several times faster than the general encoders for the
    small, smooth masks and depth maps that make up two thirds of the dataset's files, and
    no row filter compresses them as well as the others do.
    """
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 image, got {image.dtype} {image.shape}")
    h, w = image.shape
    rows = np.zeros((h, w + 1), dtype=np.uint8)  # column 0: filter type 0 (none) for each row
    rows[:, 1:] = image
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
        + _png_chunk(b"IEND", b"")
    )


def decode_image(data: bytes, name: str, channels: int) -> np.ndarray:
    """Decode JPEG/PNG bytes to uint8 RGB (channels=3) or grayscale (channels=1).

    Raises ValueError naming `name` when the bytes are not a whole image.
    """
    flag = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if image is None:
        raise ValueError(f"{name}: not a decodable image (corrupt or truncated)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if channels == 3 else image


def write_png(path: Path, image: np.ndarray) -> None:
    """Atomic lossless PNG of an RGB, RGBA or grayscale uint8 array."""
    if image.ndim == 2:
        data = encode_png_gray(image, level=6)
    else:
        code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
        ok, buf = cv2.imencode(".png", cv2.cvtColor(image, code), [cv2.IMWRITE_PNG_COMPRESSION, 6])
        if not ok:
            raise RuntimeError(f"PNG encoding failed for {path}")
        data = buf.tobytes()
    write_bytes_atomic(path, data)


def read_png(path: Path) -> np.ndarray:
    """A PNG written by `write_png`, as RGB, RGBA or grayscale uint8."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: missing or not a readable PNG")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
    return image


# --- shards -------------------------------------------------------------------------------


def shard_name(bg: int) -> str:
    return f"shard_{bg:03d}.zip"


def member_names(sample: int) -> tuple[str, str, str]:
    """Zip member names of one sample: (fg_bg, mask, depth)."""
    stem = f"{sample:07d}"
    return f"fg_bg/{stem}.jpg", f"mask/{stem}.png", f"depth/{stem}.png"


class ShardWriter:
    """Writes one zip shard under a temporary name; `close` renames it into place.

    Members are stored uncompressed (JPEG and PNG are compressed already) with fixed
    timestamps, so equal contents give byte-identical shards.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._atomic = atomic_path(self.path)
        self.tmp = self._atomic.__enter__()
        self.zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED)

    def add(self, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
        info.external_attr = 0o644 << 16
        self.zip.writestr(info, data)

    def close(self, meta: dict) -> str:
        """Write the shard's meta.json member last, rename into place, return its sha256."""
        self.add(SHARD_META, json.dumps(meta, sort_keys=True).encode())
        self.zip.close()
        digest = sha256_file(self.tmp)
        self._atomic.__exit__(None, None, None)
        return digest

    def abort(self) -> None:
        self.zip.close()
        self._atomic.__exit__(RuntimeError, None, None)


def read_shard_meta(path: Path) -> dict:
    """The meta.json of a finished shard; ValueError naming the shard if it is not whole."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(SHARD_META))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as error:
        raise ValueError(f"{path}: not a complete shard ({error})") from error


# --- index.csv ----------------------------------------------------------------------------


def write_index(path: Path, rows: Iterable[Iterable]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INDEX_COLUMNS)
        writer.writerows(rows)


def read_index(path: Path) -> list[dict]:
    """index.csv as a list of dicts, integer columns as int."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != INDEX_COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames} are not {list(INDEX_COLUMNS)}")
        text_columns = {"shard", "fg_bg", "mask", "depth"}
        try:
            return [{k: (v if k in text_columns else int(v)) for k, v in row.items()} for row in reader]
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: row {reader.line_num - 1} is not an index row ({error})") from None


def remove_partials(root: Path) -> None:
    """Delete the temporary files that killed writes left anywhere under `root`."""
    for stale in Path(root).rglob(".*.partial-*"):
        if stale.is_file():
            stale.unlink(missing_ok=True)


def read_sample(root: Path, row: dict) -> dict[str, np.ndarray]:
    """One sample's images as uint8 arrays: fg_bg (HxWx3), mask and depth (HxW), from its shard."""
    path = Path(root) / row["shard"]
    with zipfile.ZipFile(path) as archive:
        return {
            "fg_bg": decode_image(archive.read(row["fg_bg"]), f"{path}:{row['fg_bg']}", 3),
            "mask": decode_image(archive.read(row["mask"]), f"{path}:{row['mask']}", 1),
            "depth": decode_image(archive.read(row["depth"]), f"{path}:{row['depth']}", 1),
        }
