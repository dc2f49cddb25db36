"""Every registered network trained on the same data, split, seed and time budget, then scored on
the same evenly spaced `unseen_test` samples beside the two baselines: the README's results table.

Per model, `<out>/<model>/` holds the training run (config, metrics, timing.json, the last
checkpoint), `train_summary.json` once training has finished and `eval_compare.json` once it is
scored. Then `<out>/results.json` and `<out>/results.md` (a table to paste in the README, with a
caption stating the budget, threads, split, sizes and samples) are written and the table printed.
Training rates are also given as a ratio to the first model's (fgbg_net by default), measured in
the same run on the same machine.

Rerunning is safe: a model with an `eval_compare.json` made with the same settings is not
retrained; one whose training finished but was not scored is only scored. A model whose training
was killed midway is trained again from scratch, not resumed: `train`'s `minutes` is the budget of
one session, so a resumed run would get a second budget, and its timing.json and minutes would
cover only the last session; restarting keeps every row one uninterrupted run under the same
budget, at the cost of at most one model's budget.

    python benchmarks/compare_models.py                       # every model, 8 min each, demo data
    python benchmarks/compare_models.py --models fgbg_net_refined,fgbg_net_upsampled,fgbg_net --sizes 224 \
        --minutes 10 --lr 6e-3 --threads 2 --eval-samples 512   # the README's refinement ablation
    python benchmarks/compare_models.py --data runs/smoke/data --out /tmp/compare --minutes 0.1 --eval-samples 8
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from fgbg_utils.build import ensure_dataset, profile_config
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.evaluate import evaluate
from fgbg_utils.losses import NonFiniteLossError
from fgbg_utils.models import DEFAULT_MODEL, MODELS, build_model, count_parameters
from fgbg_utils.models.costs import flops_per_sample
from fgbg_utils.runtime import default_device, describe_runtime, get_profile, runs_dir
from fgbg_utils.store import MANIFEST_NAME, write_bytes_atomic, write_json_atomic
from fgbg_utils.train import train
from fgbg_utils.train_config import TrainConfig

SPLIT_FAMILY = "unseen"
TEST_SPLIT = "unseen_test"
VALIDATION_SAMPLES = 64
"""The run's own validation (its metrics log) only: the comparison is the evaluation afterwards."""
FLOPS_SIZE = 224
RESULT_NAME = "eval_compare.json"
SUMMARY_NAME = "train_summary.json"
METRIC_COLUMNS = {
    "mask IoU": "mask_iou",
    "mask IoU (dataset)": "mask_iou_dataset",
    "Dice": "mask_dice",
    "depth RMSE": "depth_rmse",
    "δ1": "depth_delta1",
}


def model_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODELS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"--models: unknown {unknown or text!r}; choose from {', '.join(MODELS)}")
    return names


def sizes_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(size) for size in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--sizes takes comma-separated pixels, e.g. 64,96, not {text!r}") from error


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=runs_dir() / "demo" / "data", help="built if it has no manifest")
    parser.add_argument("--out", type=Path, default=runs_dir() / "compare")
    parser.add_argument(
        "--models",
        type=model_list,
        default=list(MODELS),
        help=f"comma-separated; the first is the one rates are compared to (default: all, {DEFAULT_MODEL} first)",
    )
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget per model")
    parser.add_argument(
        "--sizes", type=sizes_list, default=(), help="progressive training sizes (default: the dataset's)"
    )
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-samples", type=int, default=128, help=f"evenly spaced {TEST_SPLIT} samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 lets two jobs share two cores)")
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> dict:
    """What makes two rows comparable; a stored result made with other settings is not reused."""
    return {
        "data": str(args.data.resolve()),
        "split": SPLIT_FAMILY,
        "test_split": TEST_SPLIT,
        "minutes": args.minutes,
        "sizes": list(args.sizes),
        "lr": args.lr,
        "batch_size": args.batch_size,
        "eval_samples": args.eval_samples,
        "seed": args.seed,
        "threads": args.threads,
    }


