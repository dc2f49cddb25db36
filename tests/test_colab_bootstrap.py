"""The notebooks' Colab setup cell, run as on Colab: a stand-in `google.colab` module, a local bare
git repository as the kit's remote (`FGBG_KIT_REPO`), the clone and the Drive copy redirected into a
temporary folder (`FGBG_KIT_DIR`, `FGBG_KIT_DRIVE`) and pip recorded instead of run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "00_make_dataset.ipynb"

HARNESS = """
import json, os, subprocess, sys
real_run = subprocess.run

def run(command, *args, **kwargs):  # pip is recorded, not run; git runs, its environment recorded
    with open(os.environ["CALLS"], "a") as calls:
        prompt = (kwargs.get("env") or os.environ).get("GIT_TERMINAL_PROMPT")
        calls.write(json.dumps({"command": [str(c) for c in command], "prompt": prompt}) + "\\n")
    if "pip" in command:
        return subprocess.CompletedProcess(command, 0)
    return real_run(command, *args, **kwargs)

subprocess.run = run
import google.colab  # the stand-in: the cell checks sys.modules
exec(compile(open(sys.argv[1]).read(), "setup cell", "exec"), {"__name__": "__main__"})
"""


def _git(*args: str, cwd: Path | None = None) -> None:
    identity = ["-c", "user.name=kit", "-c", "user.email=kit@example.org", "-c", "init.defaultBranch=main"]
    subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True)


def _kit_files(folder: Path, label: str) -> None:
    """A stand-in kit: what the cell needs of one (pyproject.toml, notebooks/, fgbg_utils.runtime)."""
    (folder / "notebooks").mkdir(parents=True)
    (folder / "notebooks" / "README").write_text("notebooks\n")
    (folder / "pyproject.toml").write_text("[project]\nname = 'stand-in'\n")
    (folder / "fgbg_utils").mkdir()
    (folder / "fgbg_utils" / "__init__.py").write_text("")
    (folder / "fgbg_utils" / "runtime.py").write_text(f"def describe_runtime():\n    return 'kit: {label}'\n")


@pytest.fixture
def colab(tmp_path):
    """Runs the setup cell as on Colab; returns (run, paths)."""
    source = next(c for c in jupytext.read(NOTEBOOK).cells if c.cell_type == "code").source
    (tmp_path / "cell.py").write_text(source)
    (tmp_path / "harness.py").write_text(HARNESS)
    (tmp_path / "stand_in" / "google" / "colab").mkdir(parents=True)
    (tmp_path / "stand_in" / "google" / "__init__.py").write_text("")
    (tmp_path / "stand_in" / "google" / "colab" / "__init__.py").write_text("")
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    _git("init", "-q", "--bare", str(remote))
    _git("init", "-q", str(work))
    _kit_files(work, "cloned")
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "kit", cwd=work)
    _git("push", "-q", str(remote), "HEAD:main", cwd=work)
    paths = {
        "remote": remote,
        "work": work,
        "kit": tmp_path / "content" / "fgbg-kit",
        "drive": tmp_path / "drive" / "MyDrive" / "fgbg-kit",
        "calls": tmp_path / "calls.jsonl",
    }

    def run(repo: str | Path = remote) -> tuple[subprocess.CompletedProcess, list[dict]]:
        paths["calls"].write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FGBG_", "PYTHON", "GIT_"))}
        env.update(
            PYTHONPATH=str(tmp_path / "stand_in"),
            FGBG_KIT_REPO=str(repo),
            FGBG_KIT_DIR=str(paths["kit"]),
            FGBG_KIT_DRIVE=str(paths["drive"]),
            CALLS=str(paths["calls"]),
        )
        command = [sys.executable, str(tmp_path / "harness.py"), str(tmp_path / "cell.py")]
        result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        calls = [json.loads(line) for line in paths["calls"].read_text().splitlines()]
        return result, calls

    return run, paths


def test_first_run_clones_and_installs_without_reinstalling_torch(colab):
    run, paths = colab
    result, calls = run()
    assert result.returncode == 0, result.stderr
    assert "kit: cloned" in result.stdout and (paths["kit"] / ".git").is_dir()
    assert calls[0]["command"][:3] == ["git", "clone", "-q"] and str(paths["remote"]) in calls[0]["command"]
    assert all(call["prompt"] == "0" for call in calls if call["command"][0] == "git")  # never asks for a password
    pip = [call["command"] for call in calls if "pip" in call["command"]]
    assert len(pip) == 1 and pip[0][-2:] == ["-e", str(paths["kit"])]
    assert not any("torch" in part for part in pip[0])


def test_second_run_pulls_the_remote(colab):
    run, paths = colab
    assert run()[0].returncode == 0
    (paths["work"] / "NEWS").write_text("an update\n")
    _git("add", "-A", cwd=paths["work"])
    _git("commit", "-q", "-m", "update", cwd=paths["work"])
    _git("push", "-q", str(paths["remote"]), "HEAD:main", cwd=paths["work"])
    result, calls = run()
    assert result.returncode == 0, result.stderr
    assert [c["command"][:4] for c in calls if c["command"][0] == "git"] == [["git", "-C", str(paths["kit"]), "pull"]]
    assert (paths["kit"] / "NEWS").read_text() == "an update\n"
    assert "warning" not in result.stdout


def test_a_failed_update_warns_and_keeps_the_kit(colab):
    run, paths = colab
    assert run()[0].returncode == 0
    _git("-C", str(paths["kit"]), "remote", "set-url", "origin", str(paths["remote"].with_name("gone.git")))
    result, _ = run()
    assert result.returncode == 0, result.stderr
    assert "could not update" in result.stdout and "left as it is" in result.stdout
    assert "kit: cloned" in result.stdout


def test_a_bad_url_stops_with_a_message_naming_it(colab):
    run, paths = colab
    missing = paths["remote"].with_name("no-such-kit.git")
    result, calls = run(missing)
    assert result.returncode != 0
    assert f"Could not clone {missing}" in result.stderr and "KIT_REPO" in result.stderr
    assert "Traceback" not in result.stderr  # one clear message, not a stack
    assert not any("pip" in call["command"] for call in calls) and not paths["kit"].exists()


def test_a_copy_on_drive_is_used_without_cloning(colab):
    run, paths = colab
    _kit_files(paths["drive"], "on Drive")
    result, calls = run(paths["remote"].with_name("unreachable.git"))
    assert result.returncode == 0, result.stderr
    assert "kit: on Drive" in result.stdout and not paths["kit"].exists()
    assert [call["command"][-2:] for call in calls] == [["-e", str(paths["drive"])]]  # pip only, no git
