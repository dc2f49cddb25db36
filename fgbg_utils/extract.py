"""Getting a dataset onto the machine that trains: copying it off Google Drive and extracting
zips safely.

- `copy_dataset` copies a built dataset (e.g. from Drive to Colab's local disk) file by file,
  each written atomically and its sha256 checked against the manifest; a rerun skips what is
  already there and good, so a copy cut off by a disconnect resumes.
- `safe_extract` extracts a zip from an untrusted source: no member may land outside the
  destination (zip-slip), no symlinks or devices, no zip bombs; on refusal nothing appears
  under a real name. The kit's own shards never need extracting (loaders read the zips).

Datasets built by hand in the course's plain layout are imported by `course_layout`.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from .manifest import (
    read_manifest_file,
)
from .store import (
    INDEX_NAME,
    MANIFEST_NAME,
    SPLITS_NAME,
    atomic_path,
    remove_partials,
    sha256_file,
)

COPY_CHUNK = 8 << 20
COPY_ATTEMPTS = 3
"""Reads from Drive over FUSE fail now and then (Errno 5); each file is tried this often."""


# --- shared -------------------------------------------------------------------------------


def _unsafe_name(name: str) -> str | None:
    """Why `name` cannot be a relative path inside a destination folder, or None if it can."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "NUL byte in name"
    if "\\" in name:
        return "backslash in name (a Windows path)"
    if name.startswith("/"):
        return "absolute path"
    if re.match(r"^[A-Za-z]:", name):
        return "drive letter"
    if ".." in PurePosixPath(name).parts:
        return "'..' component (path traversal)"
    return None


# --- copy_dataset -------------------------------------------------------------------------


def _copy_file(source: Path, target: Path, expected: str | None, bar) -> str:
    """Copy `source` to `target` atomically, hashing the bytes as they pass; return the sha256.

    Raises ValueError when `expected` is given and differs; the temporary file is removed and
    whatever was at `target` before stays as it was.
    """
    for attempt in range(1, COPY_ATTEMPTS + 1):
        copied = 0
        try:
            digest = hashlib.sha256()
            with atomic_path(target) as tmp:
                with open(source, "rb") as reader, open(tmp, "wb") as writer:
                    while block := reader.read(COPY_CHUNK):
                        digest.update(block)
                        writer.write(block)
                        copied += len(block)
                        bar.update(len(block))
                if expected is not None and digest.hexdigest() != expected:
                    raise ValueError(
                        f"{source}: sha256 {digest.hexdigest()[:12]}… differs from the manifest's {expected[:12]}… "
                        "(corrupt or replaced at the source)"
                    )
            return digest.hexdigest()
        except OSError:
            bar.update(-copied)
            if attempt == COPY_ATTEMPTS:
                raise
            time.sleep(2.0 * attempt)
    raise AssertionError("unreachable")


