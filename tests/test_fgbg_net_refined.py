"""The refined network: outputs at the input's size, refinement only in the tiles it chose."""

import pytest
import torch

from fgbg_utils.models import build_model, count_parameters
from fgbg_utils.models.fgbg_net_refined import (
    TILE,
    BlockRefiner,
    RefinedFgBgNet,
    changed_tiles,
    context_size,
    uncertain_tiles,
)


def pasted_pair(size: int, top: int, left: int, side: int, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A random background and the same with a random square pasted at (top, left)."""
    generator = torch.Generator().manual_seed(size)
    bg = torch.rand(batch, 3, size, size, generator=generator)
    fg_bg = bg.clone()
    fg_bg[..., top : top + side, left : left + side] = torch.rand(batch, 3, side, side, generator=generator)
    return bg, fg_bg


def trained_looking(model: RefinedFgBgNet) -> RefinedFgBgNet:
    """The model with a refiner whose last layer is no longer zero, so that it changes what it sees."""
    torch.manual_seed(1)
    last = model.refiner.layers[-1]
    torch.nn.init.normal_(last.weight, std=0.5)
    torch.nn.init.constant_(last.bias, 1.0)
    return model.eval()


@pytest.mark.parametrize("size", [32, 48, 64, 96, 160, 224])
def test_outputs_come_out_at_the_input_size_for_every_supported_size(size):
    torch.manual_seed(0)
    model = build_model("fgbg_net_refined")
    bg, fg_bg = pasted_pair(size, size // 4, size // 3, size // 3)
    output = model(bg, fg_bg)
    for key in ("mask", "depth", "ground"):
        assert output[key].shape == (2, 1, size, size)
        assert torch.isfinite(output[key]).all()
    assert output["horizon"].shape == (2, context_size(size))
    assert output["depth"].min() >= 0 and output["depth"].max() <= 1
    (output["mask"].mean() + output["depth"].mean()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_the_context_is_three_sevenths_of_the_frame_in_multiples_of_16():
    assert [context_size(size) for size in (32, 48, 64, 96, 160, 224, 448)] == [32, 32, 32, 48, 64, 96, 192]


def test_an_empty_difference_leaves_the_coarse_mask_untouched():
    model = trained_looking(build_model("fgbg_net_refined"))
    bg = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        refinement = model.refine(bg, bg.clone())
    assert not refinement.selected.any()
    assert torch.equal(refinement.prediction["mask"], refinement.coarse_mask)


def test_the_refiner_stays_in_the_graph_when_no_tile_is_chosen():
    """Distributed training needs a gradient (zero) for every parameter on every rank."""
    model = build_model("fgbg_net_refined")
    bg = torch.rand(2, 3, 64, 64)
    model(bg, bg.clone())["mask"].sum().backward()
    assert all(p.grad is not None and not p.grad.any() for p in model.refiner.parameters())


def test_only_the_chosen_tiles_change_and_they_do_change():
    model = trained_looking(build_model("fgbg_net_refined"))
    bg, fg_bg = pasted_pair(224, top=70, left=100, side=40)  # rows 70..109, columns 100..139
    with torch.no_grad():
        refinement = model.refine(bg, fg_bg)
    changed = changed_tiles(bg, fg_bg)[0, 0]
    assert changed.nonzero().tolist() == [[row, column] for row in range(4, 7) for column in range(6, 9)]
    assert (refinement.selected <= changed_tiles(bg, fg_bg)).all()
    chosen = refinement.selected.repeat_interleave(TILE, dim=2).repeat_interleave(TILE, dim=3)
    mask, coarse = refinement.prediction["mask"], refinement.coarse_mask
    assert torch.equal(mask[~chosen], coarse[~chosen])
    assert chosen.any() and (mask[chosen] != coarse[chosen]).all()


def test_a_tile_is_unsure_when_the_coarse_mask_is_unsure_within_reach_of_it():
    logits = torch.full((1, 1, 64, 64), -20.0)
    logits[..., 10, 35] = 0.0  # unsure, in tile (0, 2), 3 px from tile (0, 1) and 5 px from tile (1, 2)
    assert uncertain_tiles(logits)[0, 0].nonzero().tolist() == [[0, 1], [0, 2]]
    assert not uncertain_tiles(torch.full((1, 1, 64, 64), 20.0)).any()


def test_the_block_refiner_sees_each_tile_with_its_margin_as_a_convolution_would():
    """The gathered windows, corrected by four unpadded convolutions, equal the same layers run over the
    whole (replicate-padded) frame and cut to the tile: the gather picks the right pixels."""
    torch.manual_seed(0)
    refiner = BlockRefiner().eval()
    torch.nn.init.normal_(refiner.layers[-1].weight)
    bg, fg_bg, logits = torch.rand(2, 3, 64, 48), torch.rand(2, 3, 64, 48), torch.rand(2, 1, 64, 48)
    selected = torch.zeros(2, 1, 4, 3, dtype=torch.bool)
    selected[0, 0, 0, 2] = selected[1, 0, 3, 0] = selected[1, 0, 1, 1] = True
    with torch.no_grad():
        refined = refiner(logits, bg, fg_bg, selected)
        inputs = torch.cat((logits, fg_bg, bg, fg_bg - bg, (fg_bg - bg).abs()), dim=1)
        whole = refiner.layers(torch.nn.functional.pad(inputs, (4, 4, 4, 4), mode="replicate"))
    expected = logits.clone()
    for image, row, column in selected[:, 0].nonzero().tolist():
        rows, columns = slice(row * TILE, (row + 1) * TILE), slice(column * TILE, (column + 1) * TILE)
        expected[image, :, rows, columns] += whole[image, :, rows, columns]
    torch.testing.assert_close(refined, expected)


def test_an_untrained_refiner_starts_as_the_upsampled_base_network():
    torch.manual_seed(0)
    model = build_model("fgbg_net_refined").eval()
    bg, fg_bg = pasted_pair(224, top=70, left=100, side=40)
    with torch.no_grad():
        refinement = model.refine(bg, fg_bg)
        small = [torch.nn.functional.interpolate(x, size=96, mode="bilinear", antialias=True) for x in (bg, fg_bg)]
        base = model.base(*small)
    upsampled = torch.nn.functional.interpolate(base["mask"], size=224, mode="bilinear", align_corners=False)
    assert torch.equal(refinement.prediction["mask"], upsampled)
    torch.testing.assert_close(refinement.prediction["horizon"], base["horizon"])


def test_both_refined_networks_stay_within_the_courses_limit():
    assert count_parameters(build_model("fgbg_net_refined")) < 200_000
    assert count_parameters(build_model("fgbg_net_refined_wide")) <= 1_500_000


def test_the_upsampled_ablation_is_the_refined_network_without_its_refiner():
    torch.manual_seed(0)
    refined = trained_looking(build_model("fgbg_net_refined"))
    ablation = build_model("fgbg_net_upsampled").eval()
    ablation.load_state_dict({k: v for k, v in refined.state_dict().items() if not k.startswith("refiner.")})
    bg, fg_bg = pasted_pair(224, top=70, left=100, side=40)
    with torch.no_grad():
        with_refiner, without = refined.refine(bg, fg_bg), ablation.refine(bg, fg_bg)
    assert torch.equal(without.prediction["mask"], with_refiner.coarse_mask)
    assert not without.selected.any() and with_refiner.selected.any()
