"""Losses, metrics, accumulator and baselines against hand-computed cases and NumPy references."""

import math

import numpy as np
import pytest
import torch

from fgbg_utils.depth import FAR_M, NEAR_M, decode_depth, encode_depth
from fgbg_utils.losses import (
    DEPTH_PARTS,
    MASK_PARTS,
    FgBgLoss,
    LossWeights,
    NonFiniteLossError,
    dice_loss,
    gradient_loss,
    ground_loss,
    ground_target,
    horizon_from_depth,
    horizon_loss,
    lovasz_hinge,
    ssim,
)
from fgbg_utils.metrics import (
    MetricAccumulator,
    background_depth,
    choose_difference_threshold,
    decode_depth_torch,
    depth_metrics,
    depth_stats,
    difference_mask,
    mask_metrics,
    mask_metrics_from_probs,
    mask_stats,
    summarize_depth,
)


def masks(*rows_list: list[str]) -> torch.Tensor:
    """Bx1x4x4 float masks from strings like '1100' per row."""
    return torch.tensor([[[[float(c) for c in row] for row in rows]] for rows in rows_list])


def logits_of(binary: torch.Tensor) -> torch.Tensor:
    return torch.where(binary > 0.5, 5.0, -5.0)


# --- mask metrics -------------------------------------------------------------------------------

A = ["1100", "1100", "0000", "0000"]  # 4 pixels
B = ["0110", "0110", "0000", "0000"]  # 4 pixels, 2 shared with A
C = ["0000", "0000", "0011", "0011"]  # disjoint from A
EMPTY = ["0000"] * 4


@pytest.mark.parametrize(
    ("pred", "target", "iou", "dice"),
    [
        (A, B, 2 / 6, 2 * 2 / 8),  # partial overlap
        (A, C, 0.0, 0.0),  # disjoint
        (A, A, 1.0, 1.0),  # identical
        (EMPTY, EMPTY, 1.0, 1.0),  # both empty: a correct "nothing here"
        (EMPTY, A, 0.0, 0.0),  # prediction empty, target not
        (A, EMPTY, 0.0, 0.0),  # false alarm on an empty target
    ],
)
def test_mask_iou_dice_hand_cases(pred, target, iou, dice):
    stats = mask_stats(masks(pred) > 0.5, masks(target))
    assert stats["iou"].item() == pytest.approx(iou)
    assert stats["dice"].item() == pytest.approx(dice)
    result = mask_metrics(logits_of(masks(pred)), masks(target))
    assert result["mask_iou"] == pytest.approx(iou)
    assert result["mask_dice"] == pytest.approx(dice)


def test_per_image_and_dataset_level_differ():
    # image 1: big 8-pixel target, prediction gets it exactly; image 2: 1-pixel target missed.
    big = ["1111", "1111", "0000", "0000"]
    dot = ["0000", "0000", "0000", "0001"]
    pred = masks(big, EMPTY)
    target = masks(big, dot)
    result = mask_metrics(logits_of(pred), target)
    assert result["mask_iou"] == pytest.approx((1.0 + 0.0) / 2)
    assert result["mask_dice"] == pytest.approx(0.5)
    assert result["mask_iou_dataset"] == pytest.approx(8 / 9)
    assert result["mask_dice_dataset"] == pytest.approx(2 * 8 / (8 + 9))


def test_dataset_level_all_empty_is_one():
    result = mask_metrics(logits_of(masks(EMPTY, EMPTY)), masks(EMPTY, EMPTY))
    assert result["mask_iou_dataset"] == 1.0 and result["mask_dice_dataset"] == 1.0


def test_threshold_is_on_probabilities_and_targets_are_not_squashed():
    target = masks(A)
    # a target is binarised as it is (> 0.5), never through a sigmoid: faint 0.2 noise stays background
    noisy = target.clone()
    noisy[0, 0, 3, 3] = 0.2
    assert mask_metrics(logits_of(target), noisy)["mask_iou"] == 1.0
    probs = torch.where(target > 0.5, 0.7, 0.3)
    assert mask_metrics_from_probs(probs, target)["mask_iou"] == 1.0
    assert mask_metrics_from_probs(probs, target, threshold=0.8)["mask_iou"] == 0.0
    # logit 0.5 is probability 0.62: foreground at 0.5, background at 0.7.
    logits = torch.where(target > 0.5, 0.5, -5.0)
    assert mask_metrics(logits, target)["mask_iou"] == 1.0
    assert mask_metrics(logits, target, threshold=0.7)["mask_iou"] == 0.0


