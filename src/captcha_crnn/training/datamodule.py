"""Training data: labelled folders held in memory or read lazily, and generated captchas streamed.

Captcha sets are usually small (hundreds to tens of thousands of images), so by default every image is
decoded once and its resized uint8 pixels are held in memory: an epoch then costs only the network's time.
Larger sets (or `--lazy`) keep only paths and sizes in memory and decode in DataLoader workers, so memory
stays bounded whatever the folder's size. `--synthetic N` streams N freshly generated captchas per epoch,
never written to disk, optionally mixed with a real folder.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    Sampler,
    get_worker_info,
)

from captcha_crnn.data.images import InputPolicy, load_for_model, open_image, stack_batch, to_pixels
from captcha_crnn.data.labels import LabelledImage
from captcha_crnn.data.synthetic import Renderer, Style
from captcha_crnn.data.tokenizer import CTCTokenizer
from captcha_crnn.errors import CaptchaCrnnError, ImageError, LabelError, warn_skipped

log = logging.getLogger("captcha_crnn")


@dataclass
class ScannedImage:
    """A labelled image with its size; `pixels` holds the decoded image (grey, or RGB when it has colour)
    unless the set is read lazily."""

    item: LabelledImage
    size: tuple[int, int]  # (width, height)
    pixels: np.ndarray | None = None


def scan(items: Sequence[LabelledImage], what: str, lazy: bool) -> list[ScannedImage]:
    """Decode images (or, lazily, read only their headers), skipping unreadable ones with one warning."""
    scanned, bad = [], []
    for item in items:
        try:
            if lazy:
                scanned.append(ScannedImage(item, _header_size(item)))
            else:
                pixels = to_pixels(open_image(item.path))
                scanned.append(ScannedImage(item, (pixels.shape[1], pixels.shape[0]), pixels))
        except ImageError as exc:
            bad.append(str(exc))
    warn_skipped(bad, what)
    if not scanned:
        first = f"; the first unreadable one: {bad[0]}" if bad else ""
        raise CaptchaCrnnError(f"none of the {len(items)} {what} images could be read{first}")
    return scanned


def _header_size(item: LabelledImage) -> tuple[int, int]:
    try:
        with Image.open(item.path) as img:
            return img.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{item.path}: not a readable image ({exc})") from None


def check_labels(images: Sequence[ScannedImage], tokenizer: CTCTokenizer, policy: InputPolicy) -> None:
    """Fail before training on a label the model cannot learn: unknown characters, or more characters
    than the image's output sequence has frames."""
    for img in images:
        label, path = img.item.label, img.item.path
        missing = tokenizer.unknown_chars(label)
        if missing:
            raise LabelError(
                f"{path}: label {label!r} has characters outside the charset {tokenizer.charset!r}: {missing!r}"
                " (add them to --charset, or leave --charset out to learn it from the labels)"
            )
        w, h = img.size
        if policy.crop and img.pixels is not None:  # what the network reads: the image cut to its text
            h, w = policy.cut(policy.convert(img.pixels)).shape[:2]
        width = policy.width_for((w, h))
        frames, needed = policy.frames(width), CTCTokenizer.min_frames(label)
        if frames < needed:
            need_width = needed * policy.width_stride
            seen = f"a {w}x{h} image" if (w, h) == img.size else f"the image cut to its text ({w}x{h})"
            raise LabelError(
                f"{path}: label {label!r} needs {needed} output frames but {seen} gives {frames} "
                f"(input width {width}); train with --min-width {need_width} to stretch narrow images"
            )


Sample = tuple[np.ndarray, list[int], int]  # resized pixels, encoded label, index (-1: generated)


