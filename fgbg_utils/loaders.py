"""The DataLoader factory for both datasets: seeded workers, uint8 transport, pinned memory, whole
batches sent from the workers as one block (`BatchLoader`), for the virtual dataset box parts only
(`VirtualBatchLoader`), or no workers at all when it composes on a GPU."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from .virtual_dataset import BoxParts, VirtualFgBgDataset


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: seed numpy and random from torch's per-worker seed.

    It does not call cv2.setNumThreads: in a forked worker whose parent has run OpenCV's
    thread pool, that call blocks forever (it waits for the parent's pool threads, which the
    fork did not copy); OpenCV's own after-fork handling makes plain cv2 calls safe.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def whole_batches(batch):
    """collate_fn for a dataset whose `__getitems__` gives the whole batch (`VirtualFgBgDataset`,
    `schedule.SeededBatches`): the batch as it is."""
    return batch


class PackedBatch(NamedTuple):
    """A batch of tensors as a loader worker sends it: one block of shared memory holding each tensor's
    bytes at an offset, so the batch travels as one segment and one file descriptor, not one per tensor."""

    data: torch.Tensor
    """uint8, in shared memory when packed in a worker."""
    layout: tuple[tuple[str, int, torch.dtype, tuple[int, ...]], ...]
    """(key, byte offset, dtype, shape) of each tensor."""

    def unpack(self) -> dict[str, torch.Tensor]:
        """The batch: views of `data`, no copies."""
        out = {}
        for key, start, dtype, shape in self.layout:
            size = math.prod(shape) * dtype.itemsize
            out[key] = self.data[start : start + size].view(dtype).view(shape)
        return out


def pack_batch(batch: dict[str, torch.Tensor]) -> PackedBatch:
    """`batch` (CPU tensors) copied into one block, each tensor at an offset aligned to 64 bytes; in a
    loader worker the block is allocated in shared memory (as torch's default_collate does there), so
    sending it copies nothing more."""
    layout, end = [], 0
    for key, tensor in batch.items():
        layout.append((key, end, tensor.dtype, tuple(tensor.shape)))
        end += -(-tensor.numel() * tensor.element_size() // 64) * 64
    if get_worker_info() is not None:
        data = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(end))
    else:
        data = torch.empty(end, dtype=torch.uint8)
    packed = PackedBatch(data, tuple(layout))
    for tensor, view in zip(batch.values(), packed.unpack().values(), strict=True):
        view.copy_(tensor)
    return packed


def _pack_in_worker(batch):
    """collate_fn of `BatchLoader`: a dict of tensors packed (`pack_batch`); anything else (box parts,
    a single sample's dict with ints) as it is."""
    if isinstance(batch, dict) and all(isinstance(value, torch.Tensor) for value in batch.values()):
        return pack_batch(batch)
    return batch


class _SendBoxParts:
    """worker_init_fn of `VirtualBatchLoader`: the worker's copy of the dataset sends box parts;
    then the given worker_init_fn (if any) runs."""

    def __init__(self, then=None):
        self.then = then

    def __call__(self, worker_id: int) -> None:
        get_worker_info().dataset._send_parts = True
        if self.then is not None:
            self.then(worker_id)


class BatchLoader(DataLoader):
    """A DataLoader with workers for a dataset that gives whole batches (`whole_batches`): each worker
    sends its batch packed into one block of shared memory (`PackedBatch`), this process unpacks it
    into views. Why: the loader pays per tensor sent (a shared-memory segment, a file descriptor passed
    over a socket, a mapping), and a training batch has eight; one block took `train --virtual`'s loader
    from 4,200 to 5,200 samples/s at 96 px with two workers on two cores. Sampler, len(), seeding and
    persistent workers are the DataLoader's; collate_fn is this class's own."""

    def __init__(self, dataset: Dataset, *args, collate_fn=whole_batches, **kwargs):
        if collate_fn is not whole_batches:
            raise ValueError(f"{type(self).__name__} sends the dataset's whole batches: no collate_fn ({collate_fn})")
        super().__init__(dataset, *args, collate_fn=_pack_in_worker, **kwargs)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return map(self._complete, super().__iter__())

    def _complete(self, fetched: PackedBatch | BoxParts) -> dict[str, torch.Tensor]:
        return fetched.unpack() if isinstance(fetched, PackedBatch) else fetched


class VirtualBatchLoader(BatchLoader):
    """A `BatchLoader` whose workers send only the box-local parts of a CPU VirtualFgBgDataset's
    batches (`BoxParts`); this process assembles the full frames from the backgrounds it holds.

    Why: frames composed in a worker travel in fresh shared memory, and its zero-filled pages
    (25 MB per batch of 64 at 224 px) cost as much system time as the composition itself. The
    assembled batches are new tensors in ordinary memory, which the allocator reuses; nothing
    the caller keeps is ever written again. Equal to `dataset.batch(positions)` byte for byte.
    Batches whose frames are not sent as composed (a transform, a resize, float output) come
    from the workers whole, packed.
    """

    def __init__(self, dataset: VirtualFgBgDataset, *args, worker_init_fn=None, **kwargs):
        if not isinstance(dataset, VirtualFgBgDataset):
            raise TypeError(f"VirtualBatchLoader needs a VirtualFgBgDataset, got {type(dataset).__name__}")
        super().__init__(dataset, *args, worker_init_fn=_SendBoxParts(worker_init_fn), **kwargs)

    def _complete(self, fetched: PackedBatch | BoxParts) -> dict[str, torch.Tensor]:
        return self.dataset.assemble(fetched) if isinstance(fetched, BoxParts) else super()._complete(fetched)


def composing_device(dataset: Dataset) -> torch.device | None:
    """The device a VirtualFgBgDataset composes on, found under wrappers that keep the wrapped
    dataset as ``.dataset`` (Subset, training's per-sample seeding); None for any other dataset."""
    for _ in range(8):  # wrappers nest a few deep at most
        if isinstance(dataset, VirtualFgBgDataset):
            return dataset.device
        dataset = getattr(dataset, "dataset", None)
        if dataset is None:
            return None
    return None


def make_loader(
    dataset: Dataset,
    batch_size: int = 64,
    shuffle: bool = False,
    workers: int | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    multiprocessing_context=None,
    pin_memory: bool | None = None,
    persistent_workers: bool | None = None,
    prefetch_factor: int | None = None,
    drop_last: bool = False,
    **options,
) -> DataLoader:
    """A DataLoader with settings for this machine, each overridable.

    workers = min(cpu_count, 8); pin_memory when the device is CUDA; when workers > 0, a
    prefetch factor of 4 batches per worker and persistent workers (`persistent_workers=True`, the
    default: the same worker processes serve every epoch of this loader, so a caller reuses one
    loader across epochs instead of starting workers again; False ends them with each epoch); a
    torch generator seeded with `seed` (the same shuffles for the same seed) and `seed_worker`
    seeding numpy and random in each worker. A VirtualFgBgDataset is fetched a batch at a time
    (its `__getitems__`, collate_fn `whole_batches`), as is any dataset given that collate_fn; with
    workers, such batches come through a `BatchLoader` (each sent as one block). A VirtualFgBgDataset
    that composes on a GPU (its `device`, also under a wrapper such as a Subset) is loaded in this
    process: worker processes cannot use the parent's CUDA context
    ("Cannot re-initialize CUDA in forked subprocess"), so workers > 0 becomes 0 with a one-line
    message. On the CPU with workers and uint8 output at the build's size without a transform,
    the loader is a `VirtualBatchLoader` (the workers compose the boxes, this process pastes them
    into the backgrounds). `multiprocessing_context` ("fork", "spawn", "forkserver") is passed
    through; None is the platform default.
    """
    from .runtime import default_device

    composing_on = composing_device(dataset)
    if composing_on is not None and composing_on.type != "cpu":
        if workers:
            print(f"make_loader: the virtual dataset composes on {composing_on}: loading in this process (workers=0)")
        workers = 0
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    device = torch.device(device or default_device())
    if pin_memory is None:
        pin_memory = device.type == "cuda" and not isinstance(dataset, VirtualFgBgDataset)
    generator = torch.Generator()
    generator.manual_seed(seed)
    kwargs = dict(
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        generator=generator,
        worker_init_fn=seed_worker,
    )
    if isinstance(dataset, VirtualFgBgDataset):
        kwargs["collate_fn"] = whole_batches
    if workers > 0:
        kwargs["persistent_workers"] = True if persistent_workers is None else persistent_workers
        kwargs["prefetch_factor"] = 4 if prefetch_factor is None else prefetch_factor
        kwargs["multiprocessing_context"] = multiprocessing_context
    kwargs.update(options)
    if workers > 0 and isinstance(dataset, VirtualFgBgDataset) and dataset._frames_as_composed():
        return VirtualBatchLoader(dataset, **kwargs)
    if workers > 0 and kwargs.get("collate_fn") is whole_batches:
        return BatchLoader(dataset, **kwargs)
    return DataLoader(dataset, **kwargs)