def ensure_data(data: Path) -> None:
    """Build the demo dataset into `data` when it holds none (an existing build is never touched)."""
    if not (data / MANIFEST_NAME).exists():
        print(f"{data}: no dataset, building the demo profile's")
        ensure_dataset(data, profile_config(get_profile("demo")))


def stored_result(path: Path, settings: dict) -> dict | None:
    """The model's stored result if it was made with these settings; an error if with others."""
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    changed = sorted(key for key in settings if record["settings"].get(key) != settings[key])
    if changed:
        raise SystemExit(
            f"error: {path} was made with other settings ({', '.join(changed)}); "
            "delete it or choose another --out to compare under these"
        )
    return record


def train_model(name: str, run: Path, args: argparse.Namespace) -> dict:
    """Train `name` into `run` from scratch (any unfinished run there is removed first)."""
    if run.exists():
        print(f"{name}: {run} holds an unfinished run, training again from scratch")
        shutil.rmtree(run)
    config = TrainConfig(
        data=str(args.data),
        out=str(run),
        model=name,
        split=SPLIT_FAMILY,
        lr=args.lr,
        batch_size=args.batch_size,
        sizes=args.sizes,
        minutes=args.minutes,
        seed=args.seed,
        workers=0,
        checkpoint_every_minutes=None,
        val_samples=VALIDATION_SAMPLES,
    )
    summary = train(config)
    write_json_atomic(run / SUMMARY_NAME, summary)
    return summary


def training_record(run: Path, summary: dict, batch_size: int) -> dict:
    """Steps, images seen, minutes and images/s of the run (timing.json: timed steps only)."""
    timing = json.loads((run / "timing.json").read_text())
    return {
        "steps": summary["steps"],
        "images_seen": summary["steps"] * batch_size,
        "train_minutes": summary["minutes"],
        "stopped_by": summary["stopped"],
        "images_per_s": timing["images_per_s"],
        "timing": timing,
    }


def compare_one(name: str, args: argparse.Namespace, settings: dict) -> dict:
    """The model's stored result, else train (unless finished) and score it, and store that."""
    run = args.out / name
    path = run / RESULT_NAME
    record = stored_result(path, settings)
    if record is not None:
        print(f"{name}: {path} exists, not retrained")
        return record
    model = build_model(name)
    record = {
        "settings": settings,
        "model": name,
        "parameters": count_parameters(model),
        "gflops_224": flops_per_sample(model, FLOPS_SIZE) / 1e9,
    }
    summary_path = run / SUMMARY_NAME
    if summary_path.exists():
        print(f"{name}: training finished earlier ({summary_path}), scoring it")
        summary = json.loads(summary_path.read_text())
    else:
        try:
            summary = train_model(name, run, args)
        except NonFiniteLossError as error:
            print(f"{name}: diverged: {error}")
            record["diverged"] = str(error)
            write_json_atomic(path, record)
            return record
    record["training"] = training_record(run, summary, args.batch_size)
    record["evaluation"] = evaluate(
        DatasetInfo.open(args.data),
        run / "checkpoints" / "last.pt",
        split=TEST_SPLIT,
        batch_size=args.batch_size,
        limit=args.eval_samples,
    )
    write_json_atomic(path, record)
    return record


def same_samples(records: list[dict]) -> dict:
    """The evaluation shared by every scored record, checked to be on the same samples and size."""
    scored = [record["evaluation"] for record in records if "evaluation" in record]
    if not scored:
        raise SystemExit("error: no model was scored (every one diverged)")
    first = scored[0]
    for other in scored[1:]:
        if (other["sample_ids"], other["size"]) != (first["sample_ids"], first["size"]):
            raise SystemExit(f"error: {other['checkpoint']} was scored on other samples or at another size")
    return first


