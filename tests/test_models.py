"""Networks: exact seed parameter counts, one shared interface, and the default net's design promises."""

import pytest
import torch
from torchsummary import summary

from fgbg_utils.models import DEFAULT_MODEL, MODELS, WIDE_WIDTH, build_model, count_parameters
from fgbg_utils.models.fgbg_net import DEFAULT_WIDTHS, FgBgNet, scaled_widths
from fgbg_utils.models.fgbg_net_refined import TILE, RefinedFgBgNet, context_size

SEED_PARAMETERS = {
    "seed004_dilated": 1_340_224,
    "seed002_unet6": 8_631_810,
    "seed000_unet_shared": 33_389_314,
    "seed003_unet": 34_520_514,
}
LARGE_SEEDS = {"seed000_unet_shared", "seed003_unet"}
OWN_NETWORKS = {"fgbg_net", "fgbg_net_wide", "fgbg_net_refined", "fgbg_net_refined_wide", "fgbg_net_upsampled"}


def image_pair(size: int, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator), torch.rand(batch, 3, size, size, generator=generator)


@pytest.mark.parametrize(("name", "expected"), SEED_PARAMETERS.items())
def test_seed_parameter_counts_match_write_ups(name, expected):
    assert count_parameters(build_model(name)) == expected


def test_default_model_stays_small():
    assert count_parameters(build_model(DEFAULT_MODEL)) <= 1_500_000


def test_count_parameters_skips_frozen_ones():
    model = build_model("fgbg_net")
    total = count_parameters(model)
    frozen = sum(p.numel() for p in model.encoder.parameters())
    model.encoder.requires_grad_(False)
    assert count_parameters(model) == total - frozen


def test_registry_lists_every_network():
    assert set(MODELS) == {*OWN_NETWORKS, *SEED_PARAMETERS}


def test_unknown_name_raises_with_the_choices():
    with pytest.raises(ValueError, match="unknown model 'unet9'.*fgbg_net.*seed004_dilated"):
        build_model("unet9")


@pytest.mark.parametrize(
    ("name", "size"),
    [(name, size) for name in MODELS for size in (64, 96) if not (name in LARGE_SEEDS and size == 96)],
)
def test_forward_shapes_dtypes_and_depth_range(name, size):
    torch.manual_seed(0)
    model = build_model(name)
    output = model(*image_pair(size))
    assert set(output) == ({"mask", "depth", "ground", "horizon"} if name in OWN_NETWORKS else {"mask", "depth"})
    rows = context_size(size) if isinstance(model, RefinedFgBgNet) else size
    assert output.pop("horizon", torch.zeros(2, rows)).shape == (2, rows)  # a score per row it worked at
    for value in output.values():
        assert value.shape == (2, 1, size, size)
        assert value.dtype == torch.float32
        assert torch.isfinite(value).all()
    assert output["depth"].min() >= 0 and output["depth"].max() <= 1


@pytest.mark.parametrize("name", MODELS)
def test_runs_on_cpu_device_in_eval_without_grad(name):
    model = build_model(name).to(torch.device("cpu")).eval()
    bg, fg_bg = image_pair(64, batch=1)
    with torch.no_grad():
        first = model(bg, fg_bg)
        second = model(bg, fg_bg)
    assert not first["mask"].requires_grad
    assert torch.equal(first["mask"], second["mask"]), "eval mode must be deterministic (BatchNorm running stats)"


@pytest.mark.parametrize("name", ["fgbg_net", "fgbg_net_refined"])
@pytest.mark.parametrize("head", ["mask", "depth"])
def test_each_head_alone_trains_the_shared_encoder(head, name):
    torch.manual_seed(0)
    model = build_model(name)
    model(*image_pair(64))[head].mean().backward()
    stem_weight = getattr(model, "base", model).encoder.stem[0][0].weight
    assert stem_weight.grad is not None and stem_weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["fgbg_net", "fgbg_net_refined"])
