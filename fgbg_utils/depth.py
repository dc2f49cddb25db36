"""Depth: the ground-plane camera model, the 8-bit depth encoding, and pluggable depth sources.

Every stored depth map uses one encoding (`encode_depth`): 8-bit *inverse* depth, linear in
1/d between the near plane (255) and the far plane (0). Brighter means nearer, as in MiDaS
output, and inverse depth spends the 256 levels where the scene has detail (close by).

The `geometric` source is exact for the demo scenes: a pinhole camera at height `height_m`
above a flat ground, looking at the horizon. Ground row y (below the horizon) lies at depth
``focal * height_m / (y - horizon)``; the sky is at the far plane; an upright foreground
standing on row y takes the depth of that row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

NEAR_M = 2.0
"""Depth (metres) encoded as 255: anything nearer is clipped to it."""
FAR_M = 100.0
"""Depth (metres) encoded as 0: the sky and anything farther."""


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """Metric depth (metres) to uint8 inverse depth: NEAR_M -> 255, FAR_M and beyond -> 0."""
    inverse = 1.0 / np.clip(np.asarray(depth_m, dtype=np.float64), NEAR_M, FAR_M)
    scaled = (inverse - 1.0 / FAR_M) / (1.0 / NEAR_M - 1.0 / FAR_M)
    return np.rint(scaled * 255.0).astype(np.uint8)


def decode_depth(encoded: np.ndarray) -> np.ndarray:
    """uint8 inverse depth back to metres (the inverse of `encode_depth` up to quantisation)."""
    scaled = np.asarray(encoded, dtype=np.float64) / 255.0
    inverse = 1.0 / FAR_M + scaled * (1.0 / NEAR_M - 1.0 / FAR_M)
    return 1.0 / inverse


def depth_encoding_doc() -> dict:
    """The encoding as it is written into every manifest."""
    return {
        "format": "1-channel 8-bit PNG",
        "quantity": "inverse depth, linear in 1/d",
        "value_255": f"depth <= {NEAR_M} m (near plane; nearer is clipped)",
        "value_0": f"depth >= {FAR_M} m (far plane; sky and beyond)",
        "near_m": NEAR_M,
        "far_m": FAR_M,
        "to_metres": "d = 1 / (1/far_m + v/255 * (1/near_m - 1/far_m))",
    }


@dataclass(frozen=True)
class GroundCamera:
    """A pinhole camera above a flat ground plane, looking level at the horizon.

    Positions are fractions of the image height so one camera serves any output size.
    """

    horizon: float = 0.4
    """Row of the horizon, as a fraction of the image height from the top."""
    height_m: float = 1.6
    """Camera height above the ground, metres."""
    focal: float = 1.0
    """Focal length as a fraction of the image height (1.0 is about a 53 degree vertical FOV)."""

    def row_depth(self, rows: np.ndarray | float, size: int) -> np.ndarray:
        """Depth in metres of the ground seen at pixel row(s) `rows` of a `size`-pixel image.

        Rows at or above the horizon see the sky and get FAR_M.
        """
        centre = np.asarray(rows, dtype=np.float64) + 0.5
        below = centre - self.horizon * size
        with np.errstate(divide="ignore"):
            depth = np.where(below > 0, self.focal * size * self.height_m / np.maximum(below, 1e-9), FAR_M)
        return np.minimum(depth, FAR_M)

    def ground_depth(self, size: int) -> np.ndarray:
        """size x size depth map (metres) of an empty scene: ground below the horizon, sky above."""
        column = self.row_depth(np.arange(size), size)
        return np.repeat(column[:, None], size, axis=1).astype(np.float32)

    def pixel_height(self, foot_row: float, size: int, relative_height: float) -> float:
        """Pixel height of an upright object standing on `foot_row`.

        `relative_height` is the object's real height over the camera height: an object as tall
        as the camera spans exactly from its foot to the horizon. This is the perspective rule
        of every placement: objects lower in the frame are nearer and so larger.
        """
        return relative_height * (foot_row + 0.5 - self.horizon * size)

    def to_dict(self) -> dict:
        return asdict(self)


class DepthSource:
    """Makes the uint8 depth maps of a background and of its composites.

    `background` gives the encoded depth of the empty scene; `composites` gives the encoded
    depth of a batch of fg_bg images, given what was pasted where.
    """

    name = "abstract"
    exact = False
    """True when the depth is ground truth for the scene model, not an estimate."""
    local = False
    """True when a composite's depth differs from its background's only inside the pasted box."""
    batch_size = 1
    """How many composites `composites` takes at once at its best: the build gathers that many."""

    def background(self, rgb: np.ndarray, camera: GroundCamera, scene_depth_m: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def composites(
        self,
        fg_bgs: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        boxes: Sequence[tuple[int, int, int, int]],
        bg_rgb: np.ndarray,
        bg_depth: np.ndarray,
        camera: GroundCamera,
    ) -> list[np.ndarray]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"source": self.name, "exact": self.exact, "encoding": depth_encoding_doc()}


def paste_depth(
    bg_depth: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], camera: GroundCamera
) -> np.ndarray:
    """Encoded depth of a composite: the background's, with the foreground's footprint set to
    the depth of the ground row it stands on (the bottom row of its box)."""
    x, y, w, h = box
    size = bg_depth.shape[0]
    foot_value = encode_depth(camera.row_depth(y + h - 1, size))
    depth = bg_depth.copy()
    region = depth[y : y + h, x : x + w]
    region[mask[y : y + h, x : x + w] > 0] = foot_value
    return depth


class GeometricDepth(DepthSource):
    """Exact depth from the scene model (demo scenes) or, for photos, the ground-plane prior."""

    local = True

    def __init__(self, prior: bool = False):
        self.prior = prior
        self.name = "prior" if prior else "geometric"
        self.exact = not prior

    def background(self, rgb, camera, scene_depth_m):
        if scene_depth_m is None or self.prior:
            scene_depth_m = camera.ground_depth(rgb.shape[0])
        return encode_depth(scene_depth_m)

    def composites(self, fg_bgs, masks, boxes, bg_rgb, bg_depth, camera):
        return [paste_depth(bg_depth, mask, box, camera) for mask, box in zip(masks, boxes, strict=True)]

    def describe(self) -> dict:
        info = super().describe()
        if self.prior:
            info["note"] = (
                "ground-plane PRIOR, not a measurement: every background is assumed to be a flat "
                "ground seen from the default camera; use --depth midas on a GPU for photos"
            )
        return info


MIDAS_REPO = "intel-isl/MiDaS:v3_1"
"""Pinned to the v3.1 release tag (its hubconf still defines MiDaS small, with the v2.1 small weights):
the default branch may change under a course, and two builds must draw the same depth. That hubconf
builds the small model's EfficientNet-Lite3 backbone through torch.hub from
rwightman/gen-efficientnet-pytorch, unpinned; its weights are then replaced by MiDaS's own."""
MIDAS_MODEL = "MiDaS_small"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MidasDepth(DepthSource):
    """Relative inverse depth from MiDaS small, loaded with torch.hub, run in batches.

    MiDaS predicts inverse depth up to an unknown scale and shift per image. To keep all 4,000
    composites of one background on one scale (not min-max per image, which makes the same
    pixel brighten or darken with the pasted object), each background fixes an affine map from
    its own prediction's 2nd..98th percentile to 0..255, and its composites reuse that map.

    Each image is predicted once: a background's prediction gives both its depth and its map. On
    CUDA the network runs under the kit's autocast (`fgbg_utils.precision`); the build hands the
    composites over `batch_size` at a time.
    """

    name = "midas"
    exact = False

    def __init__(
        self,
        repo_or_dir: str = MIDAS_REPO,
        model: str = MIDAS_MODEL,
        source: str = "github",
        device: str | None = None,
        batch_size: int = 32,
        input_size: int = 256,
        loader: Callable | None = None,
    ):
        import torch

        self.repo_or_dir, self.model_name, self.source = repo_or_dir, model, source
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        self.input_size = input_size
        load = loader or torch.hub.load
        self.net = load(repo_or_dir, model, source=source, trust_repo=True).to(self.device).eval()
        self._scales: dict[bytes, tuple[float, float]] = {}

    def _predict(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Raw MiDaS output for uint8 RGB images, resized back to their size: (N, H, W)."""
        import torch
        import torch.nn.functional as F

        from .precision import amp_dtype, autocast

        size = images[0].shape[0]
        dtype = amp_dtype(self.device)
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = np.stack(images[start : start + self.batch_size])
                batch = torch.from_numpy(chunk).to(self.device).permute(0, 3, 1, 2).float() / 255.0
                batch = F.interpolate(
                    batch, size=(self.input_size, self.input_size), mode="bicubic", align_corners=False
                )
                with autocast(self.device, dtype):
                    prediction = self.net((batch - mean) / std)
                prediction = prediction.float()
                if prediction.dim() == 3:
                    prediction = prediction.unsqueeze(1)
                prediction = F.interpolate(prediction, size=(size, size), mode="bicubic", align_corners=False)
                outputs.append(prediction[:, 0].float().cpu().numpy())
        return np.concatenate(outputs)

    def _scale(self, bg_rgb: np.ndarray, raw: np.ndarray | None = None) -> tuple[float, float]:
        """The background's 2nd and 98th percentile of predicted inverse depth, computed once (from
        `raw`, its prediction, when given)."""
        key = hashlib.sha1(bg_rgb.tobytes()).digest()
        if key not in self._scales:
            raw = self._predict([bg_rgb])[0] if raw is None else raw
            self._scales[key] = (float(np.percentile(raw, 2)), float(np.percentile(raw, 98)))
        return self._scales[key]

    @staticmethod
    def _encode(raw: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
        low, high = scale
        return np.rint(np.clip((raw - low) / max(high - low, 1e-6), 0.0, 1.0) * 255.0).astype(np.uint8)

    def background(self, rgb, camera, scene_depth_m):
        raw = self._predict([rgb])[0]
        return self._encode(raw, self._scale(rgb, raw))

    def composites(self, fg_bgs, masks, boxes, bg_rgb, bg_depth, camera):
        return list(self._encode(self._predict(fg_bgs), self._scale(bg_rgb)))

    def describe(self) -> dict:
        info = super().describe()
        info.update(
            repo=self.repo_or_dir,
            model=self.model_name,
            encoding={
                "format": "1-channel 8-bit PNG",
                "quantity": "MiDaS relative inverse depth (no units)",
                "value_255": "the background's 98th percentile of predicted inverse depth (near)",
                "value_0": "the background's 2nd percentile (far)",
                "scale": "fixed per background, shared by all its composites",
            },
        )
        return info


def make_depth_source(name: str, **options) -> DepthSource:
    """Depth source by name: `geometric`, `prior` or `midas` (options go to MidasDepth)."""
    if name == "geometric":
        return GeometricDepth()
    if name == "prior":
        return GeometricDepth(prior=True)
    if name == "midas":
        return MidasDepth(**options)
    raise ValueError(f"unknown depth source {name!r}: choose geometric, prior or midas")
