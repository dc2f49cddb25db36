"""A trained checkpoint applied to your own image pairs: a background and the same scene with an object.

`predict_pairs` (and `python -m fgbg_utils predict`) reads each pair with `fgbg_utils.assets.open_image`
(any mode Pillow opens, EXIF orientation applied, decompression bombs refused), runs the network and
writes, at the photo's own displayed size and named by its stem: ``STEM_mask.png`` (0/255),
``STEM_prob.png`` (the mask probability x 255), ``STEM_depth.png`` (the kit's 8-bit inverse depth,
`fgbg_utils.depth.encode_depth`'s encoding), ``STEM_depth_color.png`` and ``STEM_overlay.png``.

What the network sees (``at``):

* ``trained`` (the default): the pair resized so its shorter side is the checkpoint's last training
  size S, the longer side in proportion (a multiple of 16). Training showed the network scenes whose
  shorter side spans S pixels; its receptive field, its horizon and ground search and the object sizes
  it learnt are all in those pixels. Shrinking uses area averaging (it also averages away sensor and
  JPEG noise that differs between two shots), enlarging is bilinear. The probability and depth are
  resized back bilinearly to the photo's size, and the mask is thresholded after (p > 0.5).
* ``native``: the whole photo at its own size, padded with black (the border training's shifts
  uncover) to a multiple of 16 and cropped back. Fully convolutional, so it runs, but at 10x the
  trained scale each object covers far more than the network ever saw: use it only on photos close to
  the trained size, or to see that effect.

The background is used as it is. The training loader re-encodes a kit-built dataset's background with
the builder's own JPEG codec so that ``fg_bg - bg`` is exactly 0 away from the object (see
`fgbg_utils.data`); your two photos each went through their own camera's codec already, and another
encoding of one of them would add a difference, not remove one.

Every input is opened and checked (sizes, decodability, partners) before anything is written, and
each output file is written atomically: a bad input leaves nothing half-written.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from .assets import BACKGROUND_FILL, AssetError, list_images, open_image
from .checkpoints import load_checkpoint
from .evaluate import check_outputs, evaluation_size, load_model
from .runtime import choose_device
from .store import write_png
from .transforms import BatchNormaliser
from .viz import overlay_mask

AT_CHOICES = ("trained", "native")
STRIDE = 16
"""Every registered network needs a height and width divisible by this (four stride-2 steps)."""
OUTPUTS = ("mask", "prob", "depth", "depth_color", "overlay")
"""The files written per pair, as ``STEM_<name>.png``."""
DEPTH_COLORMAP = "magma"


def predict_batch(model: torch.nn.Module, bg: torch.Tensor, fg_bg: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model's mask probability and depth (each Bx1xHxW float32, depth 0..1 with 1 = near) for
    normalised bg and fg_bg batches: the one call that prediction, the browser and notebook 08 share."""
    with torch.no_grad():
        outputs = model(bg, fg_bg)
    return {"mask_prob": torch.sigmoid(outputs["mask"].float()), "depth": outputs["depth"].float()}


@dataclass
class PairPrediction:
    """One pair's outputs at the photo's size: ``fg_bg`` uint8 HxWx3, ``prob`` and ``depth`` float32 HxW
    (0..1). The images written to disk are `images()`."""

    fg_bg: np.ndarray
    prob: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """uint8 HxW: 255 where the probability is above 0.5, else 0."""
        return np.where(self.prob > 0.5, 255, 0).astype(np.uint8)

    @property
    def depth_encoded(self) -> np.ndarray:
        """uint8 HxW inverse depth, 255 at the near plane and 0 at the far one (`fgbg_utils.depth`)."""
        return quantise(self.depth)

    def images(self) -> dict[str, np.ndarray]:
        """The five output images by name (`OUTPUTS`), uint8."""
        depth = self.depth_encoded
        return {
            "mask": self.mask,
            "prob": quantise(self.prob),
            "depth": depth,
            "depth_color": colorize_depth(depth),
            "overlay": overlay_mask(self.fg_bg, self.prob > 0.5),
        }

    def save(self, out: Path, stem: str) -> dict[str, Path]:
        """Write `images()` into `out` as ``STEM_<name>.png``, each atomically; returns the paths."""
        paths = {name: Path(out) / f"{stem}_{name}.png" for name in OUTPUTS}
        for name, image in self.images().items():
            write_png(paths[name], image)
        return paths


def quantise(values: np.ndarray) -> np.ndarray:
    """0..1 floats to uint8 0..255 (rounded; out-of-range values clipped)."""
    return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def colorize_depth(encoded: np.ndarray, colormap: str = DEPTH_COLORMAP) -> np.ndarray:
    """uint8 HxWx3 colours of an encoded depth map (bright = near), through a 256-entry lookup table."""
    table = (matplotlib.colormaps[colormap](np.arange(256) / 255.0)[:, :3] * 255.0).round().astype(np.uint8)
    return table[encoded]


