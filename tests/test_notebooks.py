"""Notebook conventions: paired with a py:percent script, parameterised, Colab-ready, checked."""

from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = sorted(Path(__file__).resolve().parent.parent.joinpath("notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert {p.stem[:2] for p in NOTEBOOKS} >= {"00", "02"}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_is_in_sync(notebook: Path):
    script = notebook.with_suffix(".py")
    assert script.exists(), f"{notebook.name} has no paired {script.name}"
    from_notebook = jupytext.writes(jupytext.read(notebook), fmt="py:percent")
    from_script = jupytext.writes(jupytext.read(script), fmt="py:percent")
    assert from_notebook == from_script, f"{notebook.name} and {script.name} differ: run `make sync`"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_conventions(notebook: Path):
    cells = jupytext.read(notebook).cells
    assert "colab.research.google.com/github/" in cells[0].source and notebook.name in cells[0].source
    setup = next(c for c in cells if c.cell_type == "code")
    assert "google.colab" in setup.source and "describe_runtime" in setup.source
    installs = [line for line in setup.source.splitlines() if "pip" in line and "install" in line]
    assert installs and not any("torch" in line for line in installs), "never reinstall Colab's torch"
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "PROFILE" in tagged[0].source
    assert any(c.source.startswith("# NBVAL_CHECK_OUTPUT") for c in cells), "check at least one deterministic cell"


def test_setup_cells_are_identical_with_the_repository_in_one_place():
    """One Colab bootstrap for every notebook (`tests/test_colab_bootstrap.py` runs it), its
    repository URL only in the `KIT_REPO` parameter at the top."""
    setups = {nb.name: next(c for c in jupytext.read(nb).cells if c.cell_type == "code").source for nb in NOTEBOOKS}
    first = setups[NOTEBOOKS[0].name]
    assert all(source == first for source in setups.values()), [n for n, s in setups.items() if s != first]
    code = [line for line in first.splitlines() if line and not line.startswith("#")]
    assert code[:4] == [
        "import os",
        "import subprocess",
        "import sys",
        'KIT_REPO = os.environ.get("FGBG_KIT_REPO", "https://github.com/fgbg-kit/fgbg-kit")',
    ]
    assert first.count("github.com/") == 1 and "GIT_TERMINAL_PROMPT" in first


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_a_demo_run(notebook: Path):
    cells = [c for c in jupytext.read(notebook).cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in cells), f"{notebook.name} is not fully executed"
    text = "".join(o.get("text", "") for c in cells for o in c.get("outputs", []))
    assert "profile demo" in text or "runs/demo" in text, f"{notebook.name} outputs are not from the demo profile"
