"""Getting a dataset in place: copying it with checksums, extracting zips safely, importing the
course's plain layout."""

import io
import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgbg_utils.checks import recompute_statistics, verify_dataset
from fgbg_utils.course_layout import export_course_layout as export_course_layout_of_package
from fgbg_utils.course_layout import import_course_layout, mask_box, natural_key
from fgbg_utils.data import FgBgDataset
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.extract import copy_dataset, safe_extract
from fgbg_utils.manifest import read_manifest
from fgbg_utils.report import write_report
from fgbg_utils.runtime import mount_drive
from fgbg_utils.splits import compute_splits
from fgbg_utils.store import read_index, read_png, read_sample, read_shard_meta
from fgbg_utils.train import train
from fgbg_utils.train_config import TrainConfig
from fgbg_utils.virtual_dataset import VirtualFgBgDataset

# --- safe_extract ---------------------------------------------------------------------------


def make_zip(path: Path, members: list[tuple[str, bytes]], compression=zipfile.ZIP_STORED, attrs=None) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            info.external_attr = (attrs or {}).get(name, 0o100644 << 16)
            archive.writestr(info, data)
    return path


def all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_extracted_files_keep_their_members_times(tmp_path):
    """Extracting the same zip again gives the same modification times (an import's fingerprint
    uses them), which are the members' own, not the time of extraction."""
    archive = tmp_path / "course.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo("fg_bg/00001.jpg", date_time=(2020, 5, 17, 14, 3, 22)), b"jpeg bytes")
    extracted = safe_extract(archive, tmp_path / "once")[0]
    assert extracted.stat().st_mtime == time.mktime((2020, 5, 17, 14, 3, 22, 0, 0, -1))
    again = safe_extract(archive, tmp_path / "twice")[0]
    assert again.stat().st_mtime_ns == extracted.stat().st_mtime_ns


@pytest.mark.parametrize(
    "name, reason",
    [
        ("../x.txt", "'..'"),
        ("/tmp/abs.txt", "absolute"),
        ("a/../../x.txt", "'..'"),
        ("a\\..\\..\\x.txt", "backslash"),
        ("C:/x.txt", "drive letter"),
    ],
)
def test_zip_slip_names_are_refused(tmp_path, name, reason):
    archive = make_zip(tmp_path / "bad.zip", [("ok.txt", b"fine"), (name, b"evil")])
    dest = tmp_path / "sandbox" / "dest"
    with pytest.raises(ValueError) as error:
        safe_extract(archive, dest)
    message = str(error.value)
    assert str(archive) in message and repr(name) in message and reason in message
    assert all_files(tmp_path) == {"bad.zip"}, "nothing may be written, inside dest or out of it"


def test_symlink_member_is_refused(tmp_path):
    archive = make_zip(
        tmp_path / "link.zip",
        [("ok.txt", b"fine"), ("link", b"/etc/passwd")],
        attrs={"link": 0o120777 << 16},
    )
    with pytest.raises(ValueError, match="'link': symbolic link"):
        safe_extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_other_refusals(tmp_path):
    device = make_zip(tmp_path / "dev.zip", [("fifo", b"")], attrs={"fifo": 0o010644 << 16})
    with pytest.raises(ValueError, match="not a regular file"):
        safe_extract(device, tmp_path / "d1")
    duplicate = tmp_path / "dup.zip"
    with pytest.warns(UserWarning, match="Duplicate name"):
        make_zip(duplicate, [("a.txt", b"1"), ("a.txt", b"2")])
    with pytest.raises(ValueError, match="'a.txt': duplicate name"):
        safe_extract(duplicate, tmp_path / "d2")
    many = make_zip(tmp_path / "many.zip", [(f"{i}.txt", b"x") for i in range(11)])
    with pytest.raises(ValueError, match="more than max_members=10"):
        safe_extract(many, tmp_path / "d3", max_members=10)
    (tmp_path / "notzip.zip").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a readable zip"):
        safe_extract(tmp_path / "notzip.zip", tmp_path / "d4")
    assert not any((tmp_path / d).exists() for d in ("d1", "d2", "d3", "d4"))


def test_existing_symlink_in_dest_is_not_followed(tmp_path):
    outside, dest = tmp_path / "outside", tmp_path / "dest"
    outside.mkdir()
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    archive = make_zip(tmp_path / "a.zip", [("sub/x.txt", b"evil")])
    with pytest.raises(ValueError, match="existing symlink"):
        safe_extract(archive, dest)
    assert list(outside.iterdir()) == []
    assert all_files(dest) == {"sub"}, "no staging or partial files left behind"


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("ok.txt", b"hello")
        archive.writestr("zeros.bin", bytes(50 * 2**20))
    assert path.stat().st_size < 2**20
    return path


