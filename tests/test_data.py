"""Loaders: sample values against the files, transforms, the virtual dataset, splits, workers, bad input."""

import io
import json
import pickle
import shutil
import zipfile

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler, Subset

from fgbg_utils.batch_augment import BatchAugmentation
from fgbg_utils.compose import Box, compose, prepare_foreground
from fgbg_utils.data import FgBgDataset, verify_shards
from fgbg_utils.dataset_info import DatasetInfo
from fgbg_utils.depth import GroundCamera, paste_depth
from fgbg_utils.loaders import BatchLoader, PackedBatch, VirtualBatchLoader, make_loader, pack_batch, whole_batches
from fgbg_utils.manifest import read_manifest
from fgbg_utils.schedule import EpochBatches, SeededBatches
from fgbg_utils.store import INDEX_COLUMNS, member_names, read_index, read_png, shard_name
from fgbg_utils.transforms import BatchNormaliser, make_transforms, prepare_batch
from fgbg_utils.virtual_dataset import BoxParts, VirtualFgBgDataset, VirtualLoader


@pytest.fixture(scope="module")
def data(small_dataset, tmp_path_factory):
    """A private copy of the small dataset (these tests write splits.json into it)."""
    root = tmp_path_factory.mktemp("data") / "data"
    shutil.copytree(small_dataset, root)
    return root


@pytest.fixture
def broken(data, tmp_path):
    """A throwaway copy to damage."""
    root = tmp_path / "broken"
    shutil.copytree(data, root)
    return root


