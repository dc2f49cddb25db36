"""Run the course notebooks headless, in order, as `make demo` does.

Every ``notebooks/NN_*.ipynb`` is executed with nbclient in its own folder (relative paths work
as in Jupyter) with ``$FGBG_PROFILE`` set. Each executed notebook is written to
``OUT/notebooks/`` whole, or as far as it ran when a cell fails, so a failure can be read in
place; its PNG outputs go to ``OUT/figures/NN_x_cellK_M.png`` (cell K and its image M, both
counted from 1) for a look without Jupyter; its wall time goes to ``OUT/notebooks/timings.json``
and the kernel process's own messages (not the cells' output) to ``OUT/notebooks/NN_x.kernel.log``.
"""

from __future__ import annotations

import base64
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from tqdm.auto import tqdm

from .runtime import PROFILE_VARIABLE, get_profile
from .store import write_bytes_atomic, write_json_atomic

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
TIMINGS_NAME = "timings.json"
DEFAULT_TIMEOUT_MINUTES = 120.0
"""A safety net against a hung notebook: the full profile's training alone takes 60 minutes."""


@dataclass
class NotebookRun:
    """One executed notebook: its name, wall time, "ok" or "failed", and the figures it left."""

    name: str
    seconds: float
    status: str
    figures: list[Path] = field(default_factory=list)


class NotebookFailed(RuntimeError):
    """A notebook stopped before its end. Names the notebook, the cell and the partial copy;
    `details` holds the kernel's traceback and `run` the timing of what ran."""

    def __init__(
        self,
        notebook: Path,
        cell: int | None,
        cells: int,
        reason: str,
        run: NotebookRun,
        partial: Path,
        details: str = "",
    ):
        where = f"cell {cell} of {cells}" if cell else "before its first cell"
        super().__init__(f"{notebook}: {where} failed: {reason}; partially executed notebook: {partial}")
        self.notebook, self.cell, self.run, self.partial, self.details = notebook, cell, run, partial, details


def find_notebooks(folder: Path) -> list[Path]:
    """The course notebooks in `folder`, in their numbered order."""
    notebooks = sorted(Path(folder).glob(NOTEBOOK_GLOB))
    if not notebooks:
        raise FileNotFoundError(f"{folder}: no notebooks named NN_*.ipynb")
    return notebooks


def save_figures(notebook: nbformat.NotebookNode, stem: str, folder: Path) -> list[Path]:
    """Every PNG output of `notebook` as folder/<stem>_cell<K>_<M>.png; the older figures of
    `stem` are removed first, so the folder shows this run only."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{stem}_cell*.png"):
        old.unlink()
    saved = []
    for k, cell in enumerate(notebook.cells, start=1):
        images = [out["data"]["image/png"] for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
        for m, data in enumerate(images, start=1):
            path = folder / f"{stem}_cell{k}_{m}.png"
            write_bytes_atomic(path, base64.b64decode(data))
            saved.append(path)
    return saved


def execute_notebook(
    path: Path, out: Path, profile: str, timeout_minutes: float | None = DEFAULT_TIMEOUT_MINUTES
) -> NotebookRun:
    """Execute one notebook in its folder; write the executed copy and its figures under `out`.

    `timeout_minutes` bounds the whole notebook, not each cell: every cell gets what is left.
    On a failing cell, a timeout or a dead kernel, raises NotebookFailed after writing what ran.
    """
    path, out = Path(path).resolve(), Path(out).resolve()
    get_profile(profile)  # an unknown profile fails here, not in every notebook
    notebook = nbformat.read(path, as_version=4)
    deadline = None if timeout_minutes is None else time.monotonic() + 60 * timeout_minutes
    current: dict[str, int | None] = {"cell": None}

    def time_left(cell) -> int | None:
        return None if deadline is None else max(1, math.ceil(deadline - time.monotonic()))

    def cell_started(cell, cell_index: int, **_) -> None:
        current["cell"] = cell_index + 1

    client = NotebookClient(
        notebook,
        timeout_func=time_left,
        kernel_name=notebook.metadata.get("kernelspec", {}).get("name", "python3"),
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=cell_started,
    )
    reason, details = "", ""
    executed = out / "notebooks" / path.name
    kernel_log = executed.with_suffix(".kernel.log")
    kernel_log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        with open(kernel_log, "w") as log:  # the kernel process's own messages, off the terminal
            client.execute(env={**os.environ, PROFILE_VARIABLE: profile}, stderr=log)
    except CellExecutionError as error:
        reason, details = f"{error.ename}: {error.evalue}", str(error)
    except CellTimeoutError as error:
        reason, details = f"the notebook's {timeout_minutes:g}-minute limit ran out", str(error)
    except DeadKernelError as error:
        reason, details = f"the kernel died ({error}; its messages: {kernel_log})", ""
    seconds = time.perf_counter() - started
    write_bytes_atomic(executed, nbformat.writes(notebook).encode())
    figures = save_figures(notebook, path.stem, out / "figures")
    run = NotebookRun(path.stem, seconds, "failed" if reason else "ok", figures)
    if reason:
        raise NotebookFailed(path, current["cell"], len(notebook.cells), reason, run, executed, details)
    return run


def write_timings(out: Path, profile: str, runs: list[NotebookRun]) -> Path:
    path = Path(out) / "notebooks" / TIMINGS_NAME
    rows = [{"name": run.name, "seconds": run.seconds, "status": run.status} for run in runs]
    write_json_atomic(path, {"profile": profile, "notebooks": rows})
    return path


def run_notebooks(
    folder: Path,
    out: Path,
    profile: str,
    timeout_minutes: float | None = DEFAULT_TIMEOUT_MINUTES,
    progress: bool = True,
) -> list[NotebookRun]:
    """Execute every NN_*.ipynb of `folder` in order (see `execute_notebook`), keeping
    timings.json up to date after each; stops at the first failure with NotebookFailed."""
    runs: list[NotebookRun] = []
    with tqdm(find_notebooks(folder), desc="notebooks", unit="notebook", disable=not progress) as bar:
        for path in bar:
            bar.set_postfix_str(path.stem)
            try:
                runs.append(execute_notebook(path, out, profile, timeout_minutes))
            except NotebookFailed as failure:
                runs.append(failure.run)
                raise
            finally:
                write_timings(out, profile, runs)
            bar.write(f"{path.stem}: {runs[-1].seconds / 60:.1f} min, {len(runs[-1].figures)} figures")
    return runs


def _as_script(path: Path) -> str:
    import jupytext

    return jupytext.writes(jupytext.read(path), fmt="py:percent")


def update_notebooks(runs: list[NotebookRun], out: Path, folder: Path) -> list[Path]:
    """Copy the executed notebooks of `runs` into `folder` and sync their py:percent pairs, so
    the committed notebooks carry the outputs of a real run.

    Refuses, naming the file, when a pair no longer matches the code that ran (it was edited
    during the run): syncing would then overwrite the edit with the old code.
    """
    executed = [Path(out) / "notebooks" / f"{run.name}.ipynb" for run in runs]
    targets = [Path(folder) / path.name for path in executed]
    for source, target in zip(executed, targets, strict=True):
        pair = target.with_suffix(".py")
        if pair.exists() and _as_script(pair) != _as_script(source):
            raise ValueError(f"{pair}: differs from the code that ran ({source}); sync the pair and run again")
    for source, target in zip(executed, targets, strict=True):
        write_bytes_atomic(target, source.read_bytes())
    command = [sys.executable, "-m", "jupytext", "--quiet", "--sync", *map(str, targets)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"jupytext --sync failed on {folder}:\n{result.stderr}")
    return targets