def test_zip_bomb_refused_by_ratio(bomb, tmp_path):
    with pytest.raises(ValueError, match=r"'zeros.bin': compression ratio [\d,]+ over max_ratio=200"):
        safe_extract(bomb, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_zip_bomb_refused_by_max_bytes(bomb, tmp_path):
    with pytest.raises(ValueError, match="more than max_bytes=1,000,000"):
        safe_extract(bomb, tmp_path / "dest", max_bytes=1_000_000, max_ratio=1e9)


def test_lying_sizes_are_caught_while_streaming(bomb, tmp_path):
    """A bomb whose central directory declares a tiny size passes the declared checks; the
    bytes counted while decompressing stop it, and nothing is left under a real name."""
    data = bytearray(bomb.read_bytes())
    with zipfile.ZipFile(bomb) as archive:
        info = archive.getinfo("zeros.bin")
    real = (50 * 2**20).to_bytes(4, "little")
    fake = (1000).to_bytes(4, "little")
    assert data.count(real) == 2  # local header and central directory
    data = data.replace(real, fake)
    (tmp_path / "liar.zip").write_bytes(bytes(data))
    with zipfile.ZipFile(tmp_path / "liar.zip") as archive:
        assert archive.getinfo("zeros.bin").file_size == 1000 and info.compress_size > 1000
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match="'zeros.bin'"):
        safe_extract(tmp_path / "liar.zip", dest, max_bytes=100_000)
    assert all_files(dest) == set()


def test_limits_hold_on_the_bytes_actually_read(tmp_path, monkeypatch):
    """Declared sizes pass, but a member yields more than it declared: streaming stops it."""
    archive = make_zip(tmp_path / "a.zip", [("a.bin", b"x" * 1000), ("b.bin", b"y" * 1000)])
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info, *args, **kw: io.BytesIO(b"z" * 5_000_000))
    with pytest.raises(ValueError, match="'a.bin': more bytes than its declared 1,000"):
        safe_extract(archive, tmp_path / "d1")
    with pytest.raises(ValueError, match="'a.bin': extraction passed max_bytes=10,000"):
        safe_extract(archive, tmp_path / "d2", max_bytes=10_000)
    assert all_files(tmp_path / "d1") == all_files(tmp_path / "d2") == set()


def test_normal_archive_extracts_byte_identically(tmp_path):
    members = [
        ("readme.txt", b"hello\n"),
        ("data/", b""),
        ("data/a.bin", os.urandom(100_000)),
        ("data/deep/b.txt", b"text " * 1000),
        ("./c.txt", b"dot"),
    ]
    archive = make_zip(tmp_path / "good.zip", members, compression=zipfile.ZIP_DEFLATED, attrs={"data/": 0o40755 << 16})
    dest = tmp_path / "dest"
    files = safe_extract(archive, dest)
    assert [p.relative_to(dest.resolve()).as_posix() for p in files] == [
        "readme.txt",
        "data/a.bin",
        "data/deep/b.txt",
        "c.txt",
    ]
    for name, data in members:
        if not name.endswith("/"):
            assert (dest / name).read_bytes() == data
    assert not [p for p in dest.iterdir() if p.name.startswith(".")], "staging folder removed"


def test_shards_extract_with_ratio_one(small_dataset, tmp_path):
    shard = small_dataset / "shard_000.zip"
    files = safe_extract(shard, tmp_path / "x", max_ratio=1.0)
    with zipfile.ZipFile(shard) as archive:
        assert len(files) == len(archive.namelist())
        assert all((tmp_path / "x" / n).read_bytes() == archive.read(n) for n in archive.namelist())


# --- copy_dataset ---------------------------------------------------------------------------