def _pil(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


def _frame_edge(size: int, width: int) -> np.ndarray:
    """The frame's outer `width` pixels (an object shifted out of the frame leaves its edge there)."""
    edge = np.ones((size, size), bool)
    edge[width:-width, width:-width] = False
    return edge


def _rewrite_shard(path, change) -> None:
    """Rewrite a shard member by member through `change(name, data) -> bytes | None` (None drops it)."""
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, payload in members:
            payload = change(name, payload)
            if payload is not None:
                archive.writestr(name, payload)


# --- index and values -----------------------------------------------------------------------


def test_index_arrays_are_compact_and_match_the_csv(data):
    arrays = DatasetInfo.open(data).index
    rows = read_index(data / "index.csv")
    assert set(arrays) == {"sample", "bg", "fg", "flip", "x", "y", "w", "h", "shard"}
    assert all(column.dtype == np.int32 and column.shape == (len(rows),) for column in arrays.values())
    for key in ("sample", "bg", "fg", "flip", "x", "y", "w", "h"):
        assert arrays[key].tolist() == [row[key] for row in rows]
    assert arrays["shard"].tolist() == [int(row["shard"][6:9]) for row in rows]
    assert list(INDEX_COLUMNS)[:8] == ["sample", "bg", "fg", "flip", "x", "y", "w", "h"]


def test_sample_values_equal_the_files(data):
    dataset = FgBgDataset(DatasetInfo.open(data))
    manifest = read_manifest(data)
    rows = read_index(data / "index.csv")
    assert len(dataset) == len(rows) == manifest["counts"]["samples"]
    for i in (0, 7, len(rows) - 1):
        sample, row = dataset[i], rows[i]
        assert (sample["sample"], sample["bg_id"], sample["fg_id"], sample["flip"]) == (
            row["sample"],
            row["bg"],
            row["fg"],
            row["flip"],
        )
        with zipfile.ZipFile(data / row["shard"]) as archive:
            fg_bg, mask, depth = (_pil(archive.read(row[k])) for k in ("fg_bg", "mask", "depth"))
        png = np.array(Image.open(data / "bg" / f"bg_{row['bg']:03d}.png").convert("RGB"))
        quality = manifest["generation"]["parameters"]["jpeg_quality"]  # bg as the fg_bg codec sees it
        _, jpeg = cv2.imencode(".jpg", png[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        bg = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1].copy()
        assert sample["fg_bg"].dtype == torch.float32 and sample["fg_bg"].shape == (3, 64, 64)
        assert torch.equal(sample["fg_bg"], torch.from_numpy(fg_bg).permute(2, 0, 1).float() / 255)
        assert torch.equal(sample["bg"], torch.from_numpy(bg).permute(2, 0, 1).float() / 255)
        assert torch.equal(sample["mask"], torch.from_numpy(mask == 255)[None].float())
        assert set(sample["mask"].unique().tolist()) == {0.0, 1.0}
        assert torch.equal(sample["depth"], torch.from_numpy(depth)[None].float() / 255)


def test_background_matches_fg_bg_exactly_outside_the_objects_jpeg_blocks(data):
    """The stored bg goes through fg_bg's codec, so every 16x16 JPEG block the object does not
    touch is bit-identical in the two images; the PNG as stored differs there."""
    dataset, raw = (
        FgBgDataset(DatasetInfo.open(data), output="uint8"),
        FgBgDataset(DatasetInfo.open(data), output="uint8"),
    )
    raw.bg_quality = None
    untouched_differing = stored_differing = untouched = 0
    for i in range(len(dataset)):
        sample = dataset[i]
        size = sample["mask"].shape[-1]
        blocks = F.max_pool2d(sample["mask"].float()[None], 16, ceil_mode=True)  # blocks the object touches
        blocks = F.max_pool2d(blocks, 3, stride=1, padding=1)  # and their neighbours (chroma smoothing)
        far = F.interpolate(blocks, scale_factor=16)[0, 0, :size, :size] == 0
        untouched += int(far.sum())
        untouched_differing += int((sample["fg_bg"] != sample["bg"]).any(0)[far].sum())
        stored_differing += int((sample["fg_bg"] != raw[i]["bg"]).any(0)[far].sum())
    assert untouched > 0 and untouched_differing == 0
    assert stored_differing > 0.2 * untouched


def test_imported_datasets_keep_the_stored_background(broken):
    """Without the builder's jpeg_quality (an import), the background is the PNG as stored."""
    manifest = read_manifest(broken)
    del manifest["generation"]["parameters"]["jpeg_quality"]
    (broken / "data_manifest.json").write_text(json.dumps(manifest))
    sample = FgBgDataset(DatasetInfo.open(broken), output="uint8")[0]
    stored = read_png(broken / manifest["backgrounds"][sample["bg_id"]]["file"])
    assert np.array_equal(sample["bg"].permute(1, 2, 0).numpy(), stored)


# --- virtual dataset ------------------------------------------------------------------------


def test_virtual_samples_equal_the_stored_ones(data):
    stored = FgBgDataset(DatasetInfo.open(data))
    virtual = VirtualFgBgDataset(DatasetInfo.open(data))
    batch = virtual.batch(np.arange(len(virtual)))
    assert batch["fg_bg"].shape == (len(stored), 3, 64, 64) and batch["mask"].dtype == torch.float32
    for i in range(len(stored)):
        sample = stored[i]
        for key in ("sample", "bg_id", "fg_id", "flip"):
            assert int(batch[key][i]) == sample[key]
        assert 30 < _psnr(batch["bg"][i], sample["bg"]) < 60  # stored: through the JPEG codec (virtual: exact)
        assert torch.equal(batch["mask"][i], sample["mask"]), f"mask of sample {i}"
        assert torch.equal(batch["depth"][i], sample["depth"]), f"depth of sample {i}"
        assert _psnr(batch["fg_bg"][i], sample["fg_bg"]) > 27, f"fg_bg of sample {i}"
    # the object is really there: fg_bg differs from bg inside the mask
    inside = batch["mask"].expand_as(batch["fg_bg"]) > 0
    assert (batch["fg_bg"] != batch["bg"])[inside].float().mean() > 0.5


def test_virtual_dataset_with_a_transform_gives_the_transform_of_its_frames(data):
    """A batch through a transform is the transform of each composed frame, read as HxWx3 arrays
    (seeded training transforms: the same draws in the same order)."""
    manifest = read_manifest(data)
    positions = np.arange(0, 12, 2)
    frames = VirtualFgBgDataset(DatasetInfo.open(data), output="uint8").compose_batch(positions)
    for train in (False, True):
        transform = make_transforms(48, train=train, stats=manifest, seed=7, output="uint8")
        got = VirtualFgBgDataset(DatasetInfo.open(data), transform=transform, output="uint8").batch(positions)
        reference = make_transforms(48, train=train, stats=manifest, seed=7, output="uint8")
        for b in range(len(positions)):
            arrays = {k: frames[k][b].permute(1, 2, 0).numpy() for k in ("bg", "fg_bg")}
            arrays.update({k: frames[k][b, 0].numpy() for k in ("mask", "depth")})
            expected = reference(**arrays)
            assert all(torch.equal(got[k][b], expected[k]) for k in expected), (train, b)


def test_virtual_cpu_path_equals_compose_exactly(data):
    """On the CPU the virtual dataset is the builder's routine: fg_bg equals `compose` and depth
    `paste_depth` byte for byte, and the uint8 output is the float output's bytes."""
    manifest = read_manifest(data)
    virtual = VirtualFgBgDataset(DatasetInfo.open(data), output="uint8")
    rows = np.arange(len(virtual))
    batch = virtual.batch(rows)
    assert batch["fg_bg"].dtype == batch["mask"].dtype == batch["depth"].dtype == torch.uint8
    index = virtual.index
    for i in rows:
        p = virtual.positions[i]
        bg_info = manifest["backgrounds"][index["bg"][p]]
        bg, bg_depth = read_png(data / bg_info["file"]), read_png(data / bg_info["depth_file"])
        rgba = read_png(data / manifest["foregrounds"][index["fg"][p]]["file"])
        box = Box(*(int(index[k][p]) for k in ("x", "y", "w", "h")))
        fg_bg, mask = compose(bg, prepare_foreground(rgba, flip=bool(index["flip"][p])), box)
        depth = paste_depth(bg_depth, mask, box.as_tuple(), GroundCamera(**bg_info["camera"]))
        assert np.array_equal(batch["fg_bg"][i].permute(1, 2, 0).numpy(), fg_bg), f"fg_bg of sample {i}"
        assert np.array_equal(batch["mask"][i, 0].numpy() * 255, mask), f"mask of sample {i}"
        assert np.array_equal(batch["depth"][i, 0].numpy(), depth), f"depth of sample {i}"
        assert np.array_equal(batch["bg"][i].permute(1, 2, 0).numpy(), bg)
    as_float = VirtualFgBgDataset(DatasetInfo.open(data)).batch(rows)
    prepared = prepare_batch(batch, "cpu")
    assert all(torch.equal(prepared[k], as_float[k]) for k in as_float)


def test_uint8_batches_prepared_on_the_device_equal_the_float_path(data):
    """uint8 transport + `prepare_batch` gives the float path's values (within 1e-6), for the
    eval and the (seeded) train transform, the raw datasets and the virtual one."""
    manifest = read_manifest(data)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    normaliser = BatchNormaliser(manifest["statistics"]).to(device)
    cases = []
    for train in (False, True):
        float_set = FgBgDataset(
            DatasetInfo.open(data), transform=make_transforms(64, train=train, stats=manifest, seed=5)
        )
        uint8_set = FgBgDataset(
            DatasetInfo.open(data), transform=make_transforms(64, train=train, stats=manifest, seed=5, output="uint8")
        )
        cases.append((float_set, uint8_set, normaliser))
    flagged = FgBgDataset(
        DatasetInfo.open(data), transform=make_transforms(96, train=False, stats=manifest), output="uint8"
    )
    cases.append(
        (
            FgBgDataset(DatasetInfo.open(data), transform=make_transforms(96, train=False, stats=manifest)),
            flagged,
            normaliser,
        )
    )
    cases.append(
        (
            FgBgDataset(DatasetInfo.open(data)),
            FgBgDataset(DatasetInfo.open(data), output="uint8"),
            BatchNormaliser(None).to(device),
        )
    )
    for float_set, uint8_set, norm in cases:
        expected = next(iter(make_loader(float_set, batch_size=12, workers=0, device="cpu")))
        raw = next(iter(make_loader(uint8_set, batch_size=12, workers=0, device="cpu")))
        assert raw["bg"].dtype == raw["fg_bg"].dtype == raw["mask"].dtype == raw["depth"].dtype == torch.uint8
        assert set(raw["mask"].unique().tolist()) <= {0, 1}
        got = prepare_batch(raw, device, norm)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert got[key].device.type == device and got[key].dtype == value.dtype, key
            assert torch.allclose(got[key].cpu(), value, rtol=0, atol=1e-6), key
    virtual = VirtualFgBgDataset(
        DatasetInfo.open(data), transform=make_transforms(64, train=False, stats=manifest), output="uint8"
    )
    expected = VirtualFgBgDataset(
        DatasetInfo.open(data), transform=make_transforms(64, train=False, stats=manifest)
    ).batch([0, 3, 5])
    got = prepare_batch(virtual.batch([0, 3, 5]), device, normaliser)
    assert all(torch.allclose(got[k].cpu(), expected[k].float(), rtol=0, atol=1e-6) for k in ("bg", "fg_bg", "mask"))


def test_virtual_loader_orders_and_resizes(data):
    virtual = VirtualFgBgDataset(DatasetInfo.open(data), split="test", size=96)
    loader = VirtualLoader(virtual, batch_size=8, shuffle=True, seed=3)
    batches = list(loader)
    samples = torch.cat([b["sample"] for b in batches]).tolist()
    assert sorted(samples) == sorted(virtual.samples.tolist()) and samples != sorted(samples)
    again = torch.cat([b["sample"] for b in VirtualLoader(virtual, 8, True, seed=3)]).tolist()
    assert again == samples
    assert batches[0]["fg_bg"].shape == (8, 3, 96, 96) and set(batches[0]["mask"].unique().tolist()) <= {0.0, 1.0}
    one = virtual[0]
    assert one["depth"].shape == (1, 96, 96) and isinstance(one["sample"], int)


# --- transforms -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 96, 112])
@pytest.mark.parametrize("photometric", [False, True])
def test_transforms_keep_mask_binary_and_aligned(data, size, photometric):
    """Every geometric step moves mask and depth with the images: on a probe whose fg_bg differs
    from bg exactly on the mask, the transformed difference and mask coincide up to a pixel of
    interpolation. With photometric on, bg and fg_bg get the same colour change."""
    manifest = read_manifest(data)
    transform = make_transforms(size, train=True, stats=manifest, photometric=photometric, seed=size)
    virtual = VirtualFgBgDataset(DatasetInfo.open(data))
    composed = virtual.compose_batch(np.arange(len(virtual)))
    depth_levels = set(composed["depth"].unique().tolist()) | {0}
    for b in range(0, len(virtual), 3):
        bg, mask = composed["bg"][b].permute(1, 2, 0).numpy().copy(), composed["mask"][b, 0].numpy().copy()
        if mask.sum() < 50:  # nearest sampling may drop most of a tiny or thin mask
            continue
        # a hard-edged probe: fg_bg is bg with the mask's pixels magenta
        probe = np.where(mask[..., None] > 0, np.array([255, 0, 255], np.uint8), bg)
        arrays = {"bg": bg, "fg_bg": probe, "mask": mask, "depth": composed["depth"][b, 0].numpy().copy()}
        out = transform.augment(**arrays)
        mask, depth = out["mask"], out["depth"]
        assert mask.shape == depth.shape == (size, size) and out["fg_bg"].shape == (size, size, 3)
        assert set(np.unique(mask).tolist()) <= {0, 1}
        assert set(np.unique(depth).tolist()) <= depth_levels  # nearest: no smeared depth values
        # bilinear images blur the probe's edge by about a (scaled) pixel, the nearest-neighbour
        # mask does not; beyond that the mask and the difference must coincide. Nearest sampling
        # may drop or add a 1-px-thin sliver, hence a small allowance.
        differs = (out["fg_bg"] != out["bg"]).any(-1)
        reach = int(np.ceil(size / 64 * 1.1)) + 1
        kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
        near_mask = cv2.dilate(mask, kernel).astype(bool) | _frame_edge(size, reach)
        near_difference = cv2.dilate(differs.view(np.uint8), kernel).astype(bool)
        assert (differs & ~near_mask).sum() <= max(6, 0.05 * differs.sum()), "fg_bg changed away from the mask"
        assert (mask.astype(bool) & ~near_difference).sum() <= max(6, 0.05 * mask.sum()), "mask where fg_bg kept bg"
        deep = cv2.erode(mask, kernel).astype(bool)
        assert differs[deep].all(), "fg_bg unchanged deep inside the mask"
        tensors = transform(**arrays)
        assert tensors["fg_bg"].shape == (3, size, size) and tensors["mask"].shape == (1, size, size)
        assert set(tensors["mask"].unique().tolist()) <= {0.0, 1.0}
        assert tensors["depth"].min() >= 0 and tensors["depth"].max() <= 1


def test_eval_transform_normalises_both_images_with_the_background_stats(data):
    manifest = read_manifest(data)
    dataset = FgBgDataset(DatasetInfo.open(data), transform=make_transforms(64, train=False, stats=manifest))
    raw = FgBgDataset(DatasetInfo.open(data))[3]
    sample = dataset[3]
    mean = torch.tensor(manifest["statistics"]["bg"]["mean"]).view(3, 1, 1)
    std = torch.tensor(manifest["statistics"]["bg"]["std"]).view(3, 1, 1)
    for key in ("bg", "fg_bg"):
        assert torch.allclose(sample[key], (raw[key] - mean) / std, atol=1e-5)
    assert torch.equal(sample["mask"], raw["mask"]) and torch.allclose(sample["depth"], raw["depth"])


# --- splits ---------------------------------------------------------------------------------


# --- workers --------------------------------------------------------------------------------


def _all_batches(loader) -> list[dict]:
    return [{k: v.clone() for k, v in batch.items()} for batch in loader]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_worker_batches_equal_in_process_batches(data, context):
    dataset = FgBgDataset(
        DatasetInfo.open(data), split="train", transform=make_transforms(64, train=False, stats=read_manifest(data))
    )
    dataset[0]  # opens a handle in the parent: a forked worker must not reuse it
    expected = _all_batches(make_loader(dataset, batch_size=16, workers=0, device="cpu"))
    loader = make_loader(dataset, batch_size=16, workers=2, device="cpu", multiprocessing_context=context)
    assert loader.persistent_workers and loader.prefetch_factor == 4
    got = _all_batches(loader)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("output", ["float", "uint8"])
def test_virtual_dataset_through_workers(data, output):
    virtual = VirtualFgBgDataset(DatasetInfo.open(data), split="train", output=output)
    expected = list(VirtualLoader(virtual, batch_size=16))
    got = list(make_loader(virtual, batch_size=16, workers=2, device="cpu", multiprocessing_context="fork"))
    for a, b in zip(got, expected, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def _expected_batch(virtual: VirtualFgBgDataset, samples: torch.Tensor) -> dict:
    """`virtual.batch` for the split positions of these sample ids."""
    position = {int(sample): i for i, sample in enumerate(virtual.samples)}
    return virtual.batch([position[int(sample)] for sample in samples])


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_virtual_workers_send_box_parts_and_the_loader_assembles_batch_output(data, context):
    """Workers send box parts only; the loader's batches equal `batch()` byte for byte, ids and
    the last partial batch included, and batches the caller keeps are never written again."""
    virtual = VirtualFgBgDataset(DatasetInfo.open(data), split="train", output="uint8")
    loader = make_loader(
        virtual, batch_size=16, shuffle=True, workers=2, device="cpu", seed=7, multiprocessing_context=context
    )
    assert isinstance(loader, VirtualBatchLoader) and len(loader) == -(-len(virtual) // 16)
    kept = list(loader)  # no copies: each batch must stay as it was delivered
    again = list(loader)  # persistent workers, next epoch
    samples = torch.cat([batch["sample"] for batch in kept])
    assert sorted(samples.tolist()) == sorted(virtual.samples.tolist()) and samples.tolist() != sorted(samples.tolist())
    assert len(virtual) % 16 and len(kept[-1]["sample"]) == len(virtual) % 16  # a last partial batch
    for batch in kept + again:
        expected = _expected_batch(virtual, batch["sample"])
        assert batch.keys() == expected.keys()
        assert all(batch[k].dtype == expected[k].dtype and torch.equal(batch[k], expected[k]) for k in expected)
    parts = next(DataLoader.__iter__(loader))  # what a worker sent, before assembly
    assert isinstance(parts, BoxParts) and parts.packed.dtype == np.uint8
    boxes = virtual.index["w"][virtual.positions[parts.rows]] * virtual.index["h"][virtual.positions[parts.rows]]
    assert parts.packed.size == 4 * boxes.sum()  # fg_bg (3) and mask (1) bytes per box pixel, no frames
    assemble = virtual.assemble(parts)
    assert all(torch.equal(assemble[k], v) for k, v in virtual.batch(parts.rows).items())


def test_a_packed_batch_unpacks_to_views_equal_to_the_batch():
    batch = {
        "fg_bg": torch.randint(0, 256, (3, 3, 5, 7), dtype=torch.uint8),  # 315 bytes: the next offset is padded
        "sample": torch.tensor([4, 9, 2]),
        "depth": torch.rand(3, 1, 5, 7),
        "empty": torch.zeros(0, 3, dtype=torch.uint8),
        "flag": torch.tensor([True, False, True]),
    }
    packed = pack_batch(batch)
    assert packed.data.dtype == torch.uint8 and not packed.data.is_shared()  # shared only in a worker
    assert all(start % 64 == 0 for _, start, _, _ in packed.layout)
    out = pickle.loads(pickle.dumps(packed)).unpack()
    assert list(out) == list(batch)
    assert all(out[k].dtype == v.dtype and torch.equal(out[k], v) for k, v in batch.items())
    views = packed.unpack()
    assert all(v.untyped_storage().data_ptr() == packed.data.untyped_storage().data_ptr() for v in views.values())


def test_whole_batches_come_from_the_workers_as_one_shared_block(data):
    """The training loader of `train --virtual` (seeded composition and augmentation a batch at a time):
    with workers, each batch travels as one block of shared memory and unpacks to the batches made in
    this process, byte for byte; batches the caller keeps are never written again."""
    virtual = VirtualFgBgDataset(DatasetInfo.open(data), split="train", size=48, output="uint8")

    def loader(workers: int):
        sampler = EpochBatches(len(virtual), 8, seed=3, epoch=0)
        options = dict(batch_sampler=sampler, collate_fn=whole_batches, pin_memory=False)
        dataset = SeededBatches(virtual, BatchAugmentation())
        return make_loader(dataset, batch_size=1, workers=workers, device="cpu", seed=3, **options)

    with_workers, in_process = loader(2), loader(0)
    assert isinstance(with_workers, BatchLoader) and not isinstance(in_process, BatchLoader)
    kept, again = list(with_workers), list(with_workers)
    expected = list(in_process)
    assert len(kept) == len(expected) == len(with_workers)
    for got in (kept, again):
        for batch, reference in zip(got, expected, strict=True):
            assert batch.keys() == reference.keys()
            assert all(torch.equal(batch[k], reference[k]) for k in reference)
    sent = next(DataLoader.__iter__(with_workers))  # what a worker sent, before unpacking
    assert isinstance(sent, PackedBatch) and sent.data.is_shared()
    assert [key for key, *_ in sent.layout] == list(expected[0])
    one_at_a_time = make_loader(virtual, batch_size=None, workers=2, device="cpu")  # dicts with ints: not packed
    first = next(iter(one_at_a_time))
    assert first.keys() == virtual[0].keys() and all(torch.equal(first[k], virtual[0][k]) for k in ("fg_bg", "mask"))
    with pytest.raises(ValueError, match="no collate_fn"):
        BatchLoader(virtual, batch_size=8, num_workers=2, collate_fn=lambda batch: batch)


def test_virtual_loader_with_a_distributed_sampler(data):
    virtual = VirtualFgBgDataset(DatasetInfo.open(data), output="uint8")
    sampler = DistributedSampler(virtual, num_replicas=2, rank=1, shuffle=False)
    loader = make_loader(virtual, batch_size=8, workers=2, device="cpu", sampler=sampler)
    assert isinstance(loader, VirtualBatchLoader) and loader.sampler is sampler and len(loader) == -(-len(sampler) // 8)
    got = list(loader)
    positions = list(sampler)
    assert torch.cat([batch["sample"] for batch in got]).tolist() == virtual.samples[positions].tolist()
    for start, batch in zip(range(0, len(positions), 8), got, strict=True):
        expected = virtual.batch(positions[start : start + 8])
        assert all(torch.equal(batch[k], expected[k]) for k in expected)


def test_virtual_loader_keeps_whole_batches_when_the_frames_are_not_sent_as_composed(data):
    manifest = read_manifest(data)
    for virtual in (
        VirtualFgBgDataset(DatasetInfo.open(data), output="float"),
        VirtualFgBgDataset(DatasetInfo.open(data), size=96, output="uint8"),
        VirtualFgBgDataset(
            DatasetInfo.open(data), transform=make_transforms(64, train=False, stats=manifest), output="uint8"
        ),
    ):
        loader = make_loader(virtual, batch_size=8, workers=2, device="cpu", multiprocessing_context="fork")
        assert isinstance(loader, BatchLoader) and not isinstance(loader, VirtualBatchLoader)
        first = next(iter(loader))
        assert all(torch.equal(first[k], v) for k, v in virtual.batch(np.arange(8)).items())
    assert not isinstance(
        make_loader(VirtualFgBgDataset(DatasetInfo.open(data), output="uint8"), workers=0, device="cpu"),
        VirtualBatchLoader,
    )
    with pytest.raises(TypeError, match="needs a VirtualFgBgDataset"):
        VirtualBatchLoader(FgBgDataset(DatasetInfo.open(data)), batch_size=8, num_workers=2)


def test_a_virtual_dataset_composing_on_a_gpu_loads_in_this_process(data, capsys):
    """Forked workers cannot use the parent's CUDA context, so a virtual dataset that composes on a
    GPU (a CPU one standing in, its device reported as cuda) gets workers=0 and one line saying so,
    also under a Subset; one on the CPU keeps its workers, persistent unless asked otherwise."""
    on_gpu = VirtualFgBgDataset(DatasetInfo.open(data), output="uint8")
    on_gpu.device = torch.device("cuda", 0)
    for dataset in (on_gpu, Subset(on_gpu, [0, 1, 2])):
        loader = make_loader(dataset, batch_size=8, workers=2, device="cpu")
        assert loader.num_workers == 0 and not loader.persistent_workers
        assert "composes on cuda:0" in capsys.readouterr().out
    assert make_loader(on_gpu, batch_size=8, device="cpu").num_workers == 0  # the default too, silently
    assert capsys.readouterr().out == ""
    on_cpu = VirtualFgBgDataset(DatasetInfo.open(data), output="uint8")
    assert make_loader(on_cpu, batch_size=8, workers=2, device="cpu").persistent_workers
    kept = make_loader(on_cpu, batch_size=8, workers=2, device="cpu", persistent_workers=False)
    assert kept.num_workers == 2 and not kept.persistent_workers


def test_shuffle_is_seeded(data):
    dataset = FgBgDataset(DatasetInfo.open(data))

    def order(seed):
        return torch.cat([b["sample"] for b in make_loader(dataset, 16, shuffle=True, workers=0, seed=seed)]).tolist()

    assert order(4) == order(4) != order(5)


def test_pickles_without_open_handles(data):
    dataset = FgBgDataset(DatasetInfo.open(data))
    first = dataset[0]
    assert dataset._zips  # a handle is open now
    state = dataset.__getstate__()
    assert not state["_zips"] and not state["_bgs"]
    copy = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(copy[0]["fg_bg"], first["fg_bg"])
    dataset.close()


# --- bad input ------------------------------------------------------------------------------


def test_corrupt_member_is_named_or_skipped(broken):
    target = member_names(5)[0]  # sample 5 lives in shard 0

    def damage(name, payload):
        return payload[: len(payload) // 2] if name == target else payload

    _rewrite_shard(broken / shard_name(0), damage)
    with pytest.raises(ValueError, match=rf"shard_000\.zip:{target}"):
        FgBgDataset(DatasetInfo.open(broken))[5]
    skipping = FgBgDataset(DatasetInfo.open(broken), on_error="skip")
    sample = skipping[5]
    assert sample["sample"] == 6 and skipping.skipped == 1 and target in skipping.errors[0]
    assert skipping[4]["sample"] == 4 and skipping.skipped == 1


def test_garbage_png_and_missing_member_are_named(broken):
    mask_name, depth_name = member_names(2)[1], member_names(3)[2]

    def damage(name, payload):
        if name == depth_name:
            return None
        if name == mask_name:
            return payload[:40] + bytes(len(payload) - 40)
        return payload

    _rewrite_shard(broken / shard_name(0), damage)
    with pytest.raises(ValueError, match=rf"shard_000\.zip:{mask_name}"):
        FgBgDataset(DatasetInfo.open(broken))[2]
    with pytest.raises(ValueError, match=rf"shard_000\.zip:{depth_name}: missing member"):
        FgBgDataset(DatasetInfo.open(broken))[3]
    skipping = FgBgDataset(DatasetInfo.open(broken), on_error="skip")
    assert [skipping[i]["sample"] for i in (2, 3)] == [4, 4] and skipping.skipped == 3


def test_missing_shard_is_named(broken):
    (broken / shard_name(1)).unlink()
    dataset = FgBgDataset(DatasetInfo.open(broken))
    first_of_shard_1 = int(np.flatnonzero(dataset.index["bg"] == 1)[0])
    with pytest.raises(FileNotFoundError, match=r"shard_001\.zip"):
        dataset[first_of_shard_1]
    assert any("shard_001.zip: missing" in problem for problem in verify_shards(broken))
    with pytest.raises(ValueError, match="shard_001.zip"):
        FgBgDataset(DatasetInfo.open(broken), verify=True)


def test_changed_shard_fails_verification(broken):
    assert verify_shards(broken) == []
    FgBgDataset(DatasetInfo.open(broken), verify=True)
    _rewrite_shard(broken / shard_name(2), lambda name, payload: payload)  # same members, other bytes
    assert any("shard_002.zip: sha256 differs" in problem for problem in verify_shards(broken))
    with pytest.raises(ValueError, match=r"shard_002\.zip: sha256 differs"):
        FgBgDataset(DatasetInfo.open(broken), verify=True)


# --- resolutions ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 96, 112])
def test_resolutions(data, size):
    manifest = read_manifest(data)
    dataset = FgBgDataset(
        DatasetInfo.open(data), split="train", transform=make_transforms(size, train=True, stats=manifest)
    )
    batch = next(iter(make_loader(dataset, batch_size=8, shuffle=True, workers=0, device="cpu")))
    assert batch["bg"].shape == batch["fg_bg"].shape == (8, 3, size, size)
    assert batch["mask"].shape == batch["depth"].shape == (8, 1, size, size)
    assert set(batch["mask"].unique().tolist()) <= {0.0, 1.0}


def test_denormalise_inverts_the_normalisation(small_dataset):
    from fgbg_utils.manifest import read_manifest
    from fgbg_utils.transforms import make_transforms

    transform = make_transforms(64, train=False, stats=read_manifest(small_dataset))
    rgb = np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3).astype(np.uint8)
    out = transform(rgb, rgb, np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8))
    assert torch.equal(out["bg"], out["fg_bg"])  # equal pixels stay equal: the object is their difference
    back = transform.denormalise(out["fg_bg"]).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(back, rgb / 255.0, atol=1e-5)


def test_unreadable_manifest_and_index_are_named(broken):
    whole = (broken / "data_manifest.json").read_text()
    (broken / "data_manifest.json").write_text('{"generation": ')
    with pytest.raises(ValueError, match=f"{broken / 'data_manifest.json'}: not a readable manifest"):
        read_manifest(broken)
    (broken / "data_manifest.json").write_text(whole)
    lines = (broken / "index.csv").read_text().splitlines()
    lines[3] = lines[3].replace(",", ",x", 1)
    (broken / "index.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"{broken / 'index.csv'}: not a readable index"):
        DatasetInfo.open(broken)
    with pytest.raises(ValueError, match=f"{broken / 'index.csv'}: row 3 is not an index row"):
        read_index(broken / "index.csv")
