"""A run reads its dataset's manifest once and index.csv once (parsed and hashed from the same bytes)."""

import json
import subprocess
import sys
from pathlib import Path

COUNT_OPENS = """
import collections, json, os, sys
opened = collections.Counter()
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        opened[os.path.basename(os.fsdecode(args[0]))] += 1
sys.addaudithook(hook)
from fgbg_utils.cli import main
code = main(sys.argv[1:])
print("OPENED " + json.dumps({name: opened[name] for name in ("data_manifest.json", "index.csv")}))
sys.exit(code)
"""


def opens(*argv: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", COUNT_OPENS, *argv],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("OPENED "))
    return json.loads(line.removeprefix("OPENED "))


def test_train_and_evaluate_read_the_dataset_once(small_dataset, tmp_path):
    run = tmp_path / "run"
    train = ["train", "--data", str(small_dataset), "--out", str(run), "--steps", "3", "--workers", "0"]
    assert opens(*train, "--sizes", "32", "--batch-size", "4", "--val-samples", "4", "--no-progress") == {
        "data_manifest.json": 1,
        "index.csv": 1,
    }
    checkpoint = run / "checkpoints" / "last.pt"
    evaluate = ["evaluate", "--data", str(small_dataset), "--checkpoint", str(checkpoint), "--limit", "4"]
    assert opens(*evaluate, "--no-progress") == {"data_manifest.json": 1, "index.csv": 1}
