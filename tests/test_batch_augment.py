import numpy as np
import pytest
import torch

from fgbg_utils.batch_augment import (
    BatchAugmentation,
    Draws,
    batch_generator,
    colour_maps,
    colour_matrices,
    draw_noise,
    move_into,
    recolour_opencv,
    recolour_torch,
)
from fgbg_utils.transforms import SHIFT

SIZE = 48


def square_batch(n: int = 16, dtype: torch.dtype = torch.uint8) -> dict[str, torch.Tensor]:
    """Random backgrounds, a flat-coloured square pasted at a per-sample place, its mask and a depth with
    a few levels (the square at the foot's level)."""
    generator = torch.Generator().manual_seed(1)
    bg = torch.randint(0, 256, (n, 3, SIZE, SIZE), generator=generator, dtype=torch.uint8)
    fg_bg, mask = bg.clone(), torch.zeros(n, 1, SIZE, SIZE, dtype=torch.uint8)
    depth = torch.arange(SIZE, dtype=torch.uint8).mul(5).view(1, 1, SIZE, 1).expand(n, 1, SIZE, SIZE).clone()
    for b in range(n):
        y, x = 5 + b % 20, 3 + (3 * b) % 25
        fg_bg[b, :, y : y + 12, x : x + 9] = torch.tensor([250, 3, 128], dtype=torch.uint8).view(3, 1, 1)
        mask[b, :, y : y + 12, x : x + 9] = 1
        depth[b, :, y : y + 12, x : x + 9] = 200
    batch = {"bg": bg, "fg_bg": fg_bg, "mask": mask, "depth": depth, "sample": torch.arange(n)}
    if dtype != torch.uint8:
        batch |= {k: batch[k].to(dtype) / 255 for k in ("bg", "fg_bg", "depth")} | {"mask": mask.to(dtype)}
    return batch


def numpy_move(image: np.ndarray, flip: bool, dy: int, dx: int) -> np.ndarray:
    """transforms.py's shift (pad `reach` zeros, crop at reach - shift) after an optional flip, in NumPy."""
    image = image[..., ::-1] if flip else image
    reach = max(abs(dy), abs(dx))
    padded = np.pad(image, [(0, 0)] * (image.ndim - 2) + [(reach, reach), (reach, reach)])
    height, width = image.shape[-2:]
    return padded[..., reach - dy : reach - dy + height, reach - dx : reach - dx + width]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_bg_and_fg_bg_stay_equal_outside_the_object_and_the_mask_follows_it(dtype):
    batch = square_batch(dtype=dtype)
    out = BatchAugmentation()(batch, batch_generator(0, 1, 2))
    differs = (out["fg_bg"] != out["bg"]).any(1, keepdim=True)
    inside = out["mask"] == 1
    assert set(out["mask"].unique().tolist()) <= {0, 1}
    assert not (differs & ~inside).any(), "bg == fg_bg outside the object"
    assert (differs == inside).float().mean() > 0.999, "fg_bg differs from bg where the mask is"
    assert set(out["depth"].unique().tolist()) <= set(batch["depth"].unique().tolist()) | {0}
    assert torch.equal(out["sample"], batch["sample"])
    assert not torch.equal(out["fg_bg"], batch["fg_bg"]), "something was drawn"


def test_a_zero_draw_returns_the_input():
    batch = square_batch(dtype=torch.float32)
    out = BatchAugmentation().apply(batch, Draws.neutral(16))
    assert all(torch.equal(out[k], batch[k]) for k in batch)
    augmentation = BatchAugmentation()
    draws = augmentation.draw(16, SIZE, SIZE, batch_generator(4))
    neutral = Draws.neutral(16)
    still = torch.tensor([0, 5, 9])
    for name in ("flip", "shift_y", "shift_x", "contrast", "brightness", "hue", "saturation", "noise_std"):
        getattr(draws, name)[still] = getattr(neutral, name)[still]
    for dtype in (torch.uint8, torch.float32):
        batch = square_batch(dtype=dtype)
        out = augmentation.apply(batch, draws)
        assert all(torch.equal(out[k][still], batch[k][still]) for k in ("bg", "fg_bg", "mask", "depth"))
        assert not torch.equal(out["fg_bg"], batch["fg_bg"])
    generator = batch_generator(3)
    unchanged = BatchAugmentation(geometric=False, photometric=False)(square_batch(), generator)
    assert all(torch.equal(unchanged[k], square_batch()[k]) for k in batch)