def test_the_prediction_depends_on_the_background(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    bg, fg_bg = image_pair(64)
    other_bg, _ = image_pair(64, seed=1)
    with torch.no_grad():
        with_bg, with_other_bg = model(bg, fg_bg), model(other_bg, fg_bg)
    for key in ("mask", "depth"):
        assert not torch.allclose(with_bg[key], with_other_bg[key])


@pytest.mark.parametrize("name", ["fgbg_net", "fgbg_net_refined"])
def test_the_output_is_independent_across_the_batch(name):
    """bg and fg_bg share one encoder pass; their halves must not be mixed up between samples."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    bg, fg_bg = image_pair(64, batch=3)
    with torch.no_grad():
        batched = model(bg, fg_bg)["mask"]
        alone = model(bg[1:2], fg_bg[1:2])["mask"]
    torch.testing.assert_close(batched[1:2], alone, rtol=1e-4, atol=1e-5)


def test_torchsummary_total_matches_count(capsys):
    model = build_model(DEFAULT_MODEL)
    summary(model, [(3, 64, 64), (3, 64, 64)], device="cpu")
    printed = capsys.readouterr().out
    assert f"Total params: {count_parameters(model):,}" in printed


def test_flops_per_sample_counts_a_hand_computed_conv():
    from fgbg_utils.models.costs import architecture_table, flops_per_sample

    class OneConv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(6, 2, kernel_size=3, padding=1, bias=False)

        def forward(self, bg, fg_bg):
            out = self.conv(torch.cat([bg, fg_bg], dim=1))
            return {"mask": out[:, :1], "depth": out[:, 1:]}

    # 2 FLOPs per multiply-add: 2 * (6 * 3 * 3 inputs) * 2 output channels * 32 * 32 pixels
    assert flops_per_sample(OneConv(), size=32) == 2 * 6 * 9 * 2 * 32 * 32
    table = {row["model"]: row for row in architecture_table(64)}
    assert table["seed004_dilated"]["parameters"] == 1_340_224
    assert table["fgbg_net"]["gflops"] < table["seed002_unet6"]["gflops"]


def test_layer_table_adds_up_to_the_parameter_count():
    from fgbg_utils.models import MODELS, build_model, count_parameters
    from fgbg_utils.models.costs import layer_table

    for name in MODELS:
        model = build_model(name)
        rows = layer_table(model, size=64)
        per_layer = {row["layer"]: row["parameters"] for row in rows}  # a layer called twice counts once
        assert sum(per_layer.values()) == count_parameters(model), name
        # the refined networks end on their tiles, the ablation on its base's 32 px context
        last = {"fgbg_net_upsampled": (32, 32)}.get(name, (TILE, TILE) if "refined" in name else (64, 64))
        assert rows[-1]["output"][-2:] == last or name == "seed003_unet", name


def test_ground_ramp_matches_the_depth_encoding_of_the_camera():
    """fgbg_net draws the ground exactly as the dataset encodes it (GroundCamera + encode_depth)."""
    import numpy as np

    from fgbg_utils.depth import GroundCamera, encode_depth
    from fgbg_utils.models.fgbg_net import GroundPlane

    size, camera = 96, GroundCamera(horizon=0.37, height_m=1.5)
    rows = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    horizon, slope = torch.tensor(camera.horizon), torch.tensor(1.0 / (camera.focal * camera.height_m))
    drawn = GroundPlane.encoded(rows, horizon, slope).numpy() * 255.0
    expected = encode_depth(camera.row_depth(np.arange(size), size)).astype(np.float64)
    assert np.abs(drawn - expected).max() <= 0.5 + 1e-3  # the stored maps are rounded to integers
    assert (drawn[rows.numpy() < camera.horizon] == 0).all(), "the sky is at the far plane exactly"


def test_ground_ramp_passes_gradients_where_it_is_clipped():
    """A foot row guessed in the sky (clipped to 0) must still be pulled down to the ground."""
    from fgbg_utils.models.fgbg_net import GroundPlane

    rows = torch.tensor([0.1, 0.3, 0.9], requires_grad=True)
    drawn = GroundPlane.encoded(rows, torch.tensor(0.4), torch.tensor(1.0 / 1.6), straight_through=True)
    assert drawn[0] == 0 and drawn[1] == 0 and 0 < drawn[2] < 1
    drawn.sum().backward()
    assert (rows.grad > 0).all()


@pytest.mark.parametrize("ground_gate", [30.0, -30.0])
def test_depth_is_the_ramp_on_the_ground_and_the_foot_rows_ramp_above_it(ground_gate):
    """Gate open: the ground ramp, row by row. Gate closed (everything upright, nothing below but the
    frame's edge): every pixel stands on the bottom row and takes its ramp. Object rule off, offset 0."""
    torch.manual_seed(0)
    model = build_model("fgbg_net").eval()
    head, refiner = model.depth_head[-1], model.refiner.residual[-1]
    head.weight.data.zero_()
    head.bias.data = torch.tensor([-30.0, ground_gate, 0.0])  # stands (off), gate, offset
    refiner.weight.data[1:].zero_()
    refiner.bias.data[1:].zero_()
    with torch.no_grad():
        depth = model(*image_pair(64))["depth"]
    column = depth[:, 0, :, 0]
    torch.testing.assert_close(depth, column[:, None, :, None].expand_as(depth), rtol=0, atol=1e-6)
    if ground_gate > 0:
        assert (column[:, 1:] >= column[:, :-1] - 1e-6).all(), "nearer (larger) lower in the frame"
        assert (column[:, 0] < 1e-6).all() and (column[:, -1] > 0.1).all(), "sky at the top, ground at the bottom"
    else:
        torch.testing.assert_close(column, column[:, -1:].expand_as(column), rtol=0, atol=1e-6)
        assert (column[:, -1] > 0.1).all()


def test_the_pasted_object_takes_the_ramp_at_its_masks_lowest_row():
    """A confident mask and an open "stands" gate: the object's pixels get the ramp at its lowest row."""
    from fgbg_utils.models.fgbg_net import GroundPlane, lowest_rows

    probability = torch.zeros(2, 1, 8, 8)
    probability[0, 0, 2:6, 3] = 0.9  # lowest row 5
    probability[0, 0, 6, 5] = 0.4  # below 0.5: not part of it
    assert lowest_rows(probability).flatten().tolist() == [5.5 / 8, 7.5 / 8]  # none: the bottom row
    torch.manual_seed(0)
    model = build_model("fgbg_net").eval()
    head, refiner = model.depth_head[-1], model.refiner.residual[-1]
    head.weight.data.zero_()
    refiner.weight.data.zero_()
    refiner.bias.data.zero_()
    mask_logits = torch.full((2, 1, 64, 64), -30.0)
    mask_logits[..., 40:52, 20:30] = 30.0  # the object: rows 40..51
    head.bias.data = torch.tensor([30.0, 0.0, 0.0])  # stands: open
    model.mask_head.register_forward_hook(lambda module, inputs, output: mask_logits[..., ::2, ::2])
    camera = {}
    model.ground.register_forward_hook(lambda module, inputs, output: camera.update(outputs=output))
    with torch.no_grad():
        out = model(*image_pair(64))
    expected = GroundPlane.encoded(torch.tensor(51.5 / 64), *camera["outputs"])[:1]
    inside = out["depth"][..., 41:51, 21:29]
    torch.testing.assert_close(inside, expected.expand_as(inside), rtol=0, atol=1e-4)


def test_carry_up_takes_the_value_at_the_nearest_foot_below():
    """Hand-made columns: a pixel keeps its own value at a foot, else takes the one carried from below."""
    from fgbg_utils.models.fgbg_net import carry_up

    value = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]]).view(1, 1, 4, 2)
    foot = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]).view(1, 1, 4, 2)
    expected = torch.tensor([[2.0, 10.0], [2.0, 40.0], [4.0, 40.0], [4.0, 40.0]]).view(1, 1, 4, 2)
    assert torch.equal(carry_up(foot, value), expected)  # the bottom row keeps its own value, foot or not
    half = carry_up(torch.full((1, 1, 2, 1), 0.5), torch.tensor([0.0, 8.0]).view(1, 1, 2, 1))
    assert half.flatten().tolist() == [4.0, 8.0]  # a soft foot mixes its own value with the one below
    foot.requires_grad_(True)
    value = value.clone().requires_grad_(True)
    carry_up(foot, value)[..., 0, 0].sum().backward()
    assert value.grad[0, 0, 1, 0] == 1 and foot.grad[0, 0, 1, 0] == 2.0 - 4.0  # d/dfoot = own - carried


