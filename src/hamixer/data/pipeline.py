"""Mini-batches from a whole dataset held in memory as one uint8 tensor.

Small datasets fit in memory, so a batch is an index into one tensor: no workers, no per-item
Python objects. Per-image augmentation (random crop, RandAugment) runs torchvision
``transforms.v2`` on each uint8 image; the rest (flip, resize, normalisation, random erasing,
mixup/cutmix) runs on the whole float batch with timm. The order of an epoch is a function of
its seed only, so a resumed run sees the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .arrays import ArraySplit


@dataclass
class AugmentSpec:
    """What to do to training images; every field off means plain normalised images.

    The one definition of the augmentation settings: a training configuration has a flat
    setting of each name (its ``augment`` is this, built from them); the defaults here are
    "off", those of a run are its recipe's.
    """

    crop_padding: int = 0
    hflip: float = 0.0
    randaugment_n: int = 0
    randaugment_m: float = 9.0
    randaugment_mstd: float = 0.0
    reprob: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    label_smoothing: float = 0.0

    @property
    def mixes(self) -> bool:
        return (self.mixup > 0 or self.cutmix > 0) and self.mixup_prob > 0


class ImageBatches:
    """Iterate ``(images, hard_labels, targets)`` over a split; targets are soft under mixup."""

    def __init__(self, split: ArraySplit, batch_size: int, img_size: int,
                 mean: tuple[float, ...], std: tuple[float, ...], num_classes: int,
                 train: bool, augment: AugmentSpec | None = None,
                 device: torch.device | str = "cpu", limit: int | None = None,
                 shard: tuple[int, int] = (0, 1)) -> None:
        images = torch.from_numpy(np.ascontiguousarray(split.images)).permute(0, 3, 1, 2)
        labels = torch.from_numpy(split.labels)
        if limit is not None and limit < len(labels):
            images, labels = images[:limit], labels[:limit]
        self.images, self.labels = images.contiguous(), labels
        self.batch_size, self.img_size, self.train = batch_size, img_size, train
        self.num_classes = num_classes
        self.device = torch.device(device)
        c = images.shape[1]
        self.mean = torch.tensor(mean[:c], device=self.device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std[:c], device=self.device).view(1, -1, 1, 1) * 255
        self.augment = augment if (train and augment is not None) else AugmentSpec()
        # (rank, world): this process takes slice `rank` of `world` equal slices of every
        # global batch (multi-process training); (0, 1) is the whole batch
        self.shard = shard
        self._per_image = self._build_per_image()
        self._erase, self._mixup = self._build_batch_ops()

    def __len__(self) -> int:
        n = len(self.labels)
        if self.augment.mixes and n % 2:
            n -= 1
        return max(1, math.ceil(n / self.batch_size))

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def _build_per_image(self):
        from torchvision.transforms import v2

        a, ops = self.augment, []
        size = self.images.shape[-1]
        if a.crop_padding > 0:
            ops.append(v2.RandomCrop(size, padding=a.crop_padding, padding_mode="constant"))
        if a.randaugment_n > 0:
            self._randaug = v2.RandAugment(num_ops=a.randaugment_n,
                                           magnitude=int(round(a.randaugment_m)))
            ops.append(self._randaug)
        return v2.Compose(ops) if ops else None

    def _build_batch_ops(self):
        a = self.augment
        erase = mixup = None
        if a.reprob > 0:
            from timm.data.random_erasing import RandomErasing

            erase = RandomErasing(probability=a.reprob, mode="pixel", device=str(self.device))
        if a.mixes:
            from timm.data import Mixup

            mixup = Mixup(mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, prob=a.mixup_prob,
                          switch_prob=a.mixup_switch_prob, mode="batch",
                          label_smoothing=a.label_smoothing, num_classes=self.num_classes)
        return erase, mixup

    def _augment_images(self, x: Tensor) -> Tensor:
        a = self.augment
        out = []
        for img in x:
            if a.randaugment_n > 0 and a.randaugment_mstd > 0:
                # timm's "mstd": the magnitude of each image is drawn around m.
                m = torch.normal(torch.tensor(float(a.randaugment_m)), a.randaugment_mstd)
                self._randaug.magnitude = int(min(max(round(float(m)), 0),
                                                  self._randaug.num_magnitude_bins - 1))
            out.append(self._per_image(img))
        return torch.stack(out)

    def _to_float(self, x: Tensor) -> Tensor:
        x = x.to(self.device, non_blocking=True).float()
        if x.shape[-1] != self.img_size or x.shape[-2] != self.img_size:
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear",
                              antialias=True, align_corners=False)
        return (x - self.mean) / self.std

    def batches(self, seed: int | None = None, start: int = 0
                ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """One epoch; training order is ``randperm`` under ``seed``, evaluation is in order.

        ``start`` skips the first batches without drawing any random numbers for them (a run
        resumed mid-epoch restores the RNG state saved after those batches).
        """
        n = len(self.labels)
        if self.train:
            gen = torch.Generator().manual_seed(int(seed or 0))
            order = torch.randperm(n, generator=gen)
            if self.augment.mixes and n % 2:
                order = order[:-1]  # timm's Mixup needs an even batch
        else:
            order = torch.arange(n)
        bs = self.batch_size
        for first in range(start * bs, len(order), bs):
            idx = order[first:first + bs]
            rank, world = self.shard
            if world > 1:  # equal slices: a few images of a ragged last batch are dropped
                per = len(idx) // world
                if per == 0:
                    continue
                idx = idx[rank * per:(rank + 1) * per]
            if self._mixup is not None and len(idx) % 2:
                idx = idx[:-1]
            x, y = self.images[idx], self.labels[idx]
            if self._per_image is not None:
                x = self._augment_images(x)
            if self.augment.hflip > 0:  # one flip decision per image, done on the whole batch
                flip = torch.rand(len(x)) < self.augment.hflip
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            x = self._to_float(x)
            y = y.to(self.device, non_blocking=True)
            if self._erase is not None:
                x = self._erase(x)
            if self._mixup is not None:
                x, target = self._mixup(x, y)
            else:
                target = y
            yield x, y, target