# --- depth metrics ------------------------------------------------------------------------------


def test_decode_depth_torch_matches_numpy_decoder():
    codes = np.arange(256, dtype=np.uint8)
    torch_m = decode_depth_torch(torch.from_numpy(codes).float() / 255.0).numpy()
    np.testing.assert_allclose(torch_m, decode_depth(codes), rtol=1e-6)
    assert torch_m[0] == pytest.approx(100.0) and torch_m[-1] == pytest.approx(2.0)


def test_rmse_mae_match_numpy():
    rng = np.random.default_rng(0)
    pred = rng.random((3, 1, 16, 16))
    target = rng.random((3, 1, 16, 16))
    stats = depth_stats(torch.from_numpy(pred).float(), torch.from_numpy(target).float())
    err = pred.astype(np.float32).astype(np.float64) - target.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(stats["rmse"].numpy(), np.sqrt((err**2).reshape(3, -1).mean(1)), rtol=1e-9)
    np.testing.assert_allclose(stats["mae"].numpy(), np.abs(err).reshape(3, -1).mean(1), rtol=1e-9)
    summary = depth_metrics(torch.from_numpy(pred).float(), torch.from_numpy(target).float())
    assert summary["depth_rmse_pooled"] == pytest.approx(np.sqrt((err**2).mean()))


def test_abs_rel_and_delta_hand_case_in_metres():
    # gt: 2 m, 4 m, 10 m, 100 m (sky); pred: 2 m, 5 m, 20 m, 100 m.
    gt_m = np.array([2.0, 4.0, 10.0, 100.0])
    pred_m = np.array([2.0, 5.0, 20.0, 100.0])

    def values(metres):
        # exact [0, 1] encoding (unquantised) so the decoding gives back these metres
        return (1.0 / metres - 1.0 / 100.0) / (1.0 / 2.0 - 1.0 / 100.0)

    gt = torch.tensor(values(gt_m)).view(1, 1, 2, 2)
    pred = torch.tensor(values(pred_m)).view(1, 1, 2, 2)
    stats = depth_stats(pred, gt)
    assert stats["abs_rel"].item() == pytest.approx((0 + 1 / 4 + 10 / 10 + 0) / 4)
    # ratios 1, 1.25, 2, 1: strictly below 1.25 -> 2 pixels; below 1.5625 -> 3; below 1.953 -> 3
    assert stats["delta1"].item() == pytest.approx(2 / 4)
    assert stats["delta2"].item() == pytest.approx(3 / 4)
    assert stats["delta3"].item() == pytest.approx(3 / 4)
    assert stats["rmse_m"].item() == pytest.approx(math.sqrt((0 + 1 + 100 + 0) / 4))


@pytest.mark.parametrize("level", [0.0, 0.5, 1.0])
def test_constant_depth_maps_are_finite(level):
    target = torch.full((2, 1, 8, 8), level)
    for pred in (target.clone(), torch.zeros_like(target), torch.ones_like(target)):
        summary = depth_metrics(pred, target)
        assert all(math.isfinite(v) for v in summary.values()), summary
    same = depth_metrics(target.clone(), target)
    assert same["depth_rmse"] == 0 and same["depth_abs_rel"] == 0 and same["depth_delta1"] == 1
    assert same["depth_ssim"] == pytest.approx(1.0)


# --- SSIM ---------------------------------------------------------------------------------------