def test_copy_dataset_copies_verifies_and_resumes(small_dataset, tmp_path):
    dst = tmp_path / "local"
    assert copy_dataset(small_dataset, dst, progress=False) == dst
    assert verify_dataset(dst, progress=False) == []
    assert (dst / "index.csv").read_bytes() == (small_dataset / "index.csv").read_bytes()
    assert (dst / "data_manifest.json").read_bytes() == (small_dataset / "data_manifest.json").read_bytes()
    shards = sorted(dst.glob("shard_*.zip"))
    assert len(shards) == 3
    stamps = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in shards}

    # A cut-off copy: one shard damaged, one missing, no manifest. The rerun redoes only those.
    shards[0].write_bytes(shards[0].read_bytes()[:100])
    shards[1].unlink()
    (dst / "data_manifest.json").unlink()
    copy_dataset(small_dataset, dst, progress=False)
    assert verify_dataset(dst, progress=False) == []
    again = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(dst.glob("shard_*.zip"))}
    assert again["shard_002.zip"] == stamps["shard_002.zip"], "a good shard is not copied again"
    assert again["shard_000.zip"] != stamps["shard_000.zip"] and again["shard_001.zip"] != stamps["shard_001.zip"]
    assert not list(dst.rglob(".*partial*"))


def test_copy_dataset_names_a_corrupt_source_shard(small_dataset, tmp_path):
    src = tmp_path / "drive"
    shutil.copytree(small_dataset, src)
    dst = tmp_path / "local"
    copy_dataset(src, dst, progress=False)
    good = (dst / "shard_002.zip").read_bytes()
    (dst / "shard_001.zip").unlink()  # the earlier copy's manifest stays: the failed rerun must remove it
    data = bytearray((src / "shard_001.zip").read_bytes())
    data[500] ^= 0xFF
    (src / "shard_001.zip").write_bytes(bytes(data))
    (src / "shard_002.zip").write_bytes(b"garbage")
    with pytest.raises(ValueError) as error:
        copy_dataset(src, dst, progress=False)
    assert "shard_001.zip: sha256" in str(error.value)
    assert "shard_002.zip: sha256" in str(error.value)
    assert "shard_000.zip" not in str(error.value)
    assert (dst / "shard_002.zip").read_bytes() == good, "a good copy is not deleted or replaced"
    assert not (dst / "shard_001.zip").exists() and not (dst / "data_manifest.json").exists()
    assert not list(dst.rglob(".*partial*"))


def test_copy_dataset_refuses_traversal_in_the_manifest(small_dataset, tmp_path):
    src = tmp_path / "drive"
    shutil.copytree(small_dataset, src)
    manifest = (src / "data_manifest.json").read_text().replace('"file": "shard_000.zip"', '"file": "../evil.zip"')
    (src / "data_manifest.json").write_text(manifest)
    with pytest.raises(ValueError, match="'..' component"):
        copy_dataset(src, tmp_path / "local", progress=False)
    assert not (tmp_path / "evil.zip").exists()


# --- import_course_layout ---------------------------------------------------------------------


def export_course_layout(root: Path, folder: Path, stems: str = "sample") -> int:
    """Write the built dataset in the course's plain layout: bg/ and fg_bg/ as JPEG, masks as
    JPEG (as the course did), depth as PNG, fg_bg in sample order so bg = index // per_bg."""
    manifest = read_manifest(root)
    for sub in ("bg", "fg_bg", "mask", "depth"):
        (folder / sub).mkdir(parents=True)
    for info in manifest["backgrounds"]:
        Image.fromarray(read_png(root / info["file"])).save(folder / "bg" / f"bg{info['id']}.png")
    for row in read_index(root / "index.csv"):
        images = read_sample(root, row)
        stem = f"{row['sample']:05d}" if stems == "sample" else f"img_{row['sample']}"
        Image.fromarray(images["fg_bg"]).save(folder / "fg_bg" / f"{stem}.jpg", quality=90)
        mask_stem = stem if stems == "sample" else f"mask_{row['sample']}"
        Image.fromarray(images["mask"]).save(folder / "mask" / f"{mask_stem}.jpg", quality=75)
        Image.fromarray(images["depth"]).save(folder / "depth" / f"{stem}.png")
    return manifest["counts"]["samples_per_background"]


@pytest.fixture(scope="module")
def course_folder(small_dataset, tmp_path_factory) -> tuple[Path, int]:
    folder = tmp_path_factory.mktemp("course") / "course"
    return folder, export_course_layout(small_dataset, folder)