def results(records: list[dict], settings: dict) -> dict:
    """The table's data: one row per model (rates also as a ratio to the first), the baselines."""
    shared = same_samples(records)
    first_rate = records[0].get("training", {}).get("images_per_s")
    rows = []
    for record in records:
        row = {key: record[key] for key in ("model", "parameters", "gflops_224")}
        if "diverged" in record:
            rows.append({**row, "diverged": record["diverged"]})
            continue
        training = {key: value for key, value in record["training"].items() if key != "timing"}
        rate = training["images_per_s"]
        row |= training | {"images_per_s_vs_first": rate / first_rate if first_rate else None}
        rows.append(row | {"step": record["evaluation"]["step"], "metrics": record["evaluation"]["metrics"]})
    return {
        "settings": settings,
        "runtime": describe_runtime(),
        "device": default_device(),
        "split": shared["split"],
        "size": shared["size"],
        "samples": shared["samples"],
        "sample_ids": shared["sample_ids"],
        "models": rows,
        "baselines": shared["baselines"],
    }


def metric_cells(metrics: dict) -> list[str]:
    return [f"{metrics[key]:.3f}" if key in metrics else "–" for key in METRIC_COLUMNS.values()]


def markdown(table: dict) -> str:
    """The results table with its one-line caption, ready for the README."""
    settings, first = table["settings"], table["models"][0]["model"]
    sizes = " → ".join(f"{size}" for size in settings["sizes"])
    sizes = f"sizes {sizes} px" if sizes else "at the dataset's size"
    caption = (
        f"Each network trained for {settings['minutes']:g} min ({settings['threads']} torch thread(s) on "
        f"{table['device']}, batch {settings['batch_size']}, lr {settings['lr']:g}, seed {settings['seed']}, "
        f"{sizes}) on the `{settings['split']}` split, scored at {table['size']} px on the same "
        f"{table['samples']} evenly spaced `{table['split']}` samples; images/s (× {first}) is measured in the "
        "same run."
    )
    header = [
        "model",
        "parameters",
        f"GFLOPs / {FLOPS_SIZE} px",
        "steps",
        "images seen",
        "train min",
        f"images/s (× {first})",
        *METRIC_COLUMNS,
    ]
    lines = [caption, "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in table["models"]:
        cells = [f"`{row['model']}`", f"{row['parameters']:,}", f"{row['gflops_224']:.2f}"]
        if "diverged" in row:
            cells += ["diverged (non-finite loss)"] + ["–"] * (len(header) - len(cells) - 1)
        else:
            ratio = row["images_per_s_vs_first"]
            rate = f"{row['images_per_s']:.1f} ({ratio:.2f}×)" if ratio is not None else f"{row['images_per_s']:.1f}"
            cells += [f"{row['steps']:,}", f"{row['images_seen']:,}", f"{row['train_minutes']:.1f}", rate]
            cells += metric_cells(row["metrics"])
        lines.append("| " + " | ".join(cells) + " |")
    difference, depth = table["baselines"]["difference_mask"], table["baselines"]["background_depth"]
    baselines = {
        f"difference mask (threshold {difference['threshold']:g} from {difference['threshold_split']})": difference,
        "background depth": depth,
    }
    for label, metrics in baselines.items():
        lines.append("| " + " | ".join([label, *["–"] * 6, *metric_cells(metrics)]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(describe_runtime())
    print(f"torch threads: {torch.get_num_threads()}")
    ensure_data(args.data)
    settings = settings_of(args)
    print(
        f"{len(args.models)} models x {args.minutes:g} min, sizes {list(args.sizes)}, lr {args.lr:g}, "
        f"batch {args.batch_size}, split {SPLIT_FAMILY}, {args.eval_samples} {TEST_SPLIT} samples -> {args.out}"
    )
    records = []
    for number, name in enumerate(args.models, 1):
        print(f"\n[{number}/{len(args.models)}] {name}", flush=True)
        records.append(compare_one(name, args, settings))
    table = results(records, settings)
    text = markdown(table)
    write_json_atomic(args.out / "results.json", table)
    write_bytes_atomic(args.out / "results.md", text.encode())
    print(f"\n{text}\nwrote {args.out / 'results.json'} and {args.out / 'results.md'}")


if __name__ == "__main__":
    main()