def numpy_ssim(x: np.ndarray, y: np.ndarray, window: int, gaussian: bool, sigma: float = 1.5) -> float:
    """Mean SSIM of two HxW images, valid windows, weighted statistics (independent loops)."""
    if gaussian:
        c = np.arange(window) - (window - 1) / 2
        g = np.exp(-(c**2) / (2 * sigma**2))
    else:
        g = np.ones(window)
    w = np.outer(g, g)
    w /= w.sum()
    values = []
    for i in range(x.shape[0] - window + 1):
        for j in range(x.shape[1] - window + 1):
            px, py = x[i : i + window, j : j + window], y[i : i + window, j : j + window]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            c1, c2 = 0.01**2, 0.03**2
            values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_identity_and_decreasing_with_noise():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 32, 32)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
    scores = [ssim(x, (x + s * torch.randn_like(x)).clamp(0, 1)).item() for s in (0.02, 0.1, 0.3)]
    assert scores[0] > scores[1] > scores[2]
    assert scores[0] < 1.0


@pytest.mark.parametrize("gaussian", [True, False])
def test_ssim_matches_numpy_reference(gaussian):
    rng = np.random.default_rng(1)
    x = rng.random((12, 10))
    y = np.clip(x + 0.2 * rng.standard_normal((12, 10)), 0, 1)
    got = ssim(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None], window=7, gaussian=gaussian)
    assert got.item() == pytest.approx(numpy_ssim(x, y, 7, gaussian), abs=1e-9)


def test_the_depth_score_ssim_matches_the_numpy_reference_on_stored_depth_levels():
    """depth_stats computes SSIM in float32 (fast on a CPU): on 8-bit depth levels with flat stretches
    (the variance terms cancel most there) it stays within 1e-5 of the float64 NumPy reference."""
    rng = np.random.default_rng(3)
    target = np.repeat(rng.integers(0, 256, (1, 12)), 4, axis=0).repeat(8, axis=1)[:, :48] / 255.0
    target = np.tile(target, (12, 1))[:48]
    pred = np.clip(target + rng.normal(0, 0.02, target.shape), 0, 1)
    got = depth_stats(torch.from_numpy(pred)[None, None], torch.from_numpy(target)[None, None])["ssim"]
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(numpy_ssim(pred, target, 7, gaussian=True), abs=1e-5)


def test_ssim_is_per_image():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16)
    y = x.clone()
    y[1] = torch.rand(1, 16, 16)
    scores = ssim(x, y)
    assert scores.shape == (2,)
    assert scores[0].item() == pytest.approx(1.0, abs=1e-5) and scores[1].item() < 0.5


# --- losses -------------------------------------------------------------------------------------


def lovasz_by_definition(logits: np.ndarray, target: np.ndarray) -> float:
    """The Lovász extension of the IoU loss at the hinge errors, by its definition: sort the errors,
    grow the set of mispredicted pixels one at a time, and weight each error by the IoU loss it adds."""

    def iou_loss(truth: np.ndarray, wrong: np.ndarray) -> float:
        union = (truth | wrong).sum()
        return 0.0 if union == 0 else 1.0 - (truth & ~wrong).sum() / union

    losses = []
    for z, t in zip(logits.reshape(len(logits), -1), target.reshape(len(target), -1).astype(bool), strict=True):
        errors = np.maximum(1.0 - z * np.where(t, 1.0, -1.0), 0.0)
        wrong, total = np.zeros_like(t), 0.0
        for pixel in np.argsort(-errors, kind="stable"):
            before = iou_loss(t, wrong)
            wrong[pixel] = True
            total += errors[pixel] * (iou_loss(t, wrong) - before)
        losses.append(total)
    return float(np.mean(losses))


def test_lovasz_hinge_matches_its_definition():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((4, 1, 5, 5)) * 2
    t = rng.random((4, 1, 5, 5)) > 0.6
    t[2] = False  # an empty target: the loss is the largest hinge error
    t[3] = True
    loss = lovasz_hinge(torch.from_numpy(z), torch.from_numpy(t.astype(np.float64)))
    assert loss.item() == pytest.approx(lovasz_by_definition(z, t), rel=1e-9)
    assert lovasz_by_definition(z[2:3], t[2:3]) == pytest.approx(np.maximum(1 + z[2], 0).max())
    perfect = torch.from_numpy(np.where(t, 3.0, -3.0))  # every pixel beyond the margin: no loss
    assert lovasz_hinge(perfect, torch.from_numpy(t.astype(np.float64))).item() == 0


