"""`python -m fgbg_utils COMMAND`: thin argument parsing over the package's functions."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from .assets import AssetError
from .build import make_dataset, print_summary, profile_config
from .build_assets import BuildInputError
from .dataset_info import DatasetInfo
from .manifest import Manifest, read_manifest, write_manifest
from .merge import merge
from .runtime import CPU_RECIPE, PROFILES, RECIPE_OPTIONS, get_profile, repo_root, runs_dir
from .store import MANIFEST_NAME


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
    p.add_argument("--seed", type=int, default=0, help="fixes every random choice of the build (default: 0)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument(
        "--depth",
        choices=["geometric", "prior", "midas"],
        default=None,
        help="depth source (default: geometric for demo scenes, prior for your photos)",
    )
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of the stored images (default: 90)")
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

    info = DatasetInfo.open(args.root)
    statistics = recompute_statistics(info, workers=args.workers)
    for kind, values in statistics.items():
        old = info.statistics.get(kind, {})
        same = "same as the manifest" if old.get("histogram") == values["histogram"] else "UPDATED"
        mean = ", ".join(f"{v:.4f}" for v in values["mean"])
        std = ", ".join(f"{v:.4f}" for v in values["std"])
        print(f"{kind:6s} mean [{mean}]  std [{std}]  ({values['pixels']:,} pixels; {same})")
    write_manifest(Path(args.root) / MANIFEST_NAME, replace(Manifest.from_dict(info.manifest), statistics=statistics))
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

    print(f"wrote {write_report(DatasetInfo.open(args.root), args.out)}")
    return 0


def merge_command(args) -> int:
    path = merge(args.root, args.sources)
    counts = read_manifest(path.parent)["counts"]
    print(f"{path}: {counts['samples']:,} samples in {counts['shards']} shards")
    return 0


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--sizes takes comma-separated pixels, e.g. 64,96, not {text!r}") from error


def _weights(text: str) -> dict[str, float]:
    try:
        return {name: float(value) for name, value in (item.split("=") for item in text.split(","))}
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"--loss-weights takes name=value pairs, e.g. depth_ssim=0.5, not {text!r}"
        ) from error


AMP_CHOICES = {"auto": None, "on": True, "off": False}


class OptionRecordingParser(argparse.ArgumentParser):
    """An `ArgumentParser` that records which destination each of its option strings sets
    (`option_dests`), for `given_options`; its subcommands' parsers are of this class too."""

    def __init__(self, *args, **kwargs):
        self.option_dests: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.option_dests.update(dict.fromkeys(action.option_strings, action.dest))
        return action


def _add_common(p: argparse.ArgumentParser, batch_size: int) -> None:
    """The options every command that runs a network shares: batch size, device, progress bar."""
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"samples per batch (default: {batch_size})")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when there is a GPU)")
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bar (a log file, where output is not a terminal, gets a plain line every 30 s)",
    )


