"""What a notebook run came to, read back from the files it left (nothing is recomputed).

From ``RUNS/<profile>/``: ``data/data_manifest.json`` (dataset size), ``train/config.json`` and
``train/timing.json`` (model, training time), ``train/eval_unseen.json`` (notebook 06's scores on
unseen scenes). From ``OUT/notebooks/``: ``timings.json`` and the executed notebooks, whose output
holds the build rate when the run built the dataset: the manifest records no timings, so that
equal builds keep equal manifests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

from .course import NOTEBOOK_GLOB, TIMINGS_NAME
from .store import MANIFEST_NAME, write_bytes_atomic, write_json_atomic

NOT_FOUND = "not found"


def _read_json(path: Path, missing: list[str]):
    if not path.exists():
        missing.append(str(path))
        return None
    return json.loads(path.read_text())


def measured_build(notebooks: Path, data_root: Path) -> dict | None:
    """The build of `data_root` printed (by `build.print_summary`) in the executed notebooks of
    `notebooks`, or None when the run found the dataset already built."""
    line = re.compile(rf"^{re.escape(str(data_root))}: [\d,]+ samples .*; built ([\d,]+) in ([\d.]+) s", re.MULTILINE)
    for path in sorted(Path(notebooks).glob(NOTEBOOK_GLOB)):
        for cell in nbformat.read(path, as_version=4).cells:
            for output in cell.get("outputs", []):
                match = line.search(output.get("text", "")) if output.get("output_type") == "stream" else None
                if match and int(match[1].replace(",", "")) > 0:
                    samples, seconds = int(match[1].replace(",", "")), float(match[2])
                    return {"samples": samples, "seconds": seconds, "samples_per_s": samples / seconds}
    return None


def model_parameters(name: str) -> int:
    from .models import build_model, count_parameters

    return count_parameters(build_model(name))


def _dataset(manifest: dict | None, build: dict | None) -> dict | None:
    if manifest is None:
        return None
    return {
        "samples": manifest["counts"]["samples"],
        "shards": manifest["counts"]["shards"],
        "size": manifest["generation"]["parameters"]["size"],
        "mib": manifest["bytes"]["total"] / 2**20,
        "build": build,
    }


def _training(config: dict | None, timing: dict | None) -> dict | None:
    """Minutes spent in training steps: timing.json's images/s is steps x batch / timed seconds
    (validation and checkpoints excluded), so the seconds come back exactly."""
    if config is None or timing is None:
        return None
    seconds = timing["steps"] * config["batch_size"] / timing["images_per_s"] if timing["images_per_s"] else 0.0
    return {"steps": timing["steps"], "minutes_in_steps": seconds / 60, "budget_minutes": config.get("minutes")}


def _unseen(scores: dict | None) -> dict | None:
    if scores is None:
        return None
    metrics, baselines = scores["metrics"], scores.get("baselines", {})
    mask_baseline, depth_baseline = baselines.get("difference_mask", {}), baselines.get("background_depth", {})
    return {
        "split": scores["split"],
        "images": metrics["images"],
        "size": scores["size"],
        "step": scores.get("step"),
        "mask_iou": metrics["mask_iou"],
        "depth_rmse": metrics["depth_rmse"],
        "depth_rmse_m": metrics.get("depth_rmse_m"),
        "depth_delta1": metrics["depth_delta1"],
        "depth_object_rmse": metrics.get("depth_object_rmse"),
        "baseline_mask_iou": mask_baseline.get("mask_iou"),
        "baseline_depth_rmse": depth_baseline.get("depth_rmse"),
        "baseline_depth_delta1": depth_baseline.get("depth_delta1"),
        "baseline_depth_object_rmse": depth_baseline.get("depth_object_rmse"),
    }


def summarise(run_root: Path, out: Path) -> dict:
    """The run's summary: dataset and build rate, model, training time, unseen scores and
    per-notebook minutes. Files that are not there are listed under "missing"."""
    run_root, out = Path(run_root), Path(out)
    missing: list[str] = []
    timings = _read_json(out / "notebooks" / TIMINGS_NAME, missing) or {}
    manifest = _read_json(run_root / "data" / MANIFEST_NAME, missing)
    config = _read_json(run_root / "train" / "config.json", missing)
    timing = _read_json(run_root / "train" / "timing.json", missing)
    scores = _read_json(run_root / "train" / "eval_unseen.json", missing)
    name = (scores or {}).get("model") or (config or {}).get("model")
    return {
        "profile": timings.get("profile"),
        "dataset": _dataset(manifest, measured_build(out / "notebooks", run_root / "data")),
        "model": {"name": name, "parameters": model_parameters(name)} if name else None,
        "training": _training(config, timing),
        "unseen": _unseen(scores),
        "notebooks": [
            {"name": row["name"], "minutes": row["seconds"] / 60, "status": row["status"]}
            for row in timings.get("notebooks", [])
        ],
        "missing": missing,
    }


def _note(*parts: str | None) -> str:
    """The parts that are there as ' (a; b)', or '' when none is."""
    kept = [part for part in parts if part]
    return f" ({'; '.join(kept)})" if kept else ""


def _baseline(value: float | None, name: str) -> str | None:
    return None if value is None else f"{name} baseline {value:.4f}"


def _rows(summary: dict) -> list[tuple[str, str]]:
    dataset, model, training, unseen = (summary[key] for key in ("dataset", "model", "training", "unseen"))
    rows = []
    if dataset:
        size = f"{dataset['samples']:,} samples at {dataset['size']} px in {dataset['shards']} shards"
        rows.append(("dataset", f"{size}, {dataset['mib']:,.1f} MiB"))
        build = dataset["build"]
        rate = (
            f"{build['samples_per_s']:,.0f} samples/s ({build['samples']:,} built in {build['seconds']:.1f} s)"
            if build
            else "not measured: the dataset was built before this run"
        )
        rows.append(("build rate", rate))
    else:
        rows.append(("dataset", NOT_FOUND))
    rows.append(("model", f"{model['name']}, {model['parameters']:,} parameters" if model else NOT_FOUND))
    if training:
        budget = training["budget_minutes"]
        limit = f"budget {budget:g} min" if budget else "fixed step count"
        minutes = f"{training['minutes_in_steps']:.1f} min in training steps"
        rows.append(("training", f"{training['steps']:,} steps, {minutes} ({limit})"))
    else:
        rows.append(("training", NOT_FOUND))
    if unseen:
        metres = f", {unseen['depth_rmse_m']:.2f} m" if unseen["depth_rmse_m"] is not None else ""
        images = f"{unseen['split']}, {unseen['images']:,} images at {unseen['size']} px"
        mask_baseline = _baseline(unseen["baseline_mask_iou"], "difference-mask")
        rmse_baseline = _baseline(unseen["baseline_depth_rmse"], "background-depth")
        delta_baseline = _baseline(unseen["baseline_depth_delta1"], "background-depth")
        rows += [
            ("unseen mask IoU", f"{unseen['mask_iou']:.4f}{_note(images, mask_baseline)}"),
            ("unseen depth RMSE", f"{unseen['depth_rmse']:.4f}{_note(f'0..1 inverse depth{metres}', rmse_baseline)}"),
            ("unseen depth δ1", f"{unseen['depth_delta1']:.4f}{_note(delta_baseline)}"),
        ]
        if unseen.get("depth_object_rmse") is not None:  # scores of earlier revisions lack it
            object_baseline = _baseline(unseen["baseline_depth_object_rmse"], "background-depth")
            note = _note("inside the true mask", object_baseline)
            rows.append(("unseen depth RMSE on the object", f"{unseen['depth_object_rmse']:.4f}{note}"))
    else:
        rows.append(("unseen scores", NOT_FOUND))
    return rows


def summary_markdown(summary: dict) -> str:
    """The summary as two Markdown tables (results, then minutes per notebook)."""
    lines = [f"## Notebook run, profile {summary['profile'] or 'unknown'}", "", "| | |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in _rows(summary)]
    lines += ["", "| notebook | minutes | status |", "| --- | ---: | --- |"]
    lines += [f"| {row['name']} | {row['minutes']:.1f} | {row['status']} |" for row in summary["notebooks"]]
    lines.append(f"| total | {sum(row['minutes'] for row in summary['notebooks']):.1f} | |")
    if summary["missing"]:
        lines += ["", "Not found: " + ", ".join(summary["missing"])]
    return "\n".join(lines) + "\n"


def write_summary(out: Path, summary: dict) -> tuple[Path, Path]:
    """OUT/summary.json and OUT/summary.md, atomically."""
    json_path, markdown_path = Path(out) / "summary.json", Path(out) / "summary.md"
    write_json_atomic(json_path, summary)
    write_bytes_atomic(markdown_path, summary_markdown(summary).encode())
    return json_path, markdown_path