def test_lovasz_hinge_weighs_a_small_objects_outline_by_its_iou():
    """One wrong pixel costs 1/|union| of the IoU: more on a 4-pixel object than on a 16-pixel one."""
    small, large = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
    small[..., 2:4, 2:4], large[..., 2:6, 2:6] = 1, 1
    losses = []
    for target in (small, large):
        logits = torch.where(target > 0, 1.0, -1.0)  # every pixel exactly on the margin ...
        logits[..., 2, 2] = 0.0  # ... but one object pixel undecided: hinge error 1
        losses.append(lovasz_hinge(logits, target).item())
    assert losses == pytest.approx([1 / 4, 1 / 16])


def test_bce_and_dice_against_formulas():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((2, 1, 4, 4))
    t = (rng.random((2, 1, 4, 4)) > 0.5).astype(np.float64)
    p = 1 / (1 + np.exp(-z))
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()
    dice = np.mean([1 - (2 * (p[i] * t[i]).sum() + 1) / (p[i].sum() + t[i].sum() + 1) for i in range(2)])
    outputs = {"mask": torch.from_numpy(z)}
    batch = {"mask": torch.from_numpy(t)}
    total, parts = FgBgLoss(mode="mask")(outputs, batch)
    assert parts["mask_bce"].item() == pytest.approx(bce, rel=1e-6)
    assert parts["mask_dice"].item() == pytest.approx(dice, rel=1e-6)
    assert dice_loss(torch.from_numpy(z), torch.from_numpy(t)).item() == pytest.approx(dice, rel=1e-6)
    lovasz = lovasz_by_definition(z, t.astype(bool))
    assert parts["mask_lovasz"].item() == pytest.approx(lovasz, rel=1e-6)
    assert total.item() == pytest.approx(bce + dice + lovasz, rel=1e-6)


def test_dice_loss_empty_target_and_prediction_is_near_zero():
    target = torch.zeros(1, 1, 4, 4)
    assert dice_loss(torch.full_like(target, -20.0), target).item() == pytest.approx(0.0, abs=1e-6)
    assert dice_loss(torch.full_like(target, 20.0), target).item() > 0.9


def test_gradient_loss_hand_case():
    pred = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])  # dx = 1 in both rows, dy = 2 in both columns
    target = torch.zeros_like(pred)
    assert gradient_loss(pred, target).item() == pytest.approx(1.0 + 2.0)
    # a constant offset has no gradient error
    assert gradient_loss(pred + 0.3, pred).item() == pytest.approx(0.0, abs=1e-6)


def _pair_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    outputs = {"mask": torch.randn(2, 1, 8, 8, generator=g), "depth": torch.rand(2, 1, 8, 8, generator=g)}
    outputs["ground"] = torch.randn(2, 1, 8, 8, generator=g)
    batch = {"mask": (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float(), "depth": torch.rand(2, 1, 8, 8, generator=g)}
    return outputs, batch


def test_depth_terms_against_formulas():
    outputs, batch = _pair_batch()
    total, parts = FgBgLoss(mode="depth")(outputs, batch)
    pred, target = outputs["depth"], batch["depth"]
    assert parts["depth_l1"].item() == pytest.approx((pred - target).abs().mean().item())
    assert parts["depth_ssim"].item() == pytest.approx((1 - ssim(pred, target).mean().item()) / 2)
    assert parts["depth_grad"].item() == pytest.approx(gradient_loss(pred, target).item())
    assert total.item() == pytest.approx(sum(parts[k].item() for k in DEPTH_PARTS), rel=1e-6)


def test_ground_target_hand_case():
    """Ground where the row below is nearer (and the sky); upright where it is as near (a post, a
    rock) or farther (the underside of a crown over the ground behind it)."""
    depth = torch.tensor(
        [
            [0.0, 0.0, 0.3, 0.4],  # sky, sky, a post's top, a crown
            [0.0, 0.2, 0.3, 0.4],  # sky, a rock's top, the post, the crown's underside
            [0.5, 0.2, 0.3, 0.1],  # ground, the rock's foot, the post's foot, far ground under the crown
            [0.6, 0.6, 0.6, 0.2],  # ground (the bottom row is left out)
        ]
    ).view(1, 1, 4, 4)
    expected = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]).view(1, 1, 3, 4)
    assert torch.equal(ground_target(depth), expected)
    logits = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    p, t = torch.sigmoid(logits[..., :-1, :]).numpy(), expected.numpy()
    reference = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()
    assert ground_loss(logits, depth).item() == pytest.approx(reference, rel=1e-6)


