"""Running the notebooks headless (fgbg_utils.course) and summarising a run (fgbg_utils.run_summary)."""

import base64
import io
import json
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from fgbg_utils.build import BuildResult, print_summary
from fgbg_utils.course import NotebookFailed, find_notebooks, run_notebooks, update_notebooks
from fgbg_utils.run_summary import summarise, summary_markdown, write_summary

PLOT = """import matplotlib.pyplot as plt
for k in range(2):
    plt.figure(figsize=(1, 1))
    plt.plot([0, k])
plt.show()"""


def write_notebook(path: Path, *cells) -> Path:
    notebook = new_notebook(cells=list(cells))
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def course(tmp_path) -> Path:
    """Notebooks 00 (prints, two figures), 01 (fails at its third cell) and 02 (never reached)."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(
        folder / "00_plot.ipynb",
        new_markdown_cell("# plot"),
        new_code_cell('import os\nprint("profile", os.environ["FGBG_PROFILE"], "in", os.path.basename(os.getcwd()))'),
        new_code_cell(PLOT),
    )
    write_notebook(
        folder / "01_fail.ipynb",
        new_markdown_cell("# fail"),
        new_code_cell('print("before")'),
        new_code_cell('raise ValueError("boom in the second notebook")'),
        new_code_cell('print("never")'),
    )
    write_notebook(folder / "02_after.ipynb", new_code_cell('print("after")'))
    write_notebook(folder / "scratch.ipynb", new_code_cell('raise RuntimeError("not a course notebook")'))
    return folder


def test_find_notebooks_takes_numbered_ones_in_order(course, tmp_path):
    assert [p.name for p in find_notebooks(course)] == ["00_plot.ipynb", "01_fail.ipynb", "02_after.ipynb"]
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        find_notebooks(tmp_path / "empty")


def test_run_writes_notebooks_figures_timings_and_stops_at_the_failing_cell(course, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(NotebookFailed) as caught:
        run_notebooks(course, out, "smoke", timeout_minutes=5, progress=False)
    failure = caught.value
    assert "01_fail.ipynb" in str(failure) and "cell 3 of 4" in str(failure)
    assert "ValueError: boom in the second notebook" in str(failure)
    assert failure.cell == 3 and failure.partial == out / "notebooks" / "01_fail.ipynb"
    assert "boom in the second notebook" in failure.details

    first = nbformat.read(out / "notebooks" / "00_plot.ipynb", as_version=4)
    assert first.cells[1].outputs[0].text == f"profile smoke in {course.name}\n"
    images = [o.data["image/png"] for o in first.cells[2].outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2
    for m, data in enumerate(images, start=1):
        figure = out / "figures" / f"00_plot_cell3_{m}.png"
        assert figure.read_bytes() == base64.b64decode(data) and figure.read_bytes().startswith(b"\x89PNG")

    partial = nbformat.read(failure.partial, as_version=4)
    assert partial.cells[1].outputs[0].text == "before\n"
    assert partial.cells[2].outputs[0].output_type == "error"
    assert partial.cells[3].outputs == [] and partial.cells[3].execution_count is None
    assert not (out / "notebooks" / "02_after.ipynb").exists()

    timings = json.loads((out / "notebooks" / "timings.json").read_text())
    assert timings["profile"] == "smoke"
    assert [(row["name"], row["status"]) for row in timings["notebooks"]] == [("00_plot", "ok"), ("01_fail", "failed")]
    assert all(row["seconds"] > 0 for row in timings["notebooks"])


@pytest.mark.parametrize(
    ("source", "reason"),
    [("import time; time.sleep(60)", "minute limit ran out"), ("import os; os._exit(1)", "the kernel died")],
    ids=["over the time limit", "kernel dies"],
)
def test_a_notebook_that_cannot_finish_fails_naming_the_cell(tmp_path, source, reason):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "00_stuck.ipynb", new_code_cell('print("start")'), new_code_cell(source))
    with pytest.raises(NotebookFailed, match=rf"00_stuck.ipynb: cell 2 of 2 failed: .*{reason}"):
        run_notebooks(folder, tmp_path / "out", "smoke", timeout_minutes=0.05, progress=False)
    assert nbformat.read(tmp_path / "out" / "notebooks" / "00_stuck.ipynb", as_version=4).cells[0].outputs
    assert (tmp_path / "out" / "notebooks" / "00_stuck.kernel.log").exists()


def test_update_notebooks_stores_outputs_and_keeps_the_pair_in_sync(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    notebook = write_notebook(folder / "00_hello.ipynb", new_markdown_cell("# hello"), new_code_cell('print("hello")'))
    source = jupytext.read(notebook)
    source.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    jupytext.write(source, notebook)
    jupytext.write(source, notebook.with_suffix(".py"), fmt="py:percent")
    runs = run_notebooks(folder, tmp_path / "out", "demo", progress=False)

    assert update_notebooks(runs, tmp_path / "out", folder) == [notebook]
    stored = nbformat.read(notebook, as_version=4)
    assert stored.cells[1].outputs[0].text == "hello\n"
    as_script = jupytext.writes(jupytext.read(notebook), fmt="py:percent")
    assert as_script == jupytext.writes(jupytext.read(notebook.with_suffix(".py")), fmt="py:percent")

    script = notebook.with_suffix(".py")
    script.write_text(script.read_text() + '\n# %%\nprint("edited during the run")\n')
    before = notebook.read_bytes()
    with pytest.raises(ValueError, match=r"00_hello.py: differs from the code that ran"):
        update_notebooks(runs, tmp_path / "out", folder)
    assert notebook.read_bytes() == before


def build_line(root: Path, built: int, seconds: float) -> str:
    text = io.StringIO()
    print_summary(BuildResult(root, built, built, seconds), file=text)
    return text.getvalue()


@pytest.fixture
def finished_run(tmp_path) -> tuple[Path, Path]:
    """A run folder and an output folder as a notebook run leaves them, with made-up values."""
    run, out = tmp_path / "runs" / "demo", tmp_path / "out"
    files = {
        run / "data" / "data_manifest.json": {
            "counts": {"samples": 1600, "shards": 4},
            "generation": {"parameters": {"size": 64}},
            "bytes": {"total": 3 * 2**20},
        },
        run / "train" / "config.json": {"model": "fgbg_net", "batch_size": 8, "minutes": 10},
        run / "train" / "timing.json": {"steps": 150, "images_per_s": 20.0, "blocks": {}},
        run / "train" / "eval_unseen.json": {
            "split": "unseen_test",
            "size": 64,
            "model": "seed004_dilated",
            "step": 150,
            "metrics": {
                "images": 360,
                "mask_iou": 0.7123,
                "depth_rmse": 0.0456,
                "depth_rmse_m": 7.5,
                "depth_delta1": 0.8312,
                "depth_object_rmse": 0.0712,
            },
            "baselines": {
                "difference_mask": {"mask_iou": 0.6},
                "background_depth": {"depth_rmse": 0.05, "depth_delta1": 0.9, "depth_object_rmse": 0.2},
            },
        },
        out / "notebooks" / "timings.json": {
            "profile": "demo",
            "notebooks": [
                {"name": "00_make_dataset", "seconds": 90.0, "status": "ok"},
                {"name": "06_train", "seconds": 660.0, "status": "ok"},
            ],
        },
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    printed = build_line(run / "local", 999, 1.0) + "other output\n" + build_line(run / "data", 1600, 3.2)
    output = nbformat.v4.new_output("stream", name="stdout", text=printed)
    write_notebook(out / "notebooks" / "00_make_dataset.ipynb", new_code_cell("build()", outputs=[output]))
    return run, out


def test_summary_reads_the_values_the_run_left(finished_run):
    run, out = finished_run
    summary = summarise(run, out)
    assert summary["profile"] == "demo" and summary["missing"] == []
    dataset = summary["dataset"]
    assert (dataset["samples"], dataset["shards"], dataset["size"], dataset["mib"]) == (1600, 4, 64, 3.0)
    assert dataset["build"] == {"samples": 1600, "seconds": 3.2, "samples_per_s": pytest.approx(500.0)}
    assert summary["model"] == {"name": "seed004_dilated", "parameters": 1_340_224}
    assert summary["training"] == {"steps": 150, "minutes_in_steps": pytest.approx(1.0), "budget_minutes": 10}
    unseen = summary["unseen"]
    assert (unseen["mask_iou"], unseen["depth_rmse"], unseen["depth_delta1"]) == (0.7123, 0.0456, 0.8312)
    assert [(row["name"], row["minutes"]) for row in summary["notebooks"]] == [
        ("00_make_dataset", 1.5),
        ("06_train", 11.0),
    ]

    table = summary_markdown(summary)
    for expected in (
        "| dataset | 1,600 samples at 64 px in 4 shards, 3.0 MiB |",
        "| build rate | 500 samples/s (1,600 built in 3.2 s) |",
        "| model | seed004_dilated, 1,340,224 parameters |",
        "| training | 150 steps, 1.0 min in training steps (budget 10 min) |",
        "| unseen mask IoU | 0.7123 (unseen_test, 360 images at 64 px; difference-mask baseline 0.6000) |",
        "| unseen depth RMSE | 0.0456 (0..1 inverse depth, 7.50 m; background-depth baseline 0.0500) |",
        "| unseen depth δ1 | 0.8312 (background-depth baseline 0.9000) |",
        "| unseen depth RMSE on the object | 0.0712 (inside the true mask; background-depth baseline 0.2000) |",
        "| 06_train | 11.0 | ok |",
        "| total | 12.5 | |",
    ):
        assert expected in table

    json_path, markdown_path = write_summary(out, summary)
    assert json.loads(json_path.read_text())["unseen"]["mask_iou"] == 0.7123
    assert markdown_path.read_text() == table


def test_summary_names_what_is_missing_and_an_unmeasured_build(finished_run):
    run, out = finished_run
    (out / "notebooks" / "00_make_dataset.ipynb").unlink()
    for name in ("config.json", "timing.json", "eval_unseen.json"):
        (run / "train" / name).unlink()
    summary = summarise(run, out)
    assert summary["missing"] == [
        str(run / "train" / name) for name in ("config.json", "timing.json", "eval_unseen.json")
    ]
    assert summary["dataset"]["build"] is None and summary["model"] is None
    table = summary_markdown(summary)
    assert "| build rate | not measured: the dataset was built before this run |" in table
    assert "| model | not found |" in table and "| unseen scores | not found |" in table
    assert "Not found: " + str(run / "train" / "config.json") in table
