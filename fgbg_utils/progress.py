"""Progress bars that suit where the output goes: tqdm's live bar in a terminal or a notebook, and in
a log file (output that is not a terminal) a plain line now and then, with no carriage-return
updates piling up in it."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm.auto import tqdm
from tqdm.std import tqdm as plain_tqdm

LOG_EVERY_SECONDS = 30.0
"""Seconds between two lines of a bar written to a log file."""


class LogLines(plain_tqdm):
    """A tqdm bar that writes each update as a line of its own (every `LOG_EVERY_SECONDS`, and a
    last one when it closes) instead of redrawing one line with carriage returns."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"mininterval": LOG_EVERY_SECONDS, "ascii": True, **kwargs, "leave": False})

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm clearing its line: nothing to clear here
            return False
        self.fp.write(f"{self if msg is None else msg}\n")
        self.fp.flush()
        return True

    def close(self) -> None:
        if not self.disable and self.n != self.last_print_n:
            self.display()
        super().close()


def in_notebook() -> bool:
    """Whether tqdm.auto chose its notebook widget (this runs in a Jupyter or Colab kernel)."""
    notebook = sys.modules.get("tqdm.notebook")
    return notebook is not None and issubclass(tqdm, notebook.tqdm)


def progress_bar(iterable: Iterable | None = None, enabled: bool = True, **options) -> plain_tqdm:
    """A bar over `iterable` (or updated by hand, with ``total=``): nothing when not `enabled`, the
    notebook widget in a notebook, the live bar on a terminal, `LogLines` elsewhere. `options` go to
    tqdm (``total``, ``desc``, ``unit``, ``file``…)."""
    if not enabled:
        return tqdm(iterable, disable=True, **options)
    stream = options.get("file") or sys.stderr
    if in_notebook() or (hasattr(stream, "isatty") and stream.isatty()):
        return tqdm(iterable, **options)
    return LogLines(iterable, **options)
