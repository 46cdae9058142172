"""Stream batches from a prepared dataset (memory-mapped) into the training loop.

No DataLoader workers: on 2 cores the main process slicing a memmap is faster than worker IPC, and
memory stays flat whatever the split size (only one batch is materialised at a time). Shuffling is
seeded per (seed, epoch), so an interrupted run that resumes at epoch k sees the same batches as an
uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from salience.data.prepared import PreparedDataset

# Images are normalised with ImageNet statistics for every backbone (the papers fine-tune
# ImageNet-initialised networks; CYBORG's loader uses the same constants).
RELEASE_EVERY = 50  # batches between madvise(DONTNEED) of the memmaps

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def to_tensor_images(images_u8: np.ndarray) -> Tensor:
    """B×S×S×3 uint8 → B×3×S×S float32, ImageNet-normalised."""
    x = torch.from_numpy(np.ascontiguousarray(images_u8)).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - IMAGENET_MEAN) / IMAGENET_STD


def denormalize(x: Tensor) -> Tensor:
    """Inverse of `to_tensor_images` (B×3×S×S in [0, 1]), for visualisation."""
    return (x * IMAGENET_STD.to(x) + IMAGENET_MEAN.to(x)).clamp(0, 1)


class BatchStream:
    """Iterable of batch dicts (see salience.methods.base for the keys)."""

    def __init__(
        self,
        ds: PreparedDataset,
        rows: np.ndarray,
        batch_size: int,
        *,
        cam_grid: int,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        flip_maps: bool = False,
        device: torch.device | str = "cpu",
        drop_last: bool = False,
        no_singleton: bool = False,
    ) -> None:
        self.ds = ds
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size = batch_size
        self.cam_grid = cam_grid
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        self.flip_maps = flip_maps
        self.device = torch.device(device)
        self.drop_last = drop_last
        # Training: a last batch of ONE sample is merged into the batch before it (which then holds
        # batch_size + 1). BatchNorm cannot normalise one sample when the feature map is 1×1
        # ("Expected more than 1 value per channel when training"); no sample is dropped.
        self.no_singleton = no_singleton
        self._maps_cam = ds.maps_cam(cam_grid)
        self._labels = ds.index["label"].to_numpy(dtype=np.int64)
        self._has_map = ds.index["has_map"].to_numpy(dtype=bool)

    def __len__(self) -> int:
        n = len(self.rows)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size) - (1 if self.merges_singleton else 0)

    @property
    def merges_singleton(self) -> bool:
        """True when the last batch would hold one sample and is merged into the one before."""
        n = len(self.rows)
        return (
            self.no_singleton
            and not self.drop_last
            and n > self.batch_size
            and n % self.batch_size == 1
        )

    def order(self) -> np.ndarray:
        if not self.shuffle:
            return self.rows
        rng = np.random.default_rng([self.seed, self.epoch])
        return self.rows[rng.permutation(len(self.rows))]

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        order = self.order()
        n_batches = len(self)
        for start in range(n_batches):
            stop = (start + 1) * self.batch_size
            if start == n_batches - 1 and self.merges_singleton:
                stop += 1  # the would-be singleton joins the last full batch
            idx = order[start * self.batch_size : stop]
            # sorted indices read the memmap sequentially; batch composition is unchanged
            yield self.batch(np.sort(idx))
            if (start + 1) % RELEASE_EVERY == 0:
                # pages already read count towards RSS until dropped: keeps a 700k-image test
                # split flat in memory (BENCHMARKS.md, "Data preparation")
                self.ds.release_pages()

    def batch(self, idx: np.ndarray) -> dict[str, Tensor]:
        has = torch.from_numpy(self._has_map[idx])
        maps = torch.from_numpy(np.ascontiguousarray(self.ds.maps[idx])).float().div_(255.0)
        maps_cam = torch.from_numpy(np.ascontiguousarray(self._maps_cam[idx])).float()
        if self.flip_maps:
            # SAGE-T3 sanity check: train on 1 − h (annotated samples only)
            m = has.view(-1, 1, 1)
            maps = torch.where(m, 1.0 - maps, maps)
            maps_cam = torch.where(m, 1.0 - maps_cam, maps_cam)
        batch = {
            "image": to_tensor_images(self.ds.images[idx]),
            "label": torch.from_numpy(self._labels[idx]),
            "map": maps,
            "map_cam": maps_cam,
            "has_map": has,
            "row": torch.from_numpy(idx),
        }
        if self.device.type != "cpu":
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        return batch