class ImageSet(Dataset):
    """Labelled images, resized and held in memory, or (lazy) decoded on each access."""

    def __init__(self, images: Sequence[ScannedImage], tokenizer: CTCTokenizer, policy: InputPolicy) -> None:
        self.policy = policy
        self.paths = [str(img.item.path) for img in images]
        self.labels = [img.item.label for img in images]
        self.targets = [tokenizer.encode(label) for label in self.labels]
        self.pixels = None if images[0].pixels is None else [policy.resize(img.pixels) for img in images]

    @property
    def lazy(self) -> bool:
        return self.pixels is None

    def widths(self) -> list[int] | None:
        """Each image's input width, when the pixels are in memory (a lazy set's are not known)."""
        return None if self.pixels is None else [p.shape[1] for p in self.pixels]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Sample:
        if self.pixels is not None:
            return self.pixels[i], self.targets[i], i
        # Lazy: a file whose header read but whose pixels do not is skipped for its neighbour, so a batch
        # keeps its size (an empty or short batch on one process would stall distributed training).
        for attempt in range(min(len(self.paths), 101)):
            j = (i + attempt) % len(self.paths)
            try:
                return load_for_model(self.paths[j], self.policy), self.targets[j], j
            except ImageError as exc:
                log.warning("skipped while training: %s", exc)
        raise CaptchaCrnnError(f"{self.paths[i]}: this and the next 100 images could not be decoded")


def shard_seed(seed: int, epoch: int, rank: int, worker: int) -> int:
    """One independent, reproducible random stream per (seed, epoch, process, DataLoader worker)."""
    return int(np.random.SeedSequence([seed, epoch, rank, worker]).generate_state(1)[0])


class SyntheticStream(IterableDataset):
    """`count` generated captchas per epoch, drawn fresh each epoch, plus real images at a ratio.

    Every (seed, epoch, process rank, DataLoader worker) has its own random stream, so a run is
    reproducible for a given seed, process count and worker count, and no two shards repeat each other.
    With P processes each draws ceil(count / P) images, so an epoch may hold up to P-1 more than `count`.
    With `real` given, `mix` is the share of generated images: each epoch has `count` generated images
    and count*(1-mix)/mix real ones, the real ones shuffled and reused as often as needed.
    """

    def __init__(
        self,
        style: Style,
        count: int,
        tokenizer: CTCTokenizer,
        policy: InputPolicy,
        seed: int,
        real: ImageSet | None = None,
        mix: float = 1.0,
    ) -> None:
        self.style, self.count, self.tokenizer, self.policy, self.seed = style, count, tokenizer, policy, seed
        self.real, self.mix = real, mix
        self.real_count = 0 if real is None else round(count * (1 - mix) / mix)
        self.epoch, self.rank, self.world_size = 0, 0, 1

    def _per_process(self) -> tuple[int, int]:
        """Generated and real images per process: rounded up, so every process has the same number of
        batches (a process with one batch more would wait for the others forever under DDP)."""
        return math.ceil(self.count / self.world_size), math.ceil(self.real_count / self.world_size)

    def __len__(self) -> int:  # per process: what Lightning uses for the progress bar and epoch length
        return sum(self._per_process())

    def __iter__(self) -> Iterator[Sample]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        rng = random.Random(shard_seed(self.seed, self.epoch, self.rank, worker))
        renderer = Renderer(self.style, rng.getrandbits(63))
        synthetic_here, real_here = self._per_process()
        n_synthetic = _share(synthetic_here, worker, workers)
        n_real = _share(real_here, worker, workers)
        kinds = [True] * n_synthetic + [False] * n_real
        rng.shuffle(kinds)
        order: list[int] = []
        for synthetic in kinds:
            if synthetic:
                label, image = renderer.sample()
                pixels = self.policy.resize(to_pixels(image))
                yield pixels, self.tokenizer.encode(label), -1
            else:
                if not order:
                    order = list(range(len(self.real)))  # type: ignore[arg-type]
                    rng.shuffle(order)
                yield self.real[order.pop()]  # type: ignore[index]


def _share(total: int, shard: int, shards: int) -> int:
    return total // shards + (1 if shard < total % shards else 0)


class WidthBuckets(Sampler[list[int]]):
    """Training batches of images of similar width, for sets whose widths vary.

    A batch is padded to its widest image, so a random batch of 84- to 412-pixel images spends most of
    its convolutions on padding: on the general recipe, a training step reads ~3x more images per second
    when each batch is cut from width-sorted images (docs/accuracy.md). Each epoch shuffles all images,
    sorts each pool of `pool` batches' worth by width, cuts the pools into batches and shuffles the batches:
    the usual bucketing of sequence models (fairseq, torchtext), random at the scale of an epoch. Process
    `rank` of `world_size` takes every world_size-th batch, all processes the same number.
    """

    def __init__(
        self,
        widths: Sequence[int],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        pool: int = 50,
    ) -> None:
        self.widths, self.batch_size, self.seed = list(widths), batch_size, seed
        self.rank, self.world_size, self.pool, self.epoch = rank, world_size, pool, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(shard_seed(self.seed, self.epoch, 0, 0))  # the same order in every process
        order = list(range(len(self.widths)))
        rng.shuffle(order)
        span = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start : start + span], key=self.widths.__getitem__)
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        rng.shuffle(batches)
        if len(batches) < self.world_size:  # fewer batches than processes: each process gets a share
            order = sorted(order, key=self.widths.__getitem__) * self.world_size  # repeated if fewer images
            size = math.ceil(len(self.widths) / self.world_size)
            batches = [order[i * size : (i + 1) * size] for i in range(self.world_size)]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches()[self.rank :: self.world_size][: len(self)])

    def __len__(self) -> int:
        return max(math.ceil(len(self.widths) / self.batch_size), self.world_size) // self.world_size


