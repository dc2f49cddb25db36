"""`python -m fgbg_utils COMMAND`: thin argument parsing over the package's functions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .assets import AssetError
from .build import BuildInputError, make_dataset, merge, print_summary, profile_config
from .runtime import PROFILES, get_profile
from .store import MANIFEST_NAME, read_manifest, write_json_atomic


def _part(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--shard takes I/N, e.g. 0/4, not {text!r}") from error
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text}: I must be in 0..N-1")
    return i, n


def _add_make_dataset(commands) -> None:
    p = commands.add_parser("make-dataset", help="build the dataset (resumes a killed build)")
    p.add_argument("--out", type=Path, required=True, help="dataset folder")
    p.add_argument("--bg-dir", help="your backgrounds (default: the built-in demo scenes)")
    p.add_argument("--fg-dir", help="your foregrounds with transparency (default: the built-in demo objects)")
    p.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="full",
        help="sets the four sizes below (full: 100 x 100 x 2 x 20 at 224 px); flags override it",
    )
    p.add_argument("--n-bg", type=int, default=None, help="backgrounds (full: 100)")
    p.add_argument("--n-fg", type=int, default=None, help="foregrounds (full: 100)")
    p.add_argument("--placements", type=int, default=None, help="random placements per foreground and flip (full: 20)")
    p.add_argument("--size", type=int, default=None, help="output side in pixels (full: 224)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument(
        "--depth",
        choices=["geometric", "prior", "midas"],
        default=None,
        help="depth source (default: geometric for demo scenes, prior for your photos)",
    )
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--key-border", action="store_true", help="key out the uniform border colour of opaque foregrounds")
    p.add_argument(
        "--skip-bad", action="store_true", help="leave out unusable input files and list them in the manifest"
    )
    p.add_argument("--shard", type=_part, default=None, metavar="I/N", help="build only slice I of N (see merge)")


def make_dataset_command(args) -> int:
    depth = args.depth or ("prior" if args.bg_dir else "geometric")
    sizes = {
        name: getattr(args, name) for name in ("n_bg", "n_fg", "placements", "size") if getattr(args, name) is not None
    }
    config = profile_config(
        get_profile(args.profile),
        **sizes,
        seed=args.seed,
        depth=depth,
        jpeg_quality=args.jpeg_quality,
        bg_dir=args.bg_dir,
        fg_dir=args.fg_dir,
        key_border=args.key_border,
    )
    result = make_dataset(args.out, config, workers=args.workers, part=args.shard, skip_bad=args.skip_bad)
    print_summary(result)
    print(f"manifest: {result.manifest}")
    return 0


def stats_command(args) -> int:
    from .checks import recompute_statistics

    manifest = read_manifest(args.root)
    statistics = recompute_statistics(args.root, workers=args.workers)
    for kind, values in statistics.items():
        old = manifest.get("statistics", {}).get(kind, {})
        same = "same as the manifest" if old.get("histogram") == values["histogram"] else "UPDATED"
        mean = ", ".join(f"{v:.4f}" for v in values["mean"])
        std = ", ".join(f"{v:.4f}" for v in values["std"])
        print(f"{kind:6s} mean [{mean}]  std [{std}]  ({values['pixels']:,} pixels; {same})")
    manifest["statistics"] = statistics
    write_json_atomic(Path(args.root) / MANIFEST_NAME, manifest)
    return 0


def verify_command(args) -> int:
    from .checks import verify_dataset

    problems = verify_dataset(args.root)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    counts = read_manifest(args.root)["counts"]
    print(f"{args.root}: OK ({counts['samples']:,} samples in {counts['shards']} shards, checksums match)")
    return 0


def report_command(args) -> int:
    from .report import write_report

    print(f"wrote {write_report(args.root, args.out)}")
    return 0


def merge_command(args) -> int:
    path = merge(args.root, args.sources)
    counts = json.loads(path.read_text())["counts"]
    print(f"{path}: {counts['samples']:,} samples in {counts['shards']} shards")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fgbg_utils", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_make_dataset(commands)
    p = commands.add_parser("stats", help="recompute exact mean/std from the stored files into the manifest")
    p.add_argument("root", type=Path)
    p.add_argument("--workers", type=int, default=None)
    p = commands.add_parser("verify", help="check counts and checksums against the manifest")
    p.add_argument("root", type=Path)
    p = commands.add_parser("report", help="write the dataset README section and sample grids")
    p.add_argument("root", type=Path)
    p.add_argument("--out", type=Path, default=None, help="folder for README.md and PNGs (default ROOT/report)")
    p = commands.add_parser("merge", help="join slices built with --shard I/N into one dataset")
    p.add_argument("root", type=Path, help="the dataset folder (may already hold some slices)")
    p.add_argument("sources", type=Path, nargs="*", help="other folders holding slices to copy in")
    return parser


COMMANDS = {
    "make-dataset": make_dataset_command,
    "stats": stats_command,
    "verify": verify_command,
    "report": report_command,
    "merge": merge_command,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (AssetError, BuildInputError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