def _add_train(commands) -> None:
    from .models import MODELS
    from .train_config import OPTIMIZERS, TrainConfig

    defaults = TrainConfig(data="", out="")
    # No abbreviations: a resume must know which options were written out (`given_options`).
    p = commands.add_parser(
        "train",
        help="train a model (resumable; DDP under torchrun); the defaults are the CPU recipe",
        description="Train a model. With only --data, --out and --minutes (or --steps) it follows the CPU "
        f"recipe: {defaults.model}, {describe_sizes(defaults.sizes)}, lr {defaults.lr:g}, batch "
        f"{defaults.batch_size}, {defaults.workers} loader worker(s); --recipe full is the hour on one GPU.",
        allow_abbrev=False,
    )
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--out", required=True, help="run folder (config, metrics, checkpoints, tensorboard)")
    p.add_argument(
        "--recipe",
        choices=sorted(PROFILES),
        default=None,
        help="take that profile's training recipe for every option it sets that is not written out "
        f"({', '.join('--' + name.replace('_', '-') for name in RECIPE_OPTIONS)}); default: the CPU recipe (demo)",
    )
    p.add_argument("--model", choices=list(MODELS), default=defaults.model, help=f"network (default: {defaults.model})")
    p.add_argument(
        "--split",
        choices=["unseen", "random"],
        default=defaults.split,
        help="unseen: validate on backgrounds and foregrounds never trained on; random: a random split "
        f"(default: {defaults.split})",
    )
    p.add_argument(
        "--mode",
        choices=["joint", "mask", "depth"],
        default=defaults.mode,
        help=f"train both outputs or one (default: {defaults.mode})",
    )
    p.add_argument(
        "--loss-weights",
        type=_weights,
        default=None,
        metavar="NAME=W,...",
        help="change some loss terms' weights, e.g. depth_ssim=0.5 (default: fgbg_utils.losses.LossWeights)",
    )
    p.add_argument(
        "--optimizer", choices=OPTIMIZERS, default=defaults.optimizer, help=f"optimizer (default: {defaults.optimizer})"
    )
    p.add_argument(
        "--lr", type=float, default=defaults.lr, help=f"peak one-cycle learning rate (default: {defaults.lr:g})"
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=defaults.weight_decay,
        help=f"decoupled weight decay (AdamW) or L2 (default: {defaults.weight_decay:g})",
    )
    _add_common(p, defaults.batch_size)
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=defaults.sizes,
        help=f"progressive sizes in pixels, equal shares of the steps (default: {describe_sizes(defaults.sizes)})",
    )
    p.add_argument("--steps", type=int, default=None, help="total optimizer steps (or give --minutes)")
    p.add_argument(
        "--minutes", type=float, default=None, help="time budget of this session (the steps are fitted to it)"
    )
    p.add_argument("--grad-clip", type=float, default=defaults.grad_clip, help="largest gradient norm; 0: no clipping")
    p.add_argument(
        "--amp",
        choices=list(AMP_CHOICES),
        default="auto",
        help="mixed precision (auto: on with CUDA, bf16 where the GPU has it, else fp16; never on a CPU)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=defaults.channels_last,
        help="NHWC memory layout (faster convolutions on GPU tensor cores)",
    )
    p.add_argument("--no-augment", dest="augment", action="store_false", help="train on the images as stored")
    p.add_argument(
        "--workers", type=int, default=defaults.workers, help=f"loader processes (default: {defaults.workers})"
    )
    p.add_argument("--seed", type=int, default=defaults.seed, help="fixes initial weights, data order, augmentation")
    p.add_argument("--checkpoint-every-steps", type=int, default=None, help="also save every N steps")
    p.add_argument(
        "--checkpoint-every-minutes",
        type=float,
        default=defaults.checkpoint_every_minutes,
        help=f"validate and save every M minutes; a --minutes run re-plans its steps at each "
        f"(default: {defaults.checkpoint_every_minutes:g})",
    )
    p.add_argument(
        "--keep-last", type=int, default=defaults.keep_last, help="step checkpoints kept besides last.pt and best.pt"
    )
    p.add_argument(
        "--val-samples",
        type=int,
        default=defaults.val_samples,
        help=f"validate on this many samples spread over the test split (default: {defaults.val_samples})",
    )
    p.add_argument("--train-limit", type=int, default=None, help="train on the first N samples only (overfitting)")
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels (exact resume, slower)")
    p.add_argument("--resume", action="store_true", help="continue from the run's newest checkpoint in RUN/checkpoints")
    p.add_argument(
        "--virtual",
        action="store_true",
        help="compose the training samples from bg/ and fg/ on the training device instead of reading the shards "
        "(on a GPU: no loader workers; without augmentation the batches never leave the GPU)",
    )
    p.set_defaults(option_dests=p.option_dests)


def describe_sizes(sizes: tuple[int, ...]) -> str:
    return f"sizes {','.join(map(str, sizes))}" if sizes else "the dataset's size"


def given_options(argv: list[str], option_dests: dict[str, str]) -> set[str]:
    """The config fields whose options are written in `argv` (``--lr 0.1`` or ``--lr=0.1``), even
    when equal to their default: a resume refuses those that differ from the run's."""
    return {option_dests[token.split("=", 1)[0]] for token in argv if token.split("=", 1)[0] in option_dests}