def test_ground_term_only_for_networks_that_predict_the_ground():
    outputs, batch = _pair_batch()
    depth_network = {"depth": outputs["depth"].clone().requires_grad_()}  # a depth-only network
    total, parts = FgBgLoss(mode="depth")(depth_network, batch)
    total.backward()
    assert parts["depth_l1"] > 0 and parts["depth_ground"] == 0 and depth_network["depth"].grad.abs().sum() > 0
    _, with_ground = FgBgLoss(mode="depth")(outputs, batch)
    assert with_ground["depth_ground"].item() == pytest.approx(ground_loss(outputs["ground"], batch["depth"]).item())
    del outputs["ground"]  # a seed network: mask and depth only
    total, without = FgBgLoss(mode="depth")(outputs, batch)
    assert without["depth_ground"] == 0
    assert total.item() == pytest.approx((with_ground["total"] - with_ground["depth_ground"]).item(), rel=1e-6)


def test_loss_modes_zero_the_other_task_and_weights_apply():
    outputs, batch = _pair_batch()
    _, joint = FgBgLoss()(outputs, batch)
    _, mask_only = FgBgLoss(mode="mask")(outputs, batch)
    _, depth_only = FgBgLoss(mode="depth")(outputs, batch)
    depth_parts = tuple(k for k in DEPTH_PARTS if k != "depth_horizon")  # these outputs hold no "horizon"
    assert joint["depth_horizon"] == 0 and depth_only["depth_horizon"] == 0
    assert all(joint[k] > 0 for k in MASK_PARTS + depth_parts)
    assert all(mask_only[k] == 0 for k in DEPTH_PARTS) and all(mask_only[k] > 0 for k in MASK_PARTS)
    assert all(depth_only[k] == 0 for k in MASK_PARTS) and all(depth_only[k] > 0 for k in depth_parts)
    assert joint["total"].item() == pytest.approx(mask_only["total"].item() + depth_only["total"].item(), rel=1e-6)
    weighted, parts = FgBgLoss(LossWeights(mask_bce=2.0, mask_dice=0.0, depth_ssim=0.5))(outputs, batch)
    mask_part = 2 * joint["mask_bce"] + joint["mask_lovasz"]
    depth_part = joint["depth_l1"] + 0.5 * joint["depth_ssim"] + joint["depth_grad"] + joint["depth_ground"]
    expected = mask_part + depth_part
    assert weighted.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["mask_dice"] == 0
    with pytest.raises(ValueError, match="mode"):
        FgBgLoss(mode="both")


def test_loss_parts_detached_and_total_differentiable():
    outputs, batch = _pair_batch()
    outputs = {k: v.requires_grad_() for k, v in outputs.items()}
    total, parts = FgBgLoss()(outputs, batch)
    assert total.requires_grad and not any(p.requires_grad for p in parts.values())
    total.backward()
    assert outputs["mask"].grad is not None and outputs["depth"].grad is not None


def test_non_finite_loss_names_the_parts():
    outputs, batch = _pair_batch()
    outputs["depth"][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="depth_l1") as info:
        FgBgLoss()(outputs, batch)
    assert "depth_l1" in info.value.parts and "mask_bce" not in info.value.parts
    assert "outputs['depth']" in info.value.inputs
    # the mask-only loss never looks at depth, so it stays finite
    total, _ = FgBgLoss(mode="mask")(outputs, batch)
    assert torch.isfinite(total)


# --- baselines ----------------------------------------------------------------------------------


def synthetic_pair(seed: int, size: int = 16, box=(3, 5, 6, 4), delta: float = 0.4):
    """A background and a composite with a square pasted at box = (x, y, w, h), plus its mask."""
    g = torch.Generator().manual_seed(seed)
    bg = torch.rand(3, size, size, generator=g) * 0.5
    fg_bg = bg.clone()
    x, y, w, h = box
    fg_bg[1, y : y + h, x : x + w] += delta  # only one channel changes: the max over channels sees it
    mask = torch.zeros(1, size, size)
    mask[0, y : y + h, x : x + w] = 1
    return bg, fg_bg, mask