def _plan_copy(src: Path, manifest: dict) -> list[tuple[str, str | None]]:
    """(relative file, expected sha256 or None) of everything to copy but the manifest."""
    plan: dict[str, str | None] = {}
    for entry in manifest["shards"]:
        plan[entry["file"]] = entry["sha256"]
    for info in manifest.get("backgrounds", []) + manifest.get("foregrounds", []):
        for key, digest in (("file", "sha256"), ("depth_file", "depth_sha256")):
            if key in info:
                plan[info[key]] = info.get(digest)
    for folder in ("bg", "fg"):
        if (src / folder).is_dir():
            for path in sorted((src / folder).iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    plan.setdefault(f"{folder}/{path.name}", None)
    for name in (INDEX_NAME, SPLITS_NAME):
        if (src / name).exists():
            plan[name] = None
    for name in plan:
        if problem := _unsafe_name(name):
            raise ValueError(f"{src / MANIFEST_NAME}: lists file {name!r}: {problem}; refusing to copy")
    return list(plan.items())


def copy_dataset(src: Path, dst: Path, verify: bool = True, progress: bool = True) -> Path:
    """Copy the built dataset in `src` (e.g. on Google Drive) to `dst` (local disk); return `dst`.

    Copies the shards, bg/ and fg/, index.csv, splits.json if any, and data_manifest.json
    last, so a `dst` with a manifest holds a whole copy. Every file is written under a
    temporary name and renamed when whole. With `verify`, each shard's and asset's sha256 is
    computed while it is copied and checked against the manifest: mismatches are collected
    and raised together, naming each file, after the rest is copied (good files are kept, the
    manifest is not written). A rerun skips files already in `dst` with the right checksum
    (without `verify`: the right size), so it resumes a copy cut off by a Colab disconnect.
    """
    src, dst = Path(src), Path(dst)
    manifest_path = src / MANIFEST_NAME
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path}: no manifest; is {src} a built dataset?")
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"{dst}: source and destination are the same folder")
    manifest = read_manifest_file(manifest_path)
    plan = _plan_copy(src, manifest)
    dst.mkdir(parents=True, exist_ok=True)
    remove_partials(dst)
    (dst / MANIFEST_NAME).unlink(missing_ok=True)  # an earlier copy's; whole again only when this one ends

    todo = []
    for name, expected in plan:
        source, target = src / name, dst / name
        if not source.exists():
            todo.append((name, expected, 0))  # reported as missing below
            continue
        size = source.stat().st_size
        present = expected is not None and target.exists() and target.stat().st_size == size
        if present and (not verify or sha256_file(target) == expected):
            continue
        todo.append((name, expected, size))

    problems = []
    total = sum(size for _, _, size in todo)
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="copying", disable=not progress) as bar:
        for name, expected, _ in todo:
            source = src / name
            if not source.exists():
                problems.append(f"{source}: missing at the source")
                continue
            try:
                _copy_file(source, dst / name, expected if verify else None, bar)
            except ValueError as error:
                problems.append(str(error))
    if problems:
        listing = "\n".join(f"  {p}" for p in problems)
        raise ValueError(
            f"copying {src} to {dst}: {len(problems)} file(s) failed (the good ones are kept, "
            f"{MANIFEST_NAME} was not written; fix the source and rerun to finish):\n{listing}"
        )
    _copy_file(manifest_path, dst / MANIFEST_NAME, None, tqdm(disable=True))
    return dst


