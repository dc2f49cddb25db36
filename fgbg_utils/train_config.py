"""What a training run is asked to do: `TrainConfig`, checked before anything is written, and the
split families and loss terms it chooses from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .dataset_info import DatasetInfo
from .losses import LossWeights
from .runtime import CPU_RECIPE

SPLIT_FAMILIES = {"unseen": ("unseen_train", "unseen_test"), "random": ("train", "test")}


OPTIMIZERS = ("adamw", "adam", "sgd")


SESSION_FIELDS = (
    "data",
    "out",
    "minutes",
    "workers",
    "device",
    "checkpoint_every_steps",
    "checkpoint_every_minutes",
    "keep_last",
    "progress",
    "resume",
)
"""Config fields a resumed run may change; every other field comes from the checkpoint. `data` may
move (a Colab session copies the dataset to a new place) but must be the same dataset
(`DatasetInfo.identity`)."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Give `steps`, or `minutes` alone: then `steps` is calibrated at the start
    and re-planned at every checkpoint from the measured pace (`replanned_steps`). The defaults are
    the CPU recipe (`fgbg_utils.runtime.CPU_RECIPE`); other profiles' recipes give their `options()`."""

    data: str
    out: str
    model: str = CPU_RECIPE.model
    split: str = "unseen"
    mode: str = "joint"
    loss_weights: dict[str, float] = field(default_factory=lambda: LossWeights().to_dict())
    optimizer: str = "adamw"
    lr: float = CPU_RECIPE.lr
    weight_decay: float = 1e-4
    batch_size: int = CPU_RECIPE.batch_size
    sizes: tuple[int, ...] = CPU_RECIPE.sizes
    """Progressive resizing: equal shares of the steps at each size, in order; () = the dataset's size."""
    steps: int | None = None
    minutes: float | None = None
    """Wall-clock budget of this session: reaching it saves a checkpoint and stops (resume continues)."""
    grad_clip: float | None = 1.0
    """Largest gradient norm; 0 or None: no clipping."""
    amp: bool | None = CPU_RECIPE.amp
    """None = on when CUDA is used (bf16 if supported, else fp16 with a GradScaler); never on CPU."""
    channels_last: bool = CPU_RECIPE.channels_last
    augment: bool = True
    workers: int = CPU_RECIPE.workers
    seed: int = 0
    checkpoint_every_steps: int | None = CPU_RECIPE.checkpoint_every_steps
    checkpoint_every_minutes: float | None = CPU_RECIPE.checkpoint_every_minutes
    keep_last: int = 3
    val_samples: int | None = CPU_RECIPE.val_samples
    """Validate on this many samples spread evenly over the test split (every background), or all."""
    train_limit: int | None = None
    """Use only the first N training samples (overfitting checks)."""
    deterministic: bool = False
    device: str | None = None
    progress: bool = True
    resume: bool = False
    virtual: bool = False
    """Compose the training samples from bg/ and fg/ on the training device (`VirtualFgBgDataset`) instead
    of reading the shards: no loader workers on a GPU. Without augmentation a batch never leaves the device
    (resized, when `sizes` differ from the build's, by torch's antialiased bilinear), and augmentation is
    `BatchAugmentation` on that device. Validation reads the shards either way."""

    def validate(self) -> None:
        """Raise ValueError naming every option out of range, before a run writes anything (a
        negative batch size used to loop forever, a misspelt loss weight to fail with a traceback)."""
        at_least = {"batch_size": 1, "steps": 1, "keep_last": 0, "val_samples": 1, "train_limit": 1}
        at_least |= {"checkpoint_every_steps": 1, "workers": 0, "grad_clip": 0}
        problems = [
            f"{name} must be at least {low}, got {getattr(self, name)}"
            for name, low in at_least.items()
            if getattr(self, name) is not None and getattr(self, name) < low
        ]
        positive = ("minutes", "lr", "checkpoint_every_minutes")
        problems += [
            f"{name} must be above 0, got {getattr(self, name)}"
            for name in positive
            if getattr(self, name) is not None and not getattr(self, name) > 0
        ]
        if not self.weight_decay >= 0:
            problems.append(f"weight_decay must be 0 or more, got {self.weight_decay}")
        problems += [f"sizes: {size} is below 32 pixels" for size in self.sizes if size < 32]
        known = set(LossWeights().to_dict())
        unknown = sorted(set(self.loss_weights) - known)
        if unknown:
            problems.append(f"loss_weights: unknown {', '.join(unknown)}; the terms are {', '.join(sorted(known))}")
        problems += [
            f"loss_weights: {name} must be 0 or more, got {weight}"
            for name, weight in self.loss_weights.items()
            if not weight >= 0
        ]
        if problems:
            raise ValueError(f"{self.out}: not started: " + "; ".join(problems))

    def to_dict(self) -> dict:
        """JSON- and weights_only-safe: tuples become lists, paths strings."""
        out = asdict(self)
        out["sizes"] = list(self.sizes)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        chosen = {k: v for k, v in values.items() if k in known}
        return cls(**{**chosen, "sizes": tuple(int(s) for s in chosen.get("sizes", ()))})


GEOMETRIC_TERMS = ("depth_ground", "depth_horizon")
"""Loss terms whose targets read the depth map as the builder's geometric ground (`losses.ground_target`,
`losses.horizon_from_depth`)."""


def fitted_loss_weights(config: TrainConfig, info: DatasetInfo) -> tuple[dict[str, float], list[str]]:
    """`config`'s loss weights with the `GEOMETRIC_TERMS` at 0 when the dataset's depth is not drawn
    from the ground-plane model (`geometric`, or its `prior` for photos) but, say, imported or from
    MiDaS; and the terms so turned off.

    Their targets assume inverse depth that is exactly linear in the row over flat ground and constant up
    an upright thing. Relative depth from a network is smooth across both, so those targets would be
    noise: every pixel "ground", a horizon wherever the map's values reach 0.
    """
    if info.depth_source in ("geometric", "prior"):
        return dict(config.loss_weights), []
    turned_off = [name for name in GEOMETRIC_TERMS if config.loss_weights.get(name, 0) > 0]
    return {**config.loss_weights, **dict.fromkeys(turned_off, 0.0)}, turned_off


@dataclass
class TrainingPlan:
    """What a run worked out from its (frozen) config and its dataset, saved with every checkpoint and
    in RUN/plan.json: the step count (as given, calibrated from `minutes`, or re-planned to end on time),
    the loss weights fitted to the dataset's depth, and the sizes (the dataset's when none were given)."""

    steps: int | None
    loss_weights: dict[str, float]
    sizes: tuple[int, ...]

    @classmethod
    def make(cls, config: TrainConfig, info: DatasetInfo) -> tuple[TrainingPlan, list[str]]:
        """The plan of a fresh run (steps still None when they are to be calibrated), and the loss
        terms turned off for this dataset."""
        weights, turned_off = fitted_loss_weights(config, info)
        return cls(config.steps, weights, config.sizes or (info.size,)), turned_off

    def to_dict(self) -> dict:
        return {"steps": self.steps, "loss_weights": dict(self.loss_weights), "sizes": list(self.sizes)}

    @classmethod
    def from_dict(cls, values: dict) -> TrainingPlan:
        return cls(values["steps"], dict(values["loss_weights"]), tuple(int(s) for s in values["sizes"]))


def split_names(family: str) -> tuple[str, str]:
    """(train split, validation split) of a split family."""
    if family not in SPLIT_FAMILIES:
        raise ValueError(f"unknown split {family!r}: choose one of {', '.join(SPLIT_FAMILIES)}")
    return SPLIT_FAMILIES[family]
