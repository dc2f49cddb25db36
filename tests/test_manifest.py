"""One manifest schema and writer for builds, merges and imports; other format numbers refused."""

import json
import shutil

import pytest

from fgbg_utils.course_layout import export_course_layout, import_course_layout
from fgbg_utils.extract import copy_dataset
from fgbg_utils.manifest import FORMAT_VERSION, index_rows, read_manifest
from fgbg_utils.merge import merge
from fgbg_utils.store import INDEX_NAME, MANIFEST_NAME, read_index, read_shard_meta, shard_name


def _with_format(root, version):
    path = root / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    if version is None:
        del manifest["format_version"]
    else:
        manifest["format_version"] = version
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 0, None])
def test_another_format_is_refused_by_name(small_dataset, tmp_path, version):
    root = tmp_path / "data"
    shutil.copytree(small_dataset, root)
    path = _with_format(root, version)
    with pytest.raises(ValueError, match="another version of the kit") as caught:
        read_manifest(root)
    assert str(path) in str(caught.value)
    with pytest.raises(ValueError, match="another version of the kit"):
        copy_dataset(root, tmp_path / "copy", progress=False)
    assert not (tmp_path / "copy" / MANIFEST_NAME).exists()


def test_a_slice_of_another_format_is_not_merged(small_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(small_dataset, root)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    manifest.update(format_version=FORMAT_VERSION + 1, slice={"index": 0, "of": 1})
    (root / MANIFEST_NAME).rename(root / "data_manifest.slice-0-of-1.json")
    (root / "data_manifest.slice-0-of-1.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="another version of the kit"):
        merge(root)
    assert not (root / MANIFEST_NAME).exists()


def test_build_and_import_write_one_schema(small_dataset, tmp_path):
    folder = tmp_path / "course"
    per_bg = export_course_layout(small_dataset, folder, backgrounds=2)
    import_course_layout(folder, tmp_path / "imported", per_background=per_bg, progress=False)
    built, imported = read_manifest(small_dataset), read_manifest(tmp_path / "imported")
    assert list(built) == list(imported)
    assert built["format_version"] == imported["format_version"] == FORMAT_VERSION
    for manifest in (built, imported):
        assert list(manifest["kinds"]) == ["bg", "fg", "fg_bg", "mask", "depth"]
        samples = manifest["counts"]["samples"]
        assert sum(s["samples"] for s in manifest["shards"]) == samples
        assert {k["count"] for name, k in manifest["kinds"].items() if name in ("fg_bg", "mask", "depth")} == {samples}
        assert manifest["bytes"]["total"] == manifest["bytes"]["shards"] + manifest["bytes"]["assets"]
    assert imported["counts"]["samples"] == 2 * per_bg


def test_index_rows_are_the_stored_index(small_dataset):
    manifest = read_manifest(small_dataset)
    metas = [read_shard_meta(small_dataset / shard_name(s["bg"])) for s in manifest["shards"]]
    expected = [list(row.values()) for row in read_index(small_dataset / INDEX_NAME)]
    assert list(index_rows(metas)) == expected