# --- safe_extract -------------------------------------------------------------------------


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why this member may not be extracted (before reading it), or None."""
    if problem := _unsafe_name(info.filename):
        return problem
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        return "symbolic link"
    allowed = (0, stat.S_IFDIR) if info.is_dir() else (0, stat.S_IFREG)
    if kind not in allowed:
        return f"not a regular file (mode {oct(mode)})"
    if info.flag_bits & 0x1:
        return "encrypted"
    return None


RATIO_FLOOR = 1 << 20
"""Members smaller than this are not judged by their compression ratio: a 10 kB text file of
repeated characters compresses 300-fold and is no bomb; `max_bytes` bounds them all together."""


def _ratio(size: int, compressed: int) -> float:
    if size <= RATIO_FLOOR:
        return 1.0
    return size / compressed if compressed > 0 else math.inf


def safe_extract(
    archive: Path,
    dest: Path,
    max_bytes: int = 4 * 2**30,
    max_ratio: float = 200.0,
    max_members: int = 200_000,
) -> list[Path]:
    """Extract the zip `archive` into `dest` and return the extracted files, in archive order.

    Refuses, with a ValueError naming the archive and each offending member: absolute paths,
    drive letters, backslashes, '..' components, symlinks and other non-regular members
    (directory entries are allowed), encrypted members, duplicate names and names that are
    both a file and a folder, more than `max_members` members, a total declared uncompressed
    size over `max_bytes`, and any member whose size over its compressed size exceeds
    `max_ratio` (a zip bomb; stored members have ratio 1). Because declared sizes can lie, the
    limits are enforced again on the bytes actually decompressed.

    Members are first written into a hidden staging folder inside `dest` and renamed into place
    only when every member came out whole, so a refused archive leaves nothing under a real name.
    Existing files of the same names are replaced. Each file gets its member's modification time
    (as unzip does), so a folder extracted again keeps the fingerprint `import_course_layout` gave
    it and is not imported again; mode bits are not restored.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"{archive}: not a readable zip ({error})") from error
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise ValueError(f"{archive}: {len(infos):,} members, more than max_members={max_members:,}; refused")
        problems, seen, files, folders = [], set(), [], set()
        for info in infos:
            name = info.filename
            if problem := _member_problem(info):
                problems.append(f"member {name!r}: {problem}")
                continue
            parts = PurePosixPath(name).parts
            normal = "/".join(p for p in parts if p != ".")
            if not normal:
                problems.append(f"member {name!r}: names the destination itself")
                continue
            if normal in seen:
                problems.append(f"member {name!r}: duplicate name")
                continue
            seen.add(normal)
            folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
            if info.is_dir():
                folders.add(normal)
                continue
            ratio = _ratio(info.file_size, info.compress_size)
            if ratio > max_ratio:
                problems.append(
                    f"member {name!r}: compression ratio {ratio:,.0f} over max_ratio={max_ratio:g} (zip bomb?)"
                )
            files.append((info, normal))
        problems += [f"member {normal!r}: is both a file and a folder" for _, normal in files if normal in folders]
        declared = sum(info.file_size for info, _ in files)
        if declared > max_bytes:
            problems.append(f"declares {declared:,} bytes uncompressed, more than max_bytes={max_bytes:,}")
        if problems:
            listing = "\n".join(f"  {p}" for p in problems[:20])
            more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise ValueError(f"{archive}: refused, nothing was extracted:\n{listing}{more}")

        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
        try:
            written = 0
            staged = []
            for number, (info, normal) in enumerate(files):
                written = _stream_member(zf, info, staging / str(number), archive, written, max_bytes, max_ratio)
                modified = time.mktime((*info.date_time, 0, 0, -1))  # the zip stores local time
                os.utime(staging / str(number), (modified, modified))
                staged.append((staging / str(number), normal))
            # Check every folder on the way first (no existing symlink or file may be in the way),
            # then create them, then rename the staged files into place.
            for folder in sorted(folders):
                _check_inside(root, folder, archive)
            targets = [root / normal for _, normal in staged]
            for target in targets:
                if target.is_dir() and not target.is_symlink():
                    raise ValueError(f"{archive}: member {target.relative_to(root)}: an existing folder; refused")
            for folder in sorted(folders):
                (root / folder).mkdir(parents=True, exist_ok=True)
            for (path, _), target in zip(staged, targets, strict=True):
                os.replace(path, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return targets


def _check_inside(root: Path, relative: str, archive: Path) -> None:
    """Refuse when a component of folder root/relative exists as a symlink (which could lead
    outside root) or as a file."""
    current = root
    for part in PurePosixPath(relative).parts:
        current = current / part
        if current.is_symlink():
            raise ValueError(f"{archive}: {current} is an existing symlink; refused")
        if current.exists() and not current.is_dir():
            raise ValueError(f"{archive}: {current} is an existing file where the archive has a folder; refused")


def _stream_member(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    path: Path,
    archive: Path,
    written: int,
    max_bytes: int,
    max_ratio: float,
) -> int:
    """Decompress one member to `path`, counting bytes as they come; return the running total."""
    name = info.filename
    count = 0
    try:
        with zf.open(info) as reader, open(path, "wb") as writer:
            while block := reader.read(1 << 20):
                count += len(block)
                written += len(block)
                if written > max_bytes:
                    raise ValueError(f"{archive}: member {name!r}: extraction passed max_bytes={max_bytes:,}; refused")
                if count > info.file_size:
                    raise ValueError(f"{archive}: member {name!r}: more bytes than its declared {info.file_size:,}")
                if _ratio(count, info.compress_size) > max_ratio:
                    raise ValueError(f"{archive}: member {name!r}: compression ratio over max_ratio={max_ratio:g}")
                writer.write(block)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError) as error:
        raise ValueError(f"{archive}: member {name!r}: cannot be read ({error})") from error
    return written