def test_shifts_are_whole_pixels_as_pad_and_crop_move_them():
    batch = square_batch()
    draws = BatchAugmentation(photometric=False).draw(16, SIZE, SIZE, batch_generator(7))
    reach = round(SHIFT * SIZE)
    assert draws.shift_y.abs().max() <= reach and draws.shift_x.abs().max() <= reach
    assert draws.flip.any() and (draws.shift_x != 0).any()
    out = BatchAugmentation(photometric=False).apply(batch, draws)
    for key in ("bg", "fg_bg", "mask", "depth"):
        for b in range(16):
            flip, dy, dx = bool(draws.flip[b]), int(draws.shift_y[b]), int(draws.shift_x[b])
            expected = numpy_move(batch[key][b].numpy(), flip, dy, dx)
            np.testing.assert_array_equal(out[key][b].numpy(), expected, err_msg=f"{key} {b}")


def test_the_torch_moves_equal_the_numpy_ones():
    """`move` runs NumPy slices on a CPU and torch slices elsewhere (CUDA): the torch path on CPU tensors."""
    batch = square_batch()
    draws = BatchAugmentation(photometric=False).draw(16, SIZE, SIZE, batch_generator(8))
    assert draws.flip.any() and (draws.shift_y != 0).any()
    for key in ("fg_bg", "mask"):
        out = torch.zeros_like(batch[key])
        move_into(batch[key], out, draws)
        for b in range(16):
            flip, dy, dx = bool(draws.flip[b]), int(draws.shift_y[b]), int(draws.shift_x[b])
            np.testing.assert_array_equal(out[b].numpy(), numpy_move(batch[key][b].numpy(), flip, dy, dx))


def numpy_colour(images: np.ndarray, draws: Draws, noise: np.ndarray | None, peak: float) -> np.ndarray:
    """The colour steps in float64 NumPy: per sample ``contrast * M x + brightness * peak`` (M from
    `colour_matrices`), clipped; for uint8 (peak 255) rounded; then the sample's noise map (`noise`, one
    per sample, or None), clipped and rounded again."""
    matrices = colour_matrices(draws.hue, draws.saturation).numpy() * draws.contrast.double().numpy()[:, None, None]
    x = np.einsum("bij,bjhw->bihw", matrices, images.astype(np.float64))
    x = np.clip(x + draws.brightness.double().numpy()[:, None, None, None] * peak, 0, peak)
    x = np.rint(x) if peak == 255 else x
    if noise is not None:
        x = np.clip(x + noise, 0, peak)
        x = np.rint(x) if peak == 255 else x
    return x


def colour_draws(n: int, noise: bool) -> Draws:
    """Colour changes across their ranges, the first four samples' colour neutral; with `noise`, noise
    on every third sample (the neutral ones included)."""
    draws = BatchAugmentation(geometric=False).draw(n, SIZE, SIZE, batch_generator(11))
    draws.contrast[:], draws.hue[:] = 1.0 + torch.linspace(-0.2, 0.2, n), torch.linspace(-0.17, 0.17, n)
    draws.brightness[:], draws.saturation[:] = torch.linspace(0.2, -0.2, n), 1.1
    draws.contrast[:4], draws.hue[:4], draws.brightness[:4], draws.saturation[:4] = 1.0, 0.0, 0.0, 1.0
    draws.noise_std[:] = 0.0
    if noise:
        draws.noise_std[::3] = 0.03
    return draws


def every_third(maps: torch.Tensor, n: int = 32) -> np.ndarray:
    """Per-sample noise maps for `colour_draws`' noisy samples (every third), zeros elsewhere."""
    out = np.zeros((n, *maps.shape[1:]))
    out[::3] = maps.double().numpy()
    return out


def test_uint8_colour_on_a_cpu_is_within_a_level_of_the_float_map():
    """uint8 batches on a CPU are recoloured by OpenCV (8-bit fixed point): within one level of the
    float64 map, two once the noise is added (a level apart before it can round a tie either way); the
    torch path (CUDA's, here on the CPU) within one level of it and nearly always equal."""
    batch = square_batch(32)
    for noisy in (False, True):
        draws = colour_draws(32, noisy)
        noise = draw_noise(draws, batch["bg"])
        assert len(noise.maps) == (11 if noisy else 0)
        reference = numpy_colour(batch["bg"].numpy(), draws, every_third(noise.maps) if noisy else None, 255.0)
        opencv = recolour_opencv(batch["bg"], *colour_maps(draws, 255.0), noise).numpy().astype(np.float64)
        torch_path = recolour_torch(batch["bg"], *colour_maps(draws, 255.0), noise).numpy().astype(np.float64)
        assert np.abs(opencv - reference).max() <= (2 if noisy else 1)
        assert (opencv == reference).mean() > 0.9 and (opencv != torch_path).mean() > 0.01, "8-bit fixed point"
        assert np.abs(torch_path - reference).max() <= 1 and (torch_path == reference).mean() > 0.999
        assert np.array_equal(opencv[1:3], batch["bg"][1:3].numpy()), "neutral, no noise: unchanged"
        assert not np.array_equal(opencv[4:], batch["bg"][4:].numpy()), "the colours changed"
        applied = BatchAugmentation().apply(batch, draws)["bg"].numpy()
        assert np.array_equal(applied, opencv), "uint8 on a CPU: OpenCV"