def test_difference_mask_finds_a_pasted_square_exactly():
    bg, fg_bg, mask = synthetic_pair(0)
    # one channel changes by 0.4: the max over channels (0.4) passes 0.2, a channel mean (0.13) would not
    found = difference_mask(bg[None], fg_bg[None], threshold=0.2)
    assert found.shape == (1, 1, 16, 16) and found.dtype == torch.bool
    assert torch.equal(found[0].float(), mask)
    assert mask_stats(found, mask[None])["iou"].item() == 1.0


def test_choose_difference_threshold_on_training_batches():
    # noise of amplitude up to 0.08 everywhere, the object changes by 0.3: only thresholds in
    # [0.08, 0.3) separate them; among the candidates that is 0.1 and 0.2 (tie -> the smaller).
    batches = []
    for seed in range(3):
        bg, fg_bg, mask = synthetic_pair(seed, delta=0.3)
        g = torch.Generator().manual_seed(100 + seed)
        fg_bg = fg_bg + (torch.rand(fg_bg.shape, generator=g) - 0.5) * 0.16
        batches.append({"bg": bg[None], "fg_bg": fg_bg[None], "mask": mask[None]})
    choice = choose_difference_threshold(iter(batches), [0.4, 0.2, 0.01, 0.1, 0.05])
    assert choice.threshold == 0.1
    assert choice.iou == 1.0
    assert choice.scores[0.2] == 1.0 and choice.scores[0.4] == 0.0 and choice.scores[0.01] < 0.5
    tuples = [(b["bg"], b["fg_bg"], b["mask"]) for b in batches]
    assert choose_difference_threshold(tuples, [0.05, 0.2]).threshold == 0.2
    for test_split in ("test", "unseen_test"):
        with pytest.raises(ValueError, match=f"training data, never on the test split \\({test_split}\\)"):
            choose_difference_threshold(batches, [0.1], split=test_split)


def test_difference_threshold_takes_masks_with_or_without_their_channel():
    """B x H x W masks used to broadcast against the B x 1 x H x W difference into B x B x H x W."""
    torch.manual_seed(0)
    bg, fg_bg = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    mask = (torch.rand(4, 1, 8, 8) > 0.5).float()
    with_channel = choose_difference_threshold([(bg, fg_bg, mask)], [0.1, 0.3, 0.5])
    without = choose_difference_threshold([(bg, fg_bg, mask[:, 0])], [0.1, 0.3, 0.5])
    assert with_channel.scores == without.scores
    with pytest.raises(ValueError, match="do not match"):
        choose_difference_threshold([(bg, fg_bg, mask[:2])], [0.1])


def test_mask_scores_refuse_shapes_that_only_flatten_alike():
    """8x8 against 4x16 (64 pixels each) or 2 images against 1 would be scored silently."""
    with pytest.raises(ValueError, match=r"mask prediction \(1, 8, 8\) and target \(1, 4, 16\) differ in shape"):
        mask_stats(torch.ones(1, 8, 8), torch.ones(1, 4, 16))
    with pytest.raises(ValueError, match="differ in shape"):
        mask_stats(torch.ones(2, 1, 4, 4), torch.ones(1, 1, 4, 4))
    assert mask_stats(torch.ones(2, 1, 4, 4), torch.ones(2, 4, 4))["iou"].tolist() == [1.0, 1.0]


def test_background_depth_baseline():
    bg_depth = torch.rand(2, 1, 8, 8)
    pred = background_depth(bg_depth)
    assert torch.equal(pred, bg_depth) and pred.data_ptr() != bg_depth.data_ptr()


# --- accumulator --------------------------------------------------------------------------------


