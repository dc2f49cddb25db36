"""The dataset builder: contents, exactness, determinism, resumption, slices, bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL
from PIL import Image

from fgbg_utils import build as build_module
from fgbg_utils.build import BuildConfig, ensure_dataset, make_dataset
from fgbg_utils.build_assets import BuildInputError
from fgbg_utils.checks import recompute_statistics, verify_dataset
from fgbg_utils.compose import Box, compose, prepare_foreground
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.depth import GroundCamera, encode_depth
from fgbg_utils.manifest import read_manifest
from fgbg_utils.merge import merge
from fgbg_utils.store import encode_jpeg, read_index, read_png, read_sample, shard_name


def shard_digests(root: Path) -> dict[str, str]:
    return {entry["file"]: entry["sha256"] for entry in read_manifest(root)["shards"]}


def test_counts_layout_and_manifest(small_dataset):
    manifest = read_manifest(small_dataset)
    n = SMALL.n_bg * SMALL.n_fg * 2 * SMALL.placements
    assert manifest["counts"]["samples"] == n == 72
    assert manifest["kinds"]["fg_bg"]["count"] == manifest["kinds"]["mask"]["count"] == n
    assert manifest["kinds"]["fg_bg"]["dims"] == [64, 64]
    assert len(manifest["shards"]) == SMALL.n_bg
    rows = read_index(small_dataset / "index.csv")
    assert [r["sample"] for r in rows] == list(range(n))
    for entry in manifest["shards"]:
        with zipfile.ZipFile(small_dataset / entry["file"]) as archive:
            names = archive.namelist()
        assert len(names) == 3 * entry["samples"] + 1
        assert sum(n.startswith("mask/") for n in names) == entry["samples"]
    sizes = sum(p.stat().st_size for p in small_dataset.glob("shard_*.zip"))
    assert manifest["bytes"]["shards"] == sizes
    assert verify_dataset(small_dataset, progress=False) == []


def test_sample_ids_follow_the_documented_order(small_dataset):
    per_bg = SMALL.n_fg * 2 * SMALL.placements
    for row in read_index(small_dataset / "index.csv"):
        expected = row["bg"] * per_bg + (row["fg"] * 2 + row["flip"]) * SMALL.placements
        assert expected <= row["sample"] < expected + SMALL.placements
        assert row["shard"] == shard_name(row["bg"])


def test_samples_recompose_from_index_and_assets(small_dataset):
    """index.csv + bg/ + fg/ determine every sample: masks and depth exactly, fg_bg up to JPEG."""
    manifest = read_manifest(small_dataset)
    worst = 0.0
    for row in read_index(small_dataset / "index.csv"):
        bg_info = manifest["backgrounds"][row["bg"]]
        bg = read_png(small_dataset / bg_info["file"])
        fg = prepare_foreground(
            read_png(small_dataset / manifest["foregrounds"][row["fg"]]["file"]), flip=bool(row["flip"])
        )
        box = Box(row["x"], row["y"], row["w"], row["h"])
        assert box.x >= 0 and box.x + box.w <= 64 and box.y >= 0 and box.y + box.h <= 64
        fg_bg, mask = compose(bg, fg, box)
        stored = read_sample(small_dataset, row)
        np.testing.assert_array_equal(stored["mask"], mask)
        assert mask.any(), "every sample shows its foreground"
        camera = GroundCamera(**bg_info["camera"])
        depth = read_png(small_dataset / bg_info["depth_file"]).copy()
        depth[mask > 0] = encode_depth(camera.row_depth(box.foot_row, 64))
        np.testing.assert_array_equal(stored["depth"], depth)
        mse = np.mean((stored["fg_bg"].astype(float) - fg_bg) ** 2)
        worst = max(worst, mse)
        assert 10 * np.log10(255**2 / mse) > 27, "JPEG tolerance (64 px, quality 90): PSNR above 27 dB"
        with zipfile.ZipFile(small_dataset / row["shard"]) as archive:
            assert archive.read(row["fg_bg"]) == encode_jpeg(fg_bg, SMALL.jpeg_quality)
    assert worst > 0, "fg_bg is stored as JPEG, so it cannot be bit-exact"


def test_statistics_are_exact_over_every_pixel(small_dataset):
    """The manifest's numbers against NumPy float64 over every decoded or recomposed pixel."""
    manifest = read_manifest(small_dataset)
    stats = manifest["statistics"]
    rows = read_index(small_dataset / "index.csv")
    samples = [read_sample(small_dataset, r) for r in rows]
    masks = np.stack([s["mask"] for s in samples]).astype(np.float64) / 255
    depths = np.stack([s["depth"] for s in samples]).astype(np.float64) / 255
    np.testing.assert_allclose(stats["mask"]["mean"], [masks.mean()], rtol=1e-12)
    np.testing.assert_allclose(stats["mask"]["std"], [masks.std()], rtol=1e-12)
    np.testing.assert_allclose(stats["depth"]["mean"], [depths.mean()], rtol=1e-12)
    np.testing.assert_allclose(stats["depth"]["std"], [depths.std()], rtol=1e-12)
    bgs = np.stack([read_png(small_dataset / b["file"]) for b in manifest["backgrounds"]]).astype(np.float64) / 255
    np.testing.assert_allclose(stats["bg"]["mean"], bgs.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(stats["bg"]["std"], bgs.std(axis=(0, 1, 2)), rtol=1e-12)
    composed = []
    for row in rows:
        bg = read_png(small_dataset / manifest["backgrounds"][row["bg"]]["file"])
        fg = prepare_foreground(read_png(small_dataset / manifest["foregrounds"][row["fg"]]["file"]), bool(row["flip"]))
        composed.append(compose(bg, fg, Box(row["x"], row["y"], row["w"], row["h"]))[0])
    composed = np.stack(composed).astype(np.float64) / 255
    np.testing.assert_allclose(stats["fg_bg"]["mean"], composed.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(stats["fg_bg"]["std"], composed.std(axis=(0, 1, 2)), rtol=1e-12)
    decoded = np.stack([s["fg_bg"] for s in samples]).astype(np.float64) / 255
    assert np.abs(decoded.mean(axis=(0, 1, 2)) - composed.mean(axis=(0, 1, 2))).max() < 2e-3


def test_recomputed_statistics_match_the_files(small_dataset):
    manifest = read_manifest(small_dataset)
    recomputed = recompute_statistics(DatasetInfo.open(small_dataset), workers=1, progress=False)
    for kind in ("bg", "fg_bg", "mask", "depth"):
        assert recomputed[kind]["histogram"] == manifest["statistics"][kind]["histogram"], kind
    rows = read_index(small_dataset / "index.csv")
    decoded = np.stack([read_sample(small_dataset, r)["fg_bg"] for r in rows]).astype(np.float64) / 255
    np.testing.assert_allclose(recomputed["fg_bg_decoded"]["mean"], decoded.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(recomputed["fg_bg_decoded"]["std"], decoded.std(axis=(0, 1, 2)), rtol=1e-12)


def test_same_seed_same_bytes_other_seed_other_bytes(small_dataset, tmp_path):
    again = tmp_path / "again"
    make_dataset(again, SMALL, workers=1, progress=False)
    assert shard_digests(again) == shard_digests(small_dataset)
    assert (again / "index.csv").read_bytes() == (small_dataset / "index.csv").read_bytes()
    other = tmp_path / "other"
    make_dataset(other, replace(SMALL, seed=SMALL.seed + 1), workers=1, progress=False)
    assert set(shard_digests(other).values()).isdisjoint(shard_digests(small_dataset).values())


def test_slices_merge_into_the_whole_build(small_dataset, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    make_dataset(first, SMALL, workers=1, part=(0, 2), progress=False)
    make_dataset(second, SMALL, workers=1, part=(1, 2), progress=False)
    assert sorted(p.name for p in first.glob("shard_*.zip")) == ["shard_000.zip", "shard_002.zip"]
    assert not (first / "data_manifest.json").exists()
    with pytest.raises(ValueError, match="missing"):
        merge(first)
    with pytest.raises(FileNotFoundError, match=f"merge: no such folder: {tmp_path / 'typo'}"):
        merge(first, [second, tmp_path / "typo"])
    with pytest.raises(FileNotFoundError, match="no slice manifests"):
        merge(tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
    merge(first, [second])
    assert shard_digests(first) == shard_digests(small_dataset)
    merged, whole = read_manifest(first), read_manifest(small_dataset)
    assert merged["statistics"] == whole["statistics"]
    assert (first / "index.csv").read_bytes() == (small_dataset / "index.csv").read_bytes()
    assert verify_dataset(first, progress=False) == []


def test_merge_refuses_slices_drawn_from_other_assets(tmp_path, monkeypatch):
    """A slice built by another kit revision (same settings and images, one foreground drawn at
    another height) must not be joined: its shard records the assets it was drawn from."""
    first, second = tmp_path / "a", tmp_path / "b"
    make_dataset(first, SMALL, workers=1, part=(0, 2), progress=False)
    original = build_module.prepare_assets

    def another_revision(*args, **kwargs):
        assets = original(*args, **kwargs)
        assets["foregrounds"][0]["relative_height"] *= 1.05
        return assets

    monkeypatch.setattr(build_module, "prepare_assets", another_revision)
    make_dataset(second, SMALL, workers=1, part=(1, 2), progress=False)
    with pytest.raises(ValueError, match=r"shards \[1\] were drawn from other assets"):
        merge(first, [second])
    assert not (first / "data_manifest.json").exists()


def test_killed_build_resumes_to_identical_bytes(small_dataset, tmp_path):
    """SIGKILL a real build after its first shard lands; rerunning finishes it, byte-identical."""
    root = tmp_path / "killed"
    config = replace(SMALL, placements=40)
    args = [
        sys.executable,
        "-m",
        "fgbg_utils",
        "make-dataset",
        "--out",
        str(root),
        "--n-bg",
        "3",
        "--n-fg",
        "4",
        "--placements",
        "40",
        "--size",
        "64",
        "--seed",
        str(SMALL.seed),
        "--workers",
        "1",
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (root / shard_name(0)).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert (root / shard_name(0)).exists()
    assert not (root / "data_manifest.json").exists(), "killed before the end: no manifest may claim completeness"
    # A kill inside a write leaves the temporary file; whether this kill landed inside one is luck,
    # so one is planted as well: a half-written next shard and a half-written background.
    planted = [root / f".{shard_name(1)}.partial-999999", root / "bg" / ".bg_001.png.partial-999999"]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PK\x03\x04 half a zip")
    result = make_dataset(root, config, workers=1, progress=False)
    assert 0 in result.shards_kept and result.shards_built
    assert not list(root.rglob(".*partial*")), "temporary files of the killed build were not cleaned"
    reference = tmp_path / "reference"
    make_dataset(reference, config, workers=2, progress=False)
    assert shard_digests(root) == shard_digests(reference)
    assert (root / "index.csv").read_bytes() == (reference / "index.csv").read_bytes()


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_resume_refuses_shards_from_other_settings_before_writing(small_dataset, tmp_path):
    root = tmp_path / "mixed"
    make_dataset(root, SMALL, workers=1, part=(0, 3), progress=False)
    before = file_bytes(root)
    with pytest.raises(ValueError, match="shard_000.zip: built with other settings"):
        make_dataset(root, replace(SMALL, seed=99), workers=1, progress=False)
    assert file_bytes(root) == before, "the demo assets were rewritten before the refusal"


def test_a_build_stopped_before_its_index_has_no_manifest(tmp_path, monkeypatch):
    """The manifest marks a dataset whole, so it is written last."""

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "write_index", stopped)
    with pytest.raises(KeyboardInterrupt):
        make_dataset(tmp_path / "data", SMALL, workers=1, progress=False)
    assert (tmp_path / "data" / shard_name(0)).exists()
    assert not (tmp_path / "data" / "data_manifest.json").exists()


def test_another_dataset_is_never_built_over_and_notebooks_use_it(small_dataset, tmp_path, capsys):
    """A whole build with other settings, or an import, is refused before anything is written;
    `ensure_dataset` (every notebook's first step) uses such a dataset as it is."""
    root = tmp_path / "theirs"
    shutil.copytree(small_dataset, root)
    before = file_bytes(root)
    with pytest.raises(ValueError, match="holds a dataset built with other settings"):
        make_dataset(root, replace(SMALL, seed=99), workers=1, progress=False)
    assert ensure_dataset(root, replace(SMALL, seed=99)).manifest == read_manifest(root)
    assert "using the dataset there (72 samples)" in capsys.readouterr().out
    assert file_bytes(root) == before

    imported = tmp_path / "imported"
    imported.mkdir()
    fake = {"format_version": 1, "generation": {"imported_from": "/course"}}
    (imported / "data_manifest.json").write_text(json.dumps(fake))
    with pytest.raises(ValueError, match="imported from /course; build into another folder"):
        make_dataset(imported, SMALL, workers=1, progress=False)
    assert [p.name for p in imported.iterdir()] == ["data_manifest.json"]


def test_verify_names_corrupt_and_missing_shards(small_dataset, tmp_path):

    root = tmp_path / "copy"
    shutil.copytree(small_dataset, root)
    with open(root / shard_name(1), "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00garbage\x00")
    (root / shard_name(2)).unlink()
    problems = verify_dataset(root, progress=False)
    assert any(shard_name(1) in p and "sha256" in p for p in problems)
    assert any(shard_name(2) in p and "missing" in p for p in problems)


def _rgba(path: Path, size=(40, 60)) -> None:
    image = np.zeros((*size, 4), np.uint8)
    image[5:-5, 5:-5] = (200, 30, 30, 255)
    Image.fromarray(image).save(path)


def _user_assets(tmp_path: Path) -> tuple[Path, Path]:
    bg_dir, fg_dir = tmp_path / "bgs", tmp_path / "fgs"
    bg_dir.mkdir()
    fg_dir.mkdir()
    for i in range(2):
        Image.fromarray(np.full((80, 120, 3), 60 + 40 * i, np.uint8)).save(bg_dir / f"b{i}.jpg")
        _rgba(fg_dir / f"f{i}.png")
    return bg_dir, fg_dir


def test_user_assets_build_with_prior_depth(tmp_path):
    bg_dir, fg_dir = _user_assets(tmp_path)
    config = BuildConfig(n_bg=2, n_fg=2, placements=2, size=64, depth="prior", bg_dir=str(bg_dir), fg_dir=str(fg_dir))
    make_dataset(tmp_path / "out", config, workers=1, progress=False)
    manifest = read_manifest(tmp_path / "out")
    assert manifest["counts"]["samples"] == 16
    assert manifest["generation"]["depth"]["source"] == "prior" and not manifest["generation"]["depth"]["exact"]
    assert "PRIOR" in manifest["generation"]["depth"]["note"]
    assert [b["source"] for b in manifest["backgrounds"]] == [str(bg_dir / "b0.jpg"), str(bg_dir / "b1.jpg")]


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("empty.png", b"", "empty"),
        ("notes.jpg", b"these are not pixels", "not an image"),
        ("cut.png", None, "truncated"),
        ("opaque.png", "opaque", "transparency"),
    ],
)
def test_bad_user_file_stops_before_writing_or_is_skipped(tmp_path, name, content, problem):
    bg_dir, fg_dir = _user_assets(tmp_path)
    bad = fg_dir / name
    if content is None:
        _rgba(tmp_path / "whole.png", (200, 200))
        data = (tmp_path / "whole.png").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif content == "opaque":
        Image.fromarray(np.full((30, 30, 3), 200, np.uint8)).save(bad)
    else:
        bad.write_bytes(content)
    config = BuildConfig(n_bg=2, n_fg=2, placements=1, size=64, depth="prior", bg_dir=str(bg_dir), fg_dir=str(fg_dir))
    out = tmp_path / "out"
    with pytest.raises(BuildInputError) as error:
        make_dataset(out, config, workers=1, progress=False)
    assert name in str(error.value) and problem in str(error.value).lower()
    assert not list(out.rglob("*.*")), "nothing may be written before the inputs are all checked"
    make_dataset(out, config, workers=1, skip_bad=True, progress=False)
    skipped = read_manifest(out)["skipped"]
    assert [Path(s["file"]).name for s in skipped] == [name]
    assert problem in skipped[0]["problem"].lower()


def test_a_bad_input_keeps_a_whole_dataset_whole(tmp_path):
    """A rerun of a finished build whose input went bad stops before writing: the manifest stays,
    the dataset still verifies; a fresh --out is not even created."""
    bg_dir, fg_dir = _user_assets(tmp_path)
    config = BuildConfig(n_bg=2, n_fg=2, placements=1, size=64, depth="prior", bg_dir=str(bg_dir), fg_dir=str(fg_dir))
    root = tmp_path / "out"
    make_dataset(root, config, workers=1, progress=False)
    (bg_dir / "b1.jpg").write_bytes((bg_dir / "b1.jpg").read_bytes()[:100])
    for out in (root, tmp_path / "fresh"):
        with pytest.raises(BuildInputError, match="b1.jpg"):
            make_dataset(out, config, workers=1, progress=False)
    assert verify_dataset(root, progress=False) == []
    assert not (tmp_path / "fresh").exists()


def test_too_few_usable_images_is_an_error(tmp_path):
    bg_dir, fg_dir = _user_assets(tmp_path)
    config = BuildConfig(n_bg=5, n_fg=2, placements=1, size=64, depth="prior", bg_dir=str(bg_dir), fg_dir=str(fg_dir))
    with pytest.raises(BuildInputError, match="--n-bg 2"):
        make_dataset(tmp_path / "out", config, workers=1, progress=False)


def test_cli_builds_and_reports_errors_by_file(tmp_path):
    out = tmp_path / "cli"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "fgbg_utils",
            "make-dataset",
            "--profile",
            "smoke",
            "--n-bg",
            "2",
            "--n-fg",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "16 samples" in run.stdout and "samples/s" in run.stdout
    assert json.loads((out / "data_manifest.json").read_text())["counts"]["samples"] == 16
    verify = subprocess.run([sys.executable, "-m", "fgbg_utils", "verify", str(out)], capture_output=True, text=True)
    assert verify.returncode == 0 and "OK" in verify.stdout
    report = subprocess.run([sys.executable, "-m", "fgbg_utils", "report", str(out)], capture_output=True, text=True)
    assert report.returncode == 0
    assert Image.open(out / "report" / "samples.png").size[0] > 300
    assert "| fg_bg |" in (out / "report" / "README.md").read_text()
    (out / shard_name(1)).unlink()
    verify = subprocess.run([sys.executable, "-m", "fgbg_utils", "verify", str(out)], capture_output=True, text=True)
    assert verify.returncode == 1 and shard_name(1) in verify.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "fgbg_utils",
            "make-dataset",
            "--out",
            str(tmp_path / "x"),
            "--bg-dir",
            str(tmp_path / "nowhere"),
        ],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "nowhere" in missing.stderr and "Traceback" not in missing.stderr


def test_a_resumed_build_redraws_shards_whose_images_changed(tmp_path, monkeypatch):
    """Same settings, but a background file changed in place: a rerun killed while rebuilding its
    shard leaves no manifest, and the next one builds that shard again (its fg_bg shows the new
    background) and keeps the other."""
    bg_dir, fg_dir = _user_assets(tmp_path)
    config = BuildConfig(n_bg=2, n_fg=2, placements=2, size=64, depth="prior", bg_dir=str(bg_dir), fg_dir=str(fg_dir))
    root = tmp_path / "out"
    make_dataset(root, config, workers=1, progress=False)
    Image.fromarray(np.full((80, 120, 3), 220, np.uint8)).save(bg_dir / "b0.jpg")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "build_shard", killed)
    with pytest.raises(KeyboardInterrupt):
        make_dataset(root, config, workers=1, progress=False)
    assert not (root / "data_manifest.json").exists(), "new backgrounds beside old shards: not whole"
    monkeypatch.undo()
    result = make_dataset(root, config, workers=1, progress=False)
    assert result.shards_kept == [1] and result.shards_built == [0]
    assert verify_dataset(root, progress=False) == []
    first = read_sample(root, read_index(root / "index.csv")[0])
    assert abs(int(np.median(first["fg_bg"])) - 220) <= 2