class StridedSampler(Sampler[int]):
    """Validation across processes: rank r takes items r, r+W, r+2W... Unlike DistributedSampler it
    repeats no image to even out the ranks, so the reduced metrics count every image exactly once."""

    def __init__(self, size: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, size, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class Collate:
    """Batch (pixels, target, index) triples; a class rather than a closure so workers can pickle it."""

    def __init__(self, policy: InputPolicy) -> None:
        self.policy = policy

    def __call__(self, batch: Sequence[Sample]) -> dict[str, torch.Tensor]:
        pixels, targets, index = zip(*batch)
        images, input_lengths = stack_batch(pixels, self.policy)
        return {
            "images": torch.from_numpy(images),
            "input_lengths": torch.from_numpy(input_lengths),
            "targets": torch.tensor([t for target in targets for t in target], dtype=torch.long),
            "target_lengths": torch.tensor([len(t) for t in targets], dtype=torch.long),
            "index": torch.tensor(index, dtype=torch.long),
        }


class CaptchaDataModule(L.LightningDataModule):
    """Data loaders for one process of a (possibly distributed) run.

    It does its own distributed sampling (the trainer runs with use_distributed_sampler=False): training
    shuffles with a DistributedSampler, or shards the synthetic stream by rank; validation is split by
    StridedSampler so each image is counted once.
    """

    def __init__(
        self,
        train: ImageSet | SyntheticStream,
        val: ImageSet,
        policy: InputPolicy,
        batch_size: int,
        seed: int,
        workers: int = 0,
    ) -> None:
        super().__init__()
        self.train_set, self.val_set = train, val
        self.batch_size, self.seed, self.workers = batch_size, seed, workers
        self.collate = Collate(policy)

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader_options(self, workers: int, seed: int) -> dict:
        # A generator of the loader's own: starting an iterator draws a seed from it, not from the global
        # one that augmentation and dropout draw from, so how often validation runs never changes training.
        generator = torch.Generator().manual_seed(seed)
        options: dict = {"collate_fn": self.collate, "num_workers": workers, "generator": generator}
        if workers:
            options.update(persistent_workers=False, prefetch_factor=4)
        return options

    def train_dataloader(self) -> DataLoader:
        rank, world_size = self._world()
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        options = self._loader_options(self.workers, self.seed + epoch)
        if isinstance(self.train_set, SyntheticStream):
            # Called again each epoch (reload_dataloaders_every_n_epochs=1), so the stream knows its epoch.
            self.train_set.epoch, self.train_set.rank, self.train_set.world_size = epoch, rank, world_size
            return DataLoader(self.train_set, self.batch_size, **options)
        widths = self.train_set.widths()
        if widths is not None and len(set(widths)) > 1:
            buckets = WidthBuckets(widths, self.batch_size, self.seed, rank, world_size)
            buckets.set_epoch(epoch)
            return DataLoader(self.train_set, batch_sampler=buckets, **options)
        sampler = DistributedSampler(self.train_set, world_size, rank, shuffle=True, seed=self.seed)
        sampler.set_epoch(epoch)
        return DataLoader(self.train_set, self.batch_size, sampler=sampler, **options)

    def val_dataloader(self) -> DataLoader:
        rank, world_size = self._world()
        sampler = StridedSampler(len(self.val_set), rank, world_size)
        workers = self.workers if self.val_set.lazy else 0
        return DataLoader(
            self.val_set,
            max(self.batch_size, 64),
            sampler=sampler,
            **self._loader_options(workers, self.seed),
        )