def test_accumulator_matches_computing_everything_at_once():
    g = torch.Generator().manual_seed(3)
    n = 7
    logits = torch.randn(n, 1, 8, 8, generator=g) * 3
    target_mask = (torch.rand(n, 1, 8, 8, generator=g) > 0.6).float()
    target_mask[2] = 0  # an empty target
    pred_depth = torch.rand(n, 1, 8, 8, generator=g)
    target_depth = torch.from_numpy(encode_depth(np.full((n, 1, 8, 8), 5.0)) / 255.0).float()
    target_depth[:, :, :2] = 0  # sky rows
    acc = MetricAccumulator("val")
    for start, stop in ((0, 3), (3, 4), (4, 7)):
        acc.update(
            {"mask": logits[start:stop], "depth": pred_depth[start:stop]},
            {"mask": target_mask[start:stop], "depth": target_depth[start:stop], "sample": torch.arange(start, stop)},
        )
    summary = acc.summary()
    expected = mask_metrics(logits, target_mask) | depth_metrics(pred_depth, target_depth)
    assert summary["split"] == "val" and summary["images"] == n
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value, rel=1e-9), key
    per_image = acc.per_image()
    np.testing.assert_array_equal(per_image["sample"], np.arange(n))
    assert per_image["mask_iou"].shape == (n,) and per_image["depth_rmse"].shape == (n,)
    np.testing.assert_allclose(per_image["depth_rmse"], depth_stats(pred_depth, target_depth)["rmse"].numpy())
    worst = int(np.argmin(per_image["mask_iou"]))
    assert per_image["mask_iou"][worst] == mask_stats(logits > 0, target_mask)["iou"].min().item()


def test_accumulator_binary_baseline_and_one_task():
    bg, fg_bg, mask = synthetic_pair(0)
    acc = MetricAccumulator("test", mask_from="binary")
    acc.update({"mask": difference_mask(bg[None], fg_bg[None], 0.1)}, {"mask": mask[None]})
    summary = acc.summary()
    assert summary["mask_iou"] == 1.0 and summary["split"] == "test"
    assert not any(k.startswith("depth_") for k in summary)
    with pytest.raises(ValueError, match="tasks"):
        acc.update({"depth": torch.rand(1, 1, 16, 16)}, {"depth": torch.rand(1, 1, 16, 16)})
    assert MetricAccumulator("empty").summary() == {"split": "empty", "images": 0}


def _scene_depth(camera, size: int) -> np.ndarray:
    """A scene's encoded depth (0..1) as the builder makes it: ground and sky, a post standing on
    row 70, and a tree crown overhanging the ground at its foot's depth (rows 40..55, foot row 75)."""
    depth = encode_depth(camera.ground_depth(size)).astype(np.float64)
    depth[50:71, 10:13] = encode_depth(camera.row_depth(70, size))
    depth[40:56, 30:50] = encode_depth(camera.row_depth(75, size))
    depth[56:76, 38:41] = encode_depth(camera.row_depth(75, size))
    return depth / 255.0


@pytest.mark.parametrize(("horizon", "height_m"), [(0.37, 1.5), (0.45, 1.8)])
def test_horizon_fitted_to_the_ground_of_a_depth_map(horizon, height_m):
    """The least-squares ground plane meets the far plane at the camera's horizon, within 0.15
    of a pixel (8-bit rounding), with upright things (a crown included) left out."""
    from fgbg_utils.depth import GroundCamera

    size = 96
    camera = GroundCamera(horizon=horizon, height_m=height_m)
    depth = torch.from_numpy(_scene_depth(camera, size))[None, None]
    sky = torch.zeros_like(depth)  # nothing to fit
    fitted, valid = horizon_from_depth(torch.cat((depth, sky)))
    assert valid.tolist() == [True, False]
    assert abs(fitted[0].item() - horizon) * size < 0.15


@pytest.mark.parametrize("degrees", [-10.0, 6.0])
def test_horizon_of_a_rotated_frame_is_read_in_its_middle_column(degrees):
    """A rotated frame tilts the ground's inverse depth (still a plane in the pixel coordinates):
    the fit gives the horizon where it crosses the middle column, not an average over the rows."""
    size, horizon, slope = 96, 0.4, 1 / 1.6
    rows = (np.arange(size)[:, None] + 0.5) / size
    columns = (np.arange(size)[None, :] + 0.5) / size
    tilt = np.tan(np.radians(degrees))
    inverse = slope * ((rows - horizon) - tilt * (columns - 0.5))  # 0 along the tilted horizon
    encoded = np.clip((inverse - 1 / FAR_M) / (1 / NEAR_M - 1 / FAR_M), 0, 1)
    depth = torch.from_numpy(np.rint(encoded * 255) / 255)[None, None]
    fitted, valid = horizon_from_depth(depth)
    assert valid.item() and abs(fitted.item() - horizon) * size < 0.15