def test_import_course_layout_round_trip(small_dataset, course_folder, tmp_path):
    folder, per_bg = course_folder
    out = tmp_path / "imported"
    path = import_course_layout(folder, out, per_background=per_bg, progress=False)
    assert path == out / "data_manifest.json"
    assert verify_dataset(out, progress=False) == []
    original, imported = read_index(small_dataset / "index.csv"), read_index(out / "index.csv")
    assert len(imported) == len(original) == 72
    for old, new in zip(original, imported, strict=True):
        assert (new["sample"], new["bg"], new["fg"], new["flip"]) == (old["sample"], old["bg"], -1, -1)
        a, b = read_sample(small_dataset, old), read_sample(out, new)
        assert np.array_equal(a["mask"], b["mask"]), f"mask of sample {old['sample']} differs after thresholding"
        assert np.array_equal(a["depth"], b["depth"])
        assert (new["x"], new["y"], new["w"], new["h"]) == mask_box(a["mask"]) != (0, 0, 0, 0)
        with zipfile.ZipFile(out / new["shard"]) as archive:
            kept = archive.read(new["fg_bg"])
        assert kept == (folder / "fg_bg" / f"{old['sample']:05d}.jpg").read_bytes(), "JPEG fg_bg kept byte for byte"
    manifest = read_manifest(out)
    assert manifest["generation"]["imported_from"] == str(folder.resolve())
    assert manifest["counts"]["samples"] == 72 and manifest["counts"]["backgrounds"] == 3
    assert set(manifest["statistics"]) == {"bg", "fg_bg", "mask", "depth"}
    assert (
        manifest["statistics"]["mask"]["histogram"] == read_manifest(small_dataset)["statistics"]["mask"]["histogram"]
    )
    assert all(info["depth_is_prior"] for info in manifest["backgrounds"])
    for info in manifest["backgrounds"]:
        assert np.array_equal(read_png(out / info["file"]), read_png(small_dataset / info["file"]))
    meta = read_shard_meta(out / "shard_001.zip")
    assert meta["sources"][0] == [f"fg_bg/{per_bg:05d}.jpg", f"mask/{per_bg:05d}.jpg", f"depth/{per_bg:05d}.png"]

    # A rerun keeps every shard (same files, same settings); a source file rewritten since (its
    # modification time moved) has its shard imported again.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*.zip")}
    import_course_layout(folder, out, per_background=per_bg, progress=False)
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*.zip")}
    rewritten = folder / "mask" / f"{per_bg:05d}.jpg"
    os.utime(rewritten, ns=(rewritten.stat().st_atime_ns, rewritten.stat().st_mtime_ns + 10**9))
    import_course_layout(folder, out, per_background=per_bg, progress=False)
    again = {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*.zip")}
    assert [name for name in sorted(again) if again[name] != stamps[name]] == ["shard_001.zip"]
    assert verify_dataset(out, progress=False) == []


def test_import_with_mapping_numbers_and_resize(small_dataset, tmp_path):
    """Unpadded numbers sort by value, masks pair by number, a mapping CSV gives the
    backgrounds, and size= resizes (re-encoding fg_bg)."""
    folder = tmp_path / "course"
    per_bg = export_course_layout(small_dataset, folder, stems="numbers")
    lines = ["fg_bg,bg"] + [f"img_{i}.jpg,bg{i // per_bg}.png" for i in range(72)]
    (tmp_path / "map.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    out = tmp_path / "imported"
    import_course_layout(folder, out, mapping=tmp_path / "map.csv", size=32, progress=False, workers=1)
    assert verify_dataset(out, progress=False) == []
    rows = read_index(out / "index.csv")
    assert [r["bg"] for r in rows] == [r["bg"] for r in read_index(small_dataset / "index.csv")]
    meta = read_shard_meta(out / "shard_000.zip")
    assert [s[0] for s in meta["sources"]][:3] == ["fg_bg/img_0.jpg", "fg_bg/img_1.jpg", "fg_bg/img_2.jpg"]
    assert meta["reencoded_fg_bg"] == per_bg
    sample = read_sample(out, rows[5])
    assert sample["fg_bg"].shape == (32, 32, 3) and set(np.unique(sample["mask"])) <= {0, 255}
    assert natural_key("img_2.jpg") < natural_key("img_10.jpg")


def test_import_names_every_problem_before_writing(course_folder, tmp_path):
    source, per_bg = course_folder
    folder = tmp_path / "course"
    shutil.copytree(source, folder)
    (folder / "mask" / "00007.jpg").unlink()
    (folder / "depth" / "00011.png").write_bytes(b"not a png")
    Image.new("L", (40, 40)).save(folder / "depth" / "00012.png")
    out = tmp_path / "imported"
    with pytest.raises(ValueError) as error:
        import_course_layout(folder, out, per_background=per_bg, progress=False)
    message = str(error.value)
    assert "3 problem(s)" in message
    assert f"{folder.resolve()}/fg_bg/00007.jpg: no mask file" in message
    assert "depth/00011.png: not a decodable image" in message
    assert "fg_bg/00012.jpg: size mismatch" in message and "depth 40x40" in message
    assert not out.exists(), "nothing written"


def test_import_checks_background_counts(course_folder, tmp_path):
    folder, per_bg = course_folder
    with pytest.raises(ValueError, match="need 4 full groups, and bg/ holds 3"):
        import_course_layout(folder, tmp_path / "out", per_background=per_bg - 6, progress=False)


def test_mount_drive_does_nothing_off_colab(tmp_path):
    assert mount_drive(tmp_path / "drive") is None
    assert not (tmp_path / "drive").exists()


def test_package_exporter_round_trips_one_background(small_dataset, tmp_path):
    per_bg = export_course_layout_of_package(small_dataset, tmp_path / "plain", backgrounds=1)
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["bg", "depth", "fg_bg", "mask"]
    assert len(list((tmp_path / "plain" / "mask").glob("*.jpg"))) == per_bg
    import_course_layout(tmp_path / "plain", tmp_path / "imported", per_background=per_bg, progress=False)
    assert verify_dataset(tmp_path / "imported", progress=False) == []
    imported = read_index(tmp_path / "imported" / "index.csv")
    assert len(imported) == per_bg
    for old, new in zip(read_index(small_dataset / "index.csv")[:per_bg], imported, strict=True):
        assert np.array_equal(read_sample(small_dataset, old)["mask"], read_sample(tmp_path / "imported", new)["mask"])


def test_an_import_loads_splits_trains_and_reports(small_dataset, course_folder, tmp_path):
    """Every later step reads an import: its size is recorded, the unseen split holds out whole
    backgrounds (the samples' foregrounds are unknown), the statistics recompute to the import's
    own, the report leaves out the foreground's grids, and a training step runs."""
    folder, per_bg = course_folder
    out = tmp_path / "imported"
    import_course_layout(folder, out, per_background=per_bg, progress=False)
    manifest = read_manifest(out)
    assert (
        manifest["generation"]["parameters"]["size"] == read_manifest(small_dataset)["generation"]["parameters"]["size"]
    )

    bg_of = {row["sample"]: row["bg"] for row in read_index(out / "index.csv")}
    train_set, test_set = (
        FgBgDataset(DatasetInfo.open(out), "unseen_train"),
        FgBgDataset(DatasetInfo.open(out), "unseen_test"),
    )
    train_bgs, test_bgs = ({bg_of[int(s)] for s in part.samples} for part in (train_set, test_set))
    assert len(train_set) + len(test_set) == len(bg_of), "no sample left out: every one is train or test"
    assert test_bgs and train_bgs and not train_bgs & test_bgs
    assert len(FgBgDataset(DatasetInfo.open(out), "train")) + len(FgBgDataset(DatasetInfo.open(out), "test")) == len(
        bg_of
    )
    assert (
        FgBgDataset(DatasetInfo.open(out), "test")[0]["fg_bg"].shape[-1] == manifest["generation"]["parameters"]["size"]
    )

    recomputed = recompute_statistics(DatasetInfo.open(out), workers=1, progress=False)
    assert set(recomputed) == {"bg", "fg_bg", "mask", "depth"}
    for kind, stats in recomputed.items():
        np.testing.assert_allclose(stats["mean"], manifest["statistics"][kind]["mean"], rtol=1e-12)

    readme = write_report(DatasetInfo.open(out))
    assert sorted(p.name for p in readme.parent.glob("grid_*.png")) == [
        "grid_bg.png",
        "grid_depth.png",
        "grid_fg_bg.png",
        "grid_mask.png",
    ]
    assert f"3 backgrounds x {per_bg} imported samples each = **72 fg_bg images**" in readme.read_text()

    config = TrainConfig(data=str(out), out=str(tmp_path / "run"), steps=1, sizes=(32,), workers=0, progress=False)
    assert train(config)["steps"] == 1
    recorded = json.loads((tmp_path / "run" / "plan.json").read_text())["loss_weights"]
    assert recorded["depth_ground"] == recorded["depth_horizon"] == 0, "imported depth is not the ground model's"
    assert recorded["depth_l1"] == 1
    with pytest.raises(ValueError, match="no foregrounds to compose from; read it with FgBgDataset"):
        VirtualFgBgDataset(DatasetInfo.open(out))

    assert (out / "splits.json").exists()
    (out / "splits.json").write_text(json.dumps({"samples": 1}))
    import_course_layout(folder, out, per_background=per_bg, progress=False)
    assert json.loads((out / "splits.json").read_text()) == compute_splits(DatasetInfo.open(out)), "made anew"