def test_float_colour_is_the_float_map():
    batch = square_batch(32, dtype=torch.float32)
    draws = colour_draws(32, noise=True)
    noise = draw_noise(draws, batch["bg"])
    reference = numpy_colour(batch["bg"].double().numpy(), draws, every_third(noise.maps), 1.0)
    out = BatchAugmentation().apply(batch, draws)["bg"]
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), reference, atol=1e-5)


def test_the_draws_cover_the_ranges_with_the_probabilities_of_the_transform():
    draws = BatchAugmentation().draw(20000, SIZE, SIZE, batch_generator(0))
    reach = round(SHIFT * SIZE)
    shifted = (draws.shift_y != 0) | (draws.shift_x != 0)
    assert abs(draws.flip.float().mean() - 0.5) < 0.02
    assert abs(shifted.float().mean() - 0.7 * (1 - 1 / (2 * reach + 1) ** 2)) < 0.02
    assert set(draws.shift_y.unique().tolist()) == set(range(-reach, reach + 1))
    assert abs((draws.contrast != 1).float().mean() - 0.5) < 0.02 and draws.brightness.abs().max() <= 0.2
    assert abs((draws.hue != 0).float().mean() - 0.5) < 0.02 and draws.hue.abs().max() <= np.radians(10)
    noisy = draws.noise_std > 0
    assert abs(noisy.float().mean() - 0.3) < 0.02
    assert draws.noise_std[noisy].min() >= 0.01 and draws.noise_std.max() <= 0.03


def test_colour_keeps_grey_grey_and_luma_with_hue_and_saturation():
    grey = torch.tensor([[0.2, 0.2, 0.2], [0.3, 0.5, 0.9]], dtype=torch.float64).T  # columns: a grey, a colour
    matrices = colour_matrices(torch.tensor([0.15, -0.1]), torch.tensor([1.1, 0.9]))
    for matrix in matrices:
        out = matrix @ grey
        torch.testing.assert_close(out[:, 0], grey[:, 0])
        luma = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
        torch.testing.assert_close(luma @ out[:, 1], luma @ grey[:, 1])
        assert not torch.allclose(out[:, 1], grey[:, 1])
    batch = square_batch()
    batch["bg"][:] = 77
    draws = Draws.neutral(16)
    draws.hue, draws.saturation = torch.full((16,), 0.17), torch.full((16,), 1.11)
    assert torch.equal(BatchAugmentation().apply(batch, draws)["bg"], batch["bg"])


def test_the_same_seed_repeats_the_batch_and_another_changes_it():
    augmentation = BatchAugmentation()
    first = augmentation(square_batch(), batch_generator(0, 4, 9))
    again = augmentation(square_batch(), batch_generator(0, 4, 9))
    other = augmentation(square_batch(), batch_generator(0, 5, 9))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["fg_bg"], other["fg_bg"])


def test_noise_is_one_map_for_bg_and_fg_bg_and_never_touches_the_targets():
    batch = square_batch()
    draws = Draws.neutral(16)
    draws.noise_std, draws.noise_seed = torch.full((16,), 0.03), 5
    out = BatchAugmentation().apply(batch, draws)
    assert torch.equal(out["mask"], batch["mask"]) and torch.equal(out["depth"], batch["depth"])
    outside = batch["mask"].bool().expand(-1, 3, -1, -1).logical_not()
    assert torch.equal(out["bg"][outside], out["fg_bg"][outside])
    change = out["bg"].float() - batch["bg"].float()
    assert 0.02 * 255 < change[(batch["bg"] > 20) & (batch["bg"] < 235)].std() < 0.04 * 255


def test_the_augmentation_runs_where_the_batch_lives():
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        batch = {k: v.to(device) for k, v in square_batch().items()}
        out = BatchAugmentation()(batch, batch_generator(1))
        assert all(out[k].device.type == device and out[k].dtype == batch[k].dtype for k in batch)
    cpu = BatchAugmentation(photometric=False)(square_batch(), batch_generator(2))
    on_meta = {k: v.to("meta") for k, v in square_batch().items()}
    meta = BatchAugmentation(photometric=False)(on_meta, batch_generator(2))
    assert all(meta[k].shape == cpu[k].shape for k in cpu)