def network_shape(height: int, width: int, size: int, at: str) -> tuple[int, int]:
    """(height, width) the network sees for a `height` x `width` photo: see the module's doc."""
    if at == "native":
        return -(-height // STRIDE) * STRIDE, -(-width // STRIDE) * STRIDE
    if at != "trained":
        raise ValueError(f"at must be one of {', '.join(AT_CHOICES)}, not {at!r}")
    scale = max(STRIDE, round(size / STRIDE) * STRIDE) / min(height, width)
    return tuple(max(STRIDE, round(side * scale / STRIDE) * STRIDE) for side in (height, width))


def to_rgb(image: Image.Image) -> np.ndarray:
    """uint8 HxWx3 of an "RGB" or "RGBA" image, transparency flattened onto the kit's mid-grey."""
    if image.mode == "RGBA":
        grey = Image.new("RGBA", image.size, (*BACKGROUND_FILL, 255))
        image = Image.alpha_composite(grey, image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def load_pair(bg: Path, fg_bg: Path) -> tuple[np.ndarray, np.ndarray]:
    """Both images upright as uint8 RGB; an `AssetError` naming the file when one is unusable or the
    two differ in their displayed size."""
    bg_image, photo = (to_rgb(open_image(Path(path))) for path in (bg, fg_bg))
    if bg_image.shape != photo.shape:
        (ph, pw), (bh, bw) = photo.shape[:2], bg_image.shape[:2]
        raise AssetError(
            fg_bg,
            f"{pw}x{ph} pixels as displayed, but its background {bg} is {bw}x{bh}",
            "pass a background of the same frame (same size and orientation)",
        )
    return bg_image, photo


class Predictor:
    """A checkpoint's network in eval mode on `device`, with the normalisation of the dataset it was
    trained on and the size it was trained at. Call `predict` on arrays, or `predict_pairs` on files."""

    def __init__(self, checkpoint: str | Path, device: str | None = None):
        self.checkpoint = Path(checkpoint)
        self.device = choose_device(device)
        state = load_checkpoint(self.checkpoint, map_location=self.device)
        self.size = evaluation_size(state["config"], state["dataset"]["parameters"]["size"])
        self.normaliser = BatchNormaliser(state["statistics"]).to(self.device)
        self.model = load_model(state, self.device, self.checkpoint)

    def predict(
        self, pairs: Iterable[tuple[np.ndarray, np.ndarray]], at: str = "trained", batch_size: int = 8
    ) -> Iterator[PairPrediction]:
        """A `PairPrediction` per (bg, fg_bg) uint8 HxWx3 pair, in order; consecutive pairs that the
        network sees at the same shape go through it together, up to `batch_size` at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        waiting: list[tuple[np.ndarray, np.ndarray]] = []
        for bg, fg_bg in pairs:
            if waiting and (len(waiting) == batch_size or bg.shape != waiting[0][0].shape):
                yield from self._run(waiting, at)
                waiting = []
            waiting.append((bg, fg_bg))
        if waiting:
            yield from self._run(waiting, at)

    def _run(self, pairs: list[tuple[np.ndarray, np.ndarray]], at: str) -> Iterator[PairPrediction]:
        height, width = pairs[0][0].shape[:2]
        shape = network_shape(height, width, self.size, at)
        inputs = {
            kind: torch.stack([self._network_input(pair[k], shape, at) for pair in pairs]).to(self.device)
            for k, kind in enumerate(("bg", "fg_bg"))
        }
        inputs = self.normaliser(inputs)
        outputs = predict_batch(self.model, inputs["bg"], inputs["fg_bg"])
        both = torch.cat((outputs["mask_prob"], outputs["depth"]), dim=1)
        if at == "native":
            both = both[..., :height, :width]
        elif both.shape[-2:] != (height, width):
            both = F.interpolate(both, size=(height, width), mode="bilinear", align_corners=False)
        for (_, fg_bg), maps in zip(pairs, both.cpu().numpy(), strict=True):
            yield PairPrediction(fg_bg=fg_bg, prob=maps[0], depth=maps[1])

    @staticmethod
    def _network_input(image: np.ndarray, shape: tuple[int, int], at: str) -> torch.Tensor:
        """uint8 3xHxW at the network's `shape`: resized (`trained`) or padded with black (`native`)."""
        height, width = image.shape[:2]
        if at == "native":
            image = np.pad(image, ((0, shape[0] - height), (0, shape[1] - width), (0, 0)))
        elif (height, width) != shape:
            shrink = shape[0] * shape[1] < height * width
            interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            image = cv2.resize(image, (shape[1], shape[0]), interpolation=interpolation)
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))

    def predict_pairs(
        self,
        pairs: Sequence[tuple[Path, Path]],
        out: str | Path,
        at: str = "trained",
        batch_size: int = 8,
        progress: bool = True,
    ) -> list[dict[str, Path]]:
        """Write each (bg, fg_bg) file pair's outputs into `out` (see the module's doc); returns their
        paths by output name, in order. All inputs are checked before the first file is written."""
        network_shape(1, 1, self.size, at)  # an unknown `at` is refused before any work
        check_inputs(pairs)
        check_outputs(None, out)
        loaded = (load_pair(bg, fg_bg) for bg, fg_bg in pairs)
        predictions = self.predict(loaded, at=at, batch_size=batch_size)
        bar = tqdm(zip(pairs, predictions, strict=True), total=len(pairs), desc="predict", disable=not progress)
        return [prediction.save(Path(out), Path(fg_bg).stem) for (_, fg_bg), prediction in bar]