def test_row_statistics_match_numpy():
    """The horizon's raw profile: per row and channel, the mean, the spread along the row, and the
    mean change to the next row down (the bottom row repeats the one above it)."""
    import numpy as np

    from fgbg_utils.models.fgbg_net import row_statistics

    image = np.random.default_rng(3).standard_normal((2, 3, 5, 7)).astype(np.float32)
    down = np.abs(np.diff(image, axis=2))
    down = np.concatenate((down, down[:, :, -1:]), axis=2)
    expected = np.concatenate((image.mean(3), image.std(3, ddof=1), down.mean(3)), axis=1)
    profile = row_statistics(torch.from_numpy(image))
    assert profile.shape == (2, 9, 5)
    np.testing.assert_allclose(profile.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_one_learnt_camera_height_serves_every_image():
    """The slope is the dataset's, not each image's: 1 / 1.6 m at the start, equal across a batch of
    different scenes whatever the ground's parameters are, and learnt from the depth loss."""
    model = build_model("fgbg_net")
    seen = {}
    model.ground.register_forward_hook(lambda module, inputs, output: seen.update(slope=output[1]))
    bg, fg_bg = image_pair(64)
    scenes = torch.cat((bg, -bg)), torch.cat((fg_bg, 2 * fg_bg))
    model(*scenes)["depth"].mean().backward()
    assert torch.allclose(seen["slope"].flatten(), torch.full((4,), 1 / 1.6))
    assert model.ground.camera_height.weight.grad.abs().item() > 0
    with torch.no_grad():
        for parameter in model.ground.parameters():
            parameter.normal_(std=0.3)
        model(*scenes)
    slope = seen["slope"].flatten()
    assert slope.shape == (4,) and (slope == slope[0]).all() and not torch.isclose(slope[0], torch.tensor(1 / 1.6))


@pytest.mark.parametrize(
    ("width", "channels", "parameters"),
    [(1.0, (24, 48, 96, 128), 166_970), (2.0, (48, 96, 192, 256), 583_834), (3.0, (72, 144, 288, 384), 1_270_266)],
)
def test_the_width_multiplier_scales_every_stage_and_stays_within_the_courses_limit(width, channels, parameters):
    assert scaled_widths(DEFAULT_WIDTHS, width) == channels
    model = FgBgNet(width=width)
    assert model.encoder.stem[0][0].out_channels == channels[0]
    assert tuple(fusion.mix[0].out_channels for fusion in model.fusions) == channels
    assert model.mask_head[-1].in_channels == model.depth_head[-1].in_channels == channels[0]
    assert count_parameters(model) == parameters <= 1_500_000


def test_widths_round_to_multiples_of_eight_and_refuse_zero():
    assert scaled_widths((24, 48), 1.3) == (32, 64) and scaled_widths((4,), 0.5) == (8,)
    with pytest.raises(ValueError, match="width must be above 0"):
        FgBgNet(width=0)


def test_the_wide_network_is_the_registered_width_and_runs_at_224_px():
    model = build_model("fgbg_net_wide").eval()
    assert count_parameters(model) == count_parameters(FgBgNet(width=WIDE_WIDTH))
    with torch.no_grad():
        output = model(*image_pair(224, batch=1))
    assert output["mask"].shape == output["depth"].shape == (1, 1, 224, 224)
    assert output["horizon"].shape == (1, 224)
    assert bool(((output["depth"] >= 0) & (output["depth"] <= 1)).all())
