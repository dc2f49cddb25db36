"""The ipywidgets browser over predicted splits, and how a notebook shows it.

The browser draws each view with Matplotlib's Agg canvas into PNG bytes shown in an
``ipywidgets.Image``: no interactive Matplotlib backend is involved, so the same code renders in
Jupyter, Colab and Voilà. Where no widget frontend runs (GitHub's notebook view, nbconvert),
`show_browser` also displays a static PNG of the current view (see `static_wanted`).
"""

from __future__ import annotations

import contextlib
import html
import os
from collections.abc import Iterable, Iterator

import ipywidgets as widgets
import numpy as np

from .figures import DEPTH_COLORMAPS, sample_figure
from .runtime import in_colab
from .split_predictions import SORTS, SplitPredictions
from .viz import figure_png

DOM_CLASSES = {
    "widget": "fgbg-browser",
    "image": "fgbg-image",
    "sample": "fgbg-sample",
    "split": "fgbg-split",
    "sort": "fgbg-sort",
    "threshold": "fgbg-threshold",
    "overlay": "fgbg-overlay",
    "colormap": "fgbg-colormap",
    "metrics": "fgbg-metrics",
}
"""CSS classes of the browser's parts (stable: browser tests find the widgets by them)."""
STATIC_VARIABLE = "FGBG_STATIC"