def apply_recipe(args: argparse.Namespace) -> None:
    """``--recipe NAME``: that profile's training recipe for each option it sets that the command
    line does not write out; those options then count as given, so a resume checks them too."""
    if args.recipe is None:
        return
    amp_choice = {value: name for name, value in AMP_CHOICES.items()}
    for name, value in get_profile(args.recipe).training.options().items():
        if name not in args.given:
            setattr(args, name, amp_choice[value] if name == "amp" else value)
    args.given |= set(RECIPE_OPTIONS)


def train_command(args) -> int:
    from .losses import LossWeights
    from .train import train
    from .train_config import TrainConfig

    apply_recipe(args)
    skipped = ("command", "amp", "loss_weights", "option_dests", "given", "recipe")
    options = {k: v for k, v in vars(args).items() if k not in skipped}
    config = TrainConfig(
        **options,
        amp=AMP_CHOICES[args.amp],
        loss_weights={**LossWeights().to_dict(), **(args.loss_weights or {})},
    )
    summary = train(config, given=args.given)
    print(json.dumps({k: summary[k] for k in ("steps", "epoch", "minutes", "stopped", "best")}))
    return 0


def _add_evaluate(commands) -> None:
    p = commands.add_parser("evaluate", help="score a checkpoint on a split beside the two baselines")
    p.add_argument("--data", required=True, type=Path, help="dataset folder")
    p.add_argument("--checkpoint", required=True, type=Path, help="a checkpoint file, e.g. RUN/checkpoints/best.pt")
    p.add_argument(
        "--split",
        default=None,
        help="default: the test split of the family the checkpoint was trained on (unseen_test or test); "
        "a split holding its training samples is refused, except that training split itself",
    )
    p.add_argument(
        "--size", type=int, default=None, help="score at this size (default: the checkpoint's last training size)"
    )
    p.add_argument("--json", dest="json_out", type=Path, default=None, help="write the results here")
    p.add_argument("--save-predictions", type=Path, default=None, help="folder for predicted mask/depth PNGs")
    _add_common(p, CPU_RECIPE.batch_size)
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="score only this many evenly spaced samples of the split (the same ones each run)",
    )


def evaluate_command(args) -> int:
    from .evaluate import evaluate

    options = {k: v for k, v in vars(args).items() if k not in ("command", "data")}
    result = evaluate(DatasetInfo.open(args.data), **options)
    print(json.dumps({"split": result["split"], "samples": result["samples"], "metrics": result["metrics"]}, indent=1))
    return 0


def _add_predict(commands) -> None:
    from .predict import AT_CHOICES

    p = commands.add_parser(
        "predict",
        help="apply a checkpoint to your own image pairs: mask, probability, depth and overlay PNGs",
        description="Pairs: --bg FILE --fg-bg FILE; --bg DIR --fg-bg DIR (matched by file stem); or --pairs CSV "
        "(columns bg,fg_bg; relative paths from the CSV's folder). Outputs, named by the photo's stem: "
        "STEM_mask.png, STEM_prob.png, STEM_depth.png, STEM_depth_color.png, STEM_overlay.png.",
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="a train checkpoint, e.g. RUN/checkpoints/last.pt")
    p.add_argument("--bg", type=Path, default=None, help="the background: an image file, or a folder of them")
    p.add_argument("--fg-bg", type=Path, default=None, help="the photo with the object: a file, or a folder of them")
    p.add_argument("--pairs", type=Path, default=None, help="a CSV with bg,fg_bg columns, instead of --bg/--fg-bg")
    p.add_argument("--out", required=True, type=Path, help="folder for the output PNGs")
    p.add_argument(
        "--at",
        choices=AT_CHOICES,
        default="trained",
        help="trained: the pair resized to the checkpoint's training size (recommended); native: at its own size",
    )
    p.add_argument("--batch-size", type=int, default=8, help="pairs per forward pass")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: a GPU when there is one)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def predict_command(args) -> int:
    from .predict import find_pairs, predict_pairs

    pairs = find_pairs(args.bg, args.fg_bg, args.pairs)
    written = predict_pairs(
        args.checkpoint,
        pairs,
        args.out,
        at=args.at,
        device=args.device,
        batch_size=args.batch_size,
        progress=args.progress,
    )
    print(f"wrote {len(written) * len(written[0])} files for {len(written)} pair(s) into {args.out}")
    return 0


