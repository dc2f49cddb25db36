"""The command line: its defaults are the CPU recipe, `--recipe` takes another profile's, every option
is explained, the commands share their common options, and a log file gets no carriage returns."""

import argparse
import io
import subprocess
import sys
from pathlib import Path

import pytest

from fgbg_utils import cli
from fgbg_utils import evaluate as evaluate_module
from fgbg_utils import train as train_module
from fgbg_utils.models import MODELS, build_model, count_parameters
from fgbg_utils.progress import LogLines, progress_bar
from fgbg_utils.runtime import CPU_RECIPE, RECIPE_OPTIONS, get_profile

REPO = Path(__file__).resolve().parent.parent


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (commands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(commands.choices)


@pytest.fixture
def configs(monkeypatch) -> list:
    """The TrainConfigs `train` is called with (nothing is trained)."""
    seen = []

    def fake_train(config, given=None):
        seen.append((config, given))
        return {"steps": 0, "epoch": 0, "minutes": 0.0, "stopped": "steps", "best": None}

    monkeypatch.setattr(train_module, "train", fake_train)
    return seen


def test_train_with_only_a_budget_is_the_readme_recipe(configs):
    assert cli.main(["train", "--data", "D", "--out", "R", "--minutes", "10"]) == 0
    ((config, given),) = configs
    assert (config.model, config.sizes, config.lr, config.batch_size, config.workers) == (
        "fgbg_net_refined", (), 6e-3, 32, 1
    )  # fmt: skip
    assert {name: getattr(config, name) for name in RECIPE_OPTIONS} == CPU_RECIPE.options()
    assert config.minutes == 10 and config.steps is None and given == {"data", "out", "minutes"}


def test_options_written_out_count_as_given_even_at_their_default_value(configs):
    argv = ["train", "--data=D", "--out", "R", "--steps", "3", f"--lr={CPU_RECIPE.lr}", "--batch-size", "32"]
    assert cli.main(argv) == 0
    ((config, given),) = configs
    assert config.lr == CPU_RECIPE.lr and config.batch_size == CPU_RECIPE.batch_size
    assert given == {"data", "out", "steps", "lr", "batch_size"}


def test_a_recipe_fills_the_options_not_written_out_and_counts_them_as_given(configs):
    assert cli.main(["train", "--data", "D", "--out", "R", "--minutes", "60", "--recipe", "full", "--lr", "0.01"]) == 0
    ((config, given),) = configs
    full = get_profile("full").training
    assert config.lr == 0.01
    assert {name: getattr(config, name) for name in RECIPE_OPTIONS if name != "lr"} == {
        name: value for name, value in full.options().items() if name != "lr"
    }
    assert set(RECIPE_OPTIONS) <= given


def test_the_full_recipe_is_an_hour_on_one_gpu_at_the_datasets_224_px():
    full = get_profile("full").training
    assert full.minutes == 60 and full.sizes == () and get_profile("full").size == 224
    assert full.amp is True and full.channels_last is True
    assert full.lr / full.batch_size == pytest.approx(CPU_RECIPE.lr / CPU_RECIPE.batch_size)  # linear scaling
    assert full.batch_size > CPU_RECIPE.batch_size
    assert count_parameters(build_model(full.model)) <= 1_500_000


def test_every_option_of_every_command_says_what_it_does():
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in subcommands().items()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and (not action.help or action.help == argparse.SUPPRESS)
    ]
    assert not missing


def test_model_choices_are_the_registry():
    (model,) = [action for action in subcommands()["train"]._actions if "--model" in action.option_strings]
    assert list(model.choices) == list(MODELS) and "fgbg_net_wide" in model.choices


def test_train_and_evaluate_share_their_common_options():
    def common(parser):
        return {
            option: action.help
            for action in parser._actions
            for option in action.option_strings
            if option in ("--device", "--no-progress", "--batch-size")
        }

    parsers = subcommands()
    assert set(common(parsers["train"])) == {"--device", "--no-progress", "--batch-size"}
    assert common(parsers["evaluate"]) == common(parsers["train"])


@pytest.mark.parametrize(("flags", "progress"), [([], True), (["--no-progress"], False)])
def test_evaluate_passes_no_progress_on(monkeypatch, flags, progress):
    calls = []

    def fake_evaluate(info, **options):
        calls.append((info, options))
        return {"split": "unseen_test", "samples": 0, "metrics": {}}

    monkeypatch.setattr(evaluate_module, "evaluate", fake_evaluate)
    monkeypatch.setattr(cli.DatasetInfo, "open", lambda root: f"opened {root}")
    assert cli.main(["evaluate", "--data", "D", "--checkpoint", "C", *flags]) == 0
    assert calls[0][0] == "opened D" and calls[0][1]["progress"] is progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_into_a_log_writes_whole_lines_and_a_terminal_gets_the_live_bar():
    log = io.StringIO()
    with progress_bar(total=5, file=log, mininterval=0, desc="steps") as bar:
        assert isinstance(bar, LogLines)
        for _ in range(5):
            bar.update(1)
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    assert text.splitlines()[-1].startswith("steps: 100%") and "5/5" in text.splitlines()[-1]
    live = progress_bar(total=5, file=Terminal())
    assert not isinstance(live, LogLines)
    live.close()
    assert progress_bar(total=5, file=log, enabled=False).disable


def test_a_train_run_piped_to_a_file_writes_no_carriage_returns(small_dataset, tmp_path):
    log = tmp_path / "train.log"
    command = [
        sys.executable, "-m", "fgbg_utils", "train", "--data", str(small_dataset), "--out", str(tmp_path / "run"),
        "--steps", "3", "--sizes", "32", "--batch-size", "4", "--workers", "0", "--val-samples", "4",
    ]  # fmt: skip
    with log.open("wb") as output:
        done = subprocess.run(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, timeout=300)
    text = log.read_bytes()
    assert done.returncode == 0, text[-2000:]
    assert b"\r" not in text
    assert b"3/3" in text  # the bar's last line is there, as a line


def test_a_resume_with_another_recipe_is_refused(small_dataset, tmp_path, capsys):
    base = ["train", "--data", str(small_dataset), "--out", str(tmp_path / "run"), "--no-progress"]
    small = ["--sizes", "32", "--batch-size", "4", "--workers", "0", "--val-samples", "4"]
    assert cli.main([*base, *small, "--steps", "2"]) == 0
    assert cli.main([*base, "--resume", "--steps", "2", "--recipe", "full"]) == 2
    error = capsys.readouterr().err
    assert "model 'fgbg_net_refined_wide' (the run's: 'fgbg_net_refined')" in error and "sizes []" in error
