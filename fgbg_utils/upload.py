"""Files a user uploads in a notebook, turned into image files on disk and predicted on.

Uploads arrive as ipywidgets 8's ``FileUpload.value`` (a tuple of dicts with ``name`` and
``content``), ipywidgets 7's (a dict of name to a dict with ``content``) or Colab's
``google.colab.files.upload()`` (a dict of name to bytes). `predict_uploads` saves the backgrounds
and the photos apart and pairs them: one background serves every photo; several are matched to the
photos by file stem, as `python -m fgbg_utils predict --bg DIR --fg-bg DIR` matches them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image as DisplayImage
from PIL import Image

from .assets import AssetError
from .predict import load_pair, predict_pairs
from .store import write_bytes_atomic
from .viz import figure_png, show_images


def uploaded_files(value: Mapping | tuple | list) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every uploaded file, in any of the three forms of the module's doc."""
    if isinstance(value, Mapping):
        items = [(name, item["content"] if isinstance(item, Mapping) else item) for name, item in value.items()]
    else:
        items = [(item["name"], item["content"]) for item in value]
    return [(str(name), bytes(content)) for name, content in items]


def save_uploads(value: Mapping | tuple | list, folder: str | Path) -> list[Path]:
    """Write the uploaded files into `folder` under their own names (any folder part dropped), each
    atomically; returns their paths. A nameless file or two of one name are refused by name."""
    files = uploaded_files(value)
    if not files:
        raise ValueError("nothing was uploaded: choose one or more image files first")
    paths: list[Path] = []
    for name, content in files:
        safe = Path(name.replace("\\", "/")).name
        if safe in ("", ".", "..") or safe.startswith("."):
            raise ValueError(f"{name!r}: not a usable file name; rename the file and upload it again")
        path = Path(folder) / safe
        if path in paths:
            raise ValueError(f"{safe}: uploaded twice; upload each file once")
        write_bytes_atomic(path, content)
        paths.append(path)
    return paths


def pair_uploads(backgrounds: list[Path], photos: list[Path]) -> list[tuple[Path, Path]]:
    """(bg, photo) pairs: the one background with every photo, or backgrounds and photos of one stem."""
    if len(backgrounds) == 1:
        return [(backgrounds[0], photo) for photo in photos]
    by_stem = {path.stem: path for path in backgrounds}
    for photo in photos:
        if photo.stem not in by_stem:
            raise AssetError(photo, f"has no background named {photo.stem}.*", "upload one, or a single background")
    return [(by_stem[photo.stem], photo) for photo in photos]


def predict_uploads(
    checkpoint: str | Path,
    backgrounds: Mapping | tuple | list,
    photos: Mapping | tuple | list,
    out: str | Path,
    **options,
) -> list[dict[str, Path]]:
    """Save the uploads into ``out/uploads/bg`` and ``out/uploads/fg_bg``, pair them (`pair_uploads`)
    and predict (`fgbg_utils.predict.predict_pairs`, `options` passed on); returns the outputs' paths."""
    uploads = Path(out) / "uploads"
    pairs = pair_uploads(save_uploads(backgrounds, uploads / "bg"), save_uploads(photos, uploads / "fg_bg"))
    written = predict_pairs(checkpoint, pairs, out, **options)
    for (bg, photo), paths in zip(pairs, written, strict=True):
        paths["bg"], paths["fg_bg"] = bg, photo
    return written


def show_prediction(paths: Mapping[str, Path], size: float = 2.6):
    """A row: background, photo, predicted mask, coloured depth and overlay, from a pair's files."""
    bg, photo = load_pair(paths["bg"], paths["fg_bg"])
    images = [bg, photo] + [_read(paths[name]) for name in ("mask", "depth_color", "overlay")]
    titles = ["background", Path(paths["fg_bg"]).name, "predicted mask", "predicted depth", "overlay"]
    return show_images(images, titles, size=size)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


class UploadPredictor:
    """Two `FileUpload`s (backgrounds, photos), a button that predicts on them with `checkpoint`
    into `out`, and the figures below it; a problem with a file is shown as one line. `widget` is
    the whole thing, `output` where the figures go (appended as data, so no kernel is needed to
    fill it: the same in Jupyter, Voilà and a test)."""

    def __init__(self, checkpoint: str | Path, out: str | Path, **options):
        self.checkpoint, self.out, self.options = checkpoint, Path(out), options
        self.backgrounds = widgets.FileUpload(accept="image/*", multiple=True, description="backgrounds")
        self.photos = widgets.FileUpload(accept="image/*", multiple=True, description="photos")
        self.button = widgets.Button(description="predict", button_style="primary")
        self.output = widgets.Output()
        self.written: list[dict[str, Path]] = []
        self.button.on_click(self._predict)
        self.widget = widgets.VBox([widgets.HBox([self.backgrounds, self.photos, self.button]), self.output])

    def _predict(self, _button=None) -> None:
        """Predict on the current uploads; the figures (PNG, drawn by Agg) or the error go to `output`."""
        self.output.clear_output()
        try:
            self.written = predict_uploads(
                self.checkpoint, self.backgrounds.value, self.photos.value, self.out, **self.options
            )
        except (AssetError, ValueError, OSError) as error:
            self.output.append_stdout(f"error: {error}\n")
            return
        for paths in self.written:
            figure = show_prediction(paths)
            self.output.append_display_data(DisplayImage(figure_png(figure)))
            plt.close(figure)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