class PredictionBrowser:
    """An ipywidgets browser over predicted splits: pick a split, an order (split order or worst
    IoU first), a sample, the mask threshold (the predicted mask and its IoU/Dice are recomputed
    from the stored probabilities), a mask overlay on fg_bg and the depth colour map.

    The controls are attributes (`sample`, `split`, `sort`, `threshold`, `overlay`,
    `colormap`), the view is `image` (PNG bytes) and `metrics` (HTML); `widget` is the whole
    box, ready for `show_browser` or `display`.
    """

    def __init__(
        self,
        predictions: SplitPredictions | Iterable[SplitPredictions],
        threshold: float = 0.5,
        colormap: str = DEPTH_COLORMAPS[0],
        dpi: int = 100,
    ):
        if isinstance(predictions, SplitPredictions):
            predictions = [predictions]
        self.predictions = {p.split: p for p in predictions}
        if not self.predictions:
            raise ValueError("no predictions to browse")
        self.dpi = dpi
        first = next(iter(self.predictions.values()))
        labels = {"style": {"description_width": "initial"}}  # whole descriptions, not cut to a fixed width
        self.split = widgets.Dropdown(options=list(self.predictions), description="split", **labels)
        self.sort = widgets.ToggleButtons(options=list(SORTS), description="order", **labels)
        self.sample = widgets.IntSlider(
            value=0, min=0, max=len(first) - 1, description="sample", continuous_update=False, **labels
        )
        self.threshold = widgets.FloatSlider(
            value=threshold, min=0.05, max=0.95, step=0.05, description="threshold", continuous_update=False, **labels
        )
        self.overlay = widgets.Checkbox(value=False, description="overlay mask on fg_bg", **labels)
        self.colormap = widgets.Dropdown(
            options=list(DEPTH_COLORMAPS), value=colormap, description="depth colours", **labels
        )
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.metrics = widgets.HTML()
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.split, self.sort]),
                widgets.HBox([self.sample, self.threshold]),
                widgets.HBox([self.overlay, self.colormap]),
                self.image,
                self.metrics,
            ]
        )
        for name, css in DOM_CLASSES.items():
            getattr(self, name).add_class(css)
        self._holding = False
        self.split.observe(self._split_changed, names="value")
        self.sort.observe(self._sort_changed, names="value")
        for control in (self.sample, self.threshold, self.overlay, self.colormap):
            control.observe(lambda _change: self.render(), names="value")
        self.render()

    @property
    def current(self) -> SplitPredictions:
        return self.predictions[self.split.value]

    @property
    def index(self) -> int:
        """The shown sample's position in its split's predictions (the slider walks the order)."""
        return int(self.current.order(self.sort.value, self.threshold.value)[self.sample.value])

    @property
    def png(self) -> bytes:
        return bytes(self.image.value)

    def predicted_mask(self) -> np.ndarray:
        """The shown sample's predicted mask at the current threshold."""
        return self.current.predicted_mask(self.index, self.threshold.value)

    def controls(self) -> list[str]:
        """One line per control: its description, its kind and its choices."""
        lines = []
        for control in (self.split, self.sort, self.sample, self.threshold, self.overlay, self.colormap):
            kind = type(control).__name__
            if hasattr(control, "options"):
                choices = ", ".join(str(option) for option in control.options)
            elif isinstance(control, widgets.FloatSlider):
                choices = f"{control.min:.2f}..{control.max:.2f} step {control.step:.2f}"
            elif isinstance(control, widgets.IntSlider):
                choices = "0..samples-1"
            else:
                choices = "on/off"
            lines.append(f"{control.description}: {kind} ({choices})")
        return lines

    def _split_changed(self, _change) -> None:
        with self._held():
            self.sample.max = len(self.current) - 1
            self.sample.value = 0
        self.render()

    def _sort_changed(self, _change) -> None:
        with self._held():
            self.sample.value = 0
        self.render()

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """Change several controls with one redraw at the end (each change would redraw)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def render(self) -> None:
        """Redraw the image and the scores of the current choice."""
        if self._holding:
            return
        predictions, i, threshold = self.current, self.index, self.threshold.value
        figure = sample_figure(predictions, i, threshold, self.overlay.value, self.colormap.value)
        self.image.value = figure_png(figure, dpi=self.dpi)
        self.metrics.value = self.metrics_html(predictions, i, threshold)

    def metrics_html(self, predictions: SplitPredictions, i: int, threshold: float) -> str:
        scores = predictions.mask_scores(threshold)
        ids = {key: int(value[i]) for key, value in predictions.ids.items()}
        source = (
            f" (bg {ids['bg_id']}, fg {ids['fg_id']}{', mirrored' if ids.get('flip') else ''})"
            if "bg_id" in ids
            else ""
        )
        order = html.escape(self.sort.value)
        cells = (
            ("split", "split", html.escape(predictions.split)),
            ("position", "position", f"{self.sample.value} in 0..{len(predictions) - 1} ({order})"),
            ("sample", "sample", f"{ids['sample']}{source}"),
            ("threshold", "threshold", f"{threshold:.2f}"),
            ("IoU", "iou", f"{scores['iou'][i]:.4f}"),
            ("Dice", "dice", f"{scores['dice'][i]:.4f}"),
            ("depth RMSE", "depth-rmse", f"{predictions.metrics['depth_rmse'][i]:.4f}"),
            ("depth δ1", "depth-delta1", f"{predictions.metrics['depth_delta1'][i]:.4f}"),
        )
        head = "".join(f'<th style="padding:0 10px">{name}</th>' for name, _, _ in cells)
        body = "".join(f'<td class="fgbg-{css}" style="padding:0 10px">{value}</td>' for _, css, value in cells)
        return f"<table><tr>{head}</tr><tr>{body}</tr></table>"

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def in_voila() -> bool:
    """True in a kernel Voilà started: it sets VOILA_PREHEAT (pre-heated or not) and, per request,
    SERVER_SOFTWARE=voila/<version>."""
    return "VOILA_PREHEAT" in os.environ or os.environ.get("SERVER_SOFTWARE", "").startswith("voila")


def static_wanted(static: bool | None = None) -> bool:
    """Whether `show_browser` adds a static PNG: `static` when given, else $FGBG_STATIC ("0" or
    "1"), else yes except on Colab and in Voilà, where the live widget always renders. The
    kernel cannot tell whether a frontend will render widgets (GitHub and nbconvert show only
    stored outputs), so a notebook run for the record keeps the static copy."""
    if static is not None:
        return static
    value = os.environ.get(STATIC_VARIABLE)
    if value is not None:
        return value.strip().lower() not in ("", "0", "false", "no")
    return not (in_colab() or in_voila())


def enable_colab_widgets() -> None:
    """On Colab, turn on the widget manager that renders ipywidgets 8; elsewhere nothing."""
    try:
        from google.colab import output  # only importable on Colab
    except ImportError:
        return
    output.enable_custom_widget_manager()


def show_browser(browser: PredictionBrowser, static: bool | None = None) -> None:
    """Display the browser, and (see `static_wanted`) a static copy of its current view and
    scores for readers whose viewer runs no widgets."""
    from IPython.display import HTML, Image, display

    if in_colab():
        enable_colab_widgets()
    display(browser.widget)
    if static_wanted(static):
        display(Image(data=browser.png, format="png"), HTML(browser.metrics.value))
