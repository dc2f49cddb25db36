"""The run's metrics log (metrics.json and metrics.csv, one row per validation) and which row is best."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from .store import write_bytes_atomic, write_json_atomic


def best_key(mode: str) -> str:
    return "val_depth_rmse" if mode == "depth" else "val_mask_iou"


def improved(row: dict, best: float | None, mode: str) -> bool:
    value = row.get(best_key(mode))
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best if mode == "depth" else value > best


def read_metrics(out: Path) -> list[dict]:
    path = Path(out) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else []


def write_metrics(out: Path, rows: list[dict]) -> None:
    """metrics.json and metrics.csv, both rewritten whole and atomically."""
    write_json_atomic(Path(out) / "metrics.json", rows)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(Path(out) / "metrics.csv", text.getvalue().encode())