def check_inputs(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Open every image of `pairs` once (decodability, pixel limit, matching sizes) and refuse two
    photos of the same stem (their outputs would share names): an `AssetError` or ValueError naming
    the file."""
    if not pairs:
        raise ValueError("no image pairs to predict on")
    stems: dict[str, Path] = {}
    for bg, fg_bg in pairs:
        load_pair(bg, fg_bg)
        other = stems.setdefault(Path(fg_bg).stem, Path(fg_bg))
        if other != Path(fg_bg):
            raise AssetError(fg_bg, f"has the same name as {other}, so their outputs would collide", "rename one")


def find_pairs(
    bg: str | Path | None = None, fg_bg: str | Path | None = None, pairs_csv: str | Path | None = None
) -> list[tuple[Path, Path]]:
    """The (bg, fg_bg) pairs to predict on: two files; two folders, matched by file stem; or a CSV with
    ``bg,fg_bg`` columns (relative paths resolved against the CSV's folder)."""
    if pairs_csv is not None:
        if bg is not None or fg_bg is not None:
            raise ValueError("give either --pairs CSV or --bg and --fg-bg, not both")
        return read_pairs_csv(Path(pairs_csv))
    if bg is None or fg_bg is None:
        raise ValueError("give --bg and --fg-bg (two files or two folders), or --pairs CSV")
    bg, fg_bg = Path(bg), Path(fg_bg)
    if bg.is_dir() != fg_bg.is_dir():
        folder, file = (bg, fg_bg) if bg.is_dir() else (fg_bg, bg)
        raise ValueError(f"{folder} is a folder but {file} is not: give two files or two folders")
    return match_folders(bg, fg_bg) if bg.is_dir() else [(bg, fg_bg)]


def match_folders(bg_dir: Path, fg_bg_dir: Path) -> list[tuple[Path, Path]]:
    """Pairs of the images in two folders with the same stem (``street.jpg`` with ``street.png``),
    sorted; a file without its partner, or two of one stem in a folder, is refused by name."""
    by_stem = [_images_by_stem(folder) for folder in (bg_dir, fg_bg_dir)]
    for (stems, _), (others, other_dir) in ((by_stem[0], by_stem[1]), (by_stem[1], by_stem[0])):
        for stem, path in stems.items():
            if stem not in others:
                raise AssetError(path, f"has no partner named {stem}.* in {other_dir}", "add it or remove this file")
    backgrounds, photos = by_stem[0][0], by_stem[1][0]
    return [(backgrounds[stem], photos[stem]) for stem in sorted(photos)]


def _images_by_stem(folder: Path) -> tuple[dict[str, Path], Path]:
    found: dict[str, Path] = {}
    for path in list_images(folder):
        if path.stem in found:
            raise AssetError(path, f"has the same name as {found[path.stem].name}", "keep one image per name")
        found[path.stem] = path
    return found, folder


def read_pairs_csv(path: Path) -> list[tuple[Path, Path]]:
    """The (bg, fg_bg) rows of a CSV with those two columns; relative paths are relative to its folder."""
    if not path.is_file():
        raise ValueError(f"{path}: pairs file not found")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"bg", "fg_bg"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: needs the columns bg,fg_bg (found {', '.join(reader.fieldnames or ())})")
        rows = list(reader)
    pairs = []
    for line, row in enumerate(rows, start=2):
        if not (row["bg"] or "").strip() or not (row["fg_bg"] or "").strip():
            raise ValueError(f"{path}: line {line} has an empty bg or fg_bg")
        pairs.append(tuple(path.parent / row[key].strip() for key in ("bg", "fg_bg")))
    if not pairs:
        raise ValueError(f"{path}: no pairs listed")
    return pairs


def predict_pairs(
    checkpoint: str | Path,
    pairs: Sequence[tuple[str | Path, str | Path]],
    out: str | Path,
    at: str = "trained",
    device: str | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> list[dict[str, Path]]:
    """`checkpoint` applied to (bg, fg_bg) file pairs, outputs written into `out` (see the module's
    doc)."""
    pairs = [(Path(bg), Path(fg_bg)) for bg, fg_bg in pairs]
    predictor = Predictor(checkpoint, device=device)
    return predictor.predict_pairs(pairs, out, at=at, batch_size=batch_size, progress=progress)


def predict_pair(
    checkpoint: str | Path, bg: str | Path, fg_bg: str | Path, out: str | Path, **options
) -> dict[str, Path]:
    """`predict_pairs` for one pair: the paths of its five outputs by name."""
    return predict_pairs(checkpoint, [(bg, fg_bg)], out, **options)[0]