def test_horizon_loss_spreads_the_target_over_two_rows():
    """Scores that put the fitted horizon's two neighbouring rows at their shares reach the
    minimum (the entropy of the split), and their soft-argmax is that horizon."""
    from fgbg_utils.depth import GroundCamera
    from fgbg_utils.models.fgbg_net import soft_argmax_row

    size = 96
    depth = torch.from_numpy(_scene_depth(GroundCamera(horizon=0.4, height_m=1.6), size))[None, None]
    fitted, _ = horizon_from_depth(depth)
    position = fitted.item() * size - 0.5
    lower, share = int(np.floor(position)), position - np.floor(position)
    scores = torch.full((1, size), -1e9, dtype=torch.float64)
    scores[0, lower], scores[0, lower + 1] = np.log(1 - share), np.log(share)
    entropy = -((1 - share) * np.log(1 - share) + share * np.log(share))
    assert horizon_loss(scores, depth).item() == pytest.approx(entropy, rel=1e-6)
    assert soft_argmax_row(scores).item() == pytest.approx(fitted.item(), abs=1e-6)
    uniform = torch.zeros(1, size, dtype=torch.float64)
    assert horizon_loss(uniform, depth).item() == pytest.approx(np.log(size), rel=1e-9)


def test_depth_inside_the_object_against_numpy():
    """RMSE and δ1 over the true mask's pixels only; an image with an empty mask is left out of
    the mean, not counted as perfect."""
    rng = np.random.default_rng(3)
    target = rng.uniform(0.05, 1.0, (3, 1, 8, 8))
    pred = np.clip(target + rng.normal(0, 0.1, target.shape), 0, 1)
    region = np.zeros_like(target)
    region[0, 0, 2:5, 3:6] = 1
    region[1, 0, 7, 7] = 1  # image 2 has no object
    stats = depth_stats(torch.from_numpy(pred), torch.from_numpy(target), region=torch.from_numpy(region))
    metres = lambda v: 1.0 / (1.0 / FAR_M + v * (1.0 / NEAR_M - 1.0 / FAR_M))  # noqa: E731
    expected_rmse, expected_delta = [], []
    for image in range(2):
        inside = region[image, 0] > 0
        expected_rmse.append(np.sqrt(np.mean((pred[image, 0][inside] - target[image, 0][inside]) ** 2)))
        ratio = np.maximum(
            metres(pred[image, 0]) / metres(target[image, 0]), metres(target[image, 0]) / metres(pred[image, 0])
        )
        expected_delta.append(np.mean(ratio[inside] < 1.25))
    np.testing.assert_allclose(stats["object_rmse"][:2].numpy(), expected_rmse, rtol=1e-12)
    np.testing.assert_allclose(stats["object_delta1"][:2].numpy(), expected_delta, rtol=1e-12)
    assert expected_rmse[1] == pytest.approx(abs(pred[1, 0, 7, 7] - target[1, 0, 7, 7]))  # one pixel: its error
    assert math.isnan(float(stats["object_rmse"][2])) and math.isnan(float(stats["object_delta1"][2]))
    summary = summarize_depth({k: v.numpy() for k, v in stats.items()})
    assert summary["depth_object_rmse"] == pytest.approx(np.mean(expected_rmse), rel=1e-12)
    assert summary["depth_object_delta1"] == pytest.approx(np.mean(expected_delta), rel=1e-12)
    without_channel = depth_stats(
        torch.from_numpy(pred), torch.from_numpy(target), region=torch.from_numpy(region[:, 0])
    )
    assert torch.equal(without_channel["object_rmse"][:2], stats["object_rmse"][:2])
    whole = summarize_depth(
        {k: v.numpy() for k, v in depth_stats(torch.from_numpy(pred), torch.from_numpy(target)).items()}
    )
    assert "depth_object_rmse" not in whole