def _add_run_notebooks(commands) -> None:
    from .course import DEFAULT_TIMEOUT_MINUTES

    root = repo_root()
    p = commands.add_parser("run-notebooks", help="execute the course notebooks headless in order, then summarise")
    p.add_argument("--profile", choices=sorted(PROFILES), default="demo", help="set as FGBG_PROFILE in every notebook")
    p.add_argument("--out", type=Path, default=None, help="executed notebooks, figures, summary (default runs/PROFILE)")
    p.add_argument(
        "--notebooks",
        type=Path,
        default=(root if root else Path.cwd()) / "notebooks",
        help="folder of the NN_*.ipynb notebooks (default: the kit's)",
    )
    p.add_argument(
        "--timeout-minutes", type=float, default=DEFAULT_TIMEOUT_MINUTES, help="limit per notebook (stops a hung run)"
    )
    p.add_argument(
        "--update-notebooks",
        action="store_true",
        help="copy the executed notebooks (with outputs) back into --notebooks and sync their .py pairs "
        "(demo profile only: the committed outputs come from a demo run)",
    )


def run_notebooks_command(args) -> int:
    from .course import NotebookFailed, run_notebooks, update_notebooks
    from .run_summary import summarise, summary_markdown, write_summary

    if args.update_notebooks and args.profile != "demo":
        raise ValueError(
            f"--update-notebooks stores the outputs the kit commits, which come from the demo profile, "
            f"not {args.profile}"
        )
    out = args.out or runs_dir() / args.profile
    try:
        runs = run_notebooks(args.notebooks, out, args.profile, timeout_minutes=args.timeout_minutes)
    except NotebookFailed as failure:
        print(failure.details, file=sys.stderr)
        print(f"error: {failure}", file=sys.stderr)
        return 1
    summary = summarise(runs_dir() / args.profile, out)
    json_path, markdown_path = write_summary(out, summary)
    print(summary_markdown(summary))
    print(f"wrote {json_path} and {markdown_path}")
    if args.update_notebooks:
        updated = update_notebooks(runs, out, args.notebooks)
        print(f"updated {len(updated)} notebooks and their .py pairs in {args.notebooks}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OptionRecordingParser(prog="python -m fgbg_utils", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_make_dataset(commands)
    p = commands.add_parser("stats", help="recompute exact mean/std from the stored files into the manifest")
    p.add_argument("root", type=Path, help="dataset folder")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p = commands.add_parser("verify", help="check counts and checksums against the manifest")
    p.add_argument("root", type=Path, help="dataset folder")
    p = commands.add_parser("report", help="write the dataset README section and sample grids")
    p.add_argument("root", type=Path, help="dataset folder")
    p.add_argument("--out", type=Path, default=None, help="folder for README.md and PNGs (default ROOT/report)")
    p = commands.add_parser("merge", help="join slices built with --shard I/N into one dataset")
    p.add_argument("root", type=Path, help="the dataset folder (may already hold some slices)")
    p.add_argument("sources", type=Path, nargs="*", help="other folders holding slices to copy in")
    _add_train(commands)
    _add_evaluate(commands)
    _add_predict(commands)
    _add_run_notebooks(commands)
    return parser


COMMANDS = {
    "make-dataset": make_dataset_command,
    "stats": stats_command,
    "verify": verify_command,
    "report": report_command,
    "merge": merge_command,
    "train": train_command,
    "evaluate": evaluate_command,
    "predict": predict_command,
    "run-notebooks": run_notebooks_command,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.command == "train":
        args.given = given_options(argv, args.option_dests)
    try:
        return COMMANDS[args.command](args)
    except (AssetError, BuildInputError, OSError, ValueError) as error:  # OSError names its path
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:  # NonFiniteLossError from train
        print(f"error: {error}", file=sys.stderr)
        return 3
