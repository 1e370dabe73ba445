"""Training data: decode every image once into memory, then batch with width padding.

Captcha sets are small (hundreds to tens of thousands of images), so holding the resized uint8 pixels in
memory makes each epoch cost only the network's time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from captcha_crnn.data.images import InputPolicy, open_image, stack_batch, to_grayscale
from captcha_crnn.data.labels import LabelledImage
from captcha_crnn.data.tokenizer import CTCTokenizer
from captcha_crnn.errors import CaptchaCrnnError, ImageError, LabelError

log = logging.getLogger("captcha_crnn")


@dataclass
class DecodedImage:
    item: LabelledImage
    gray: np.ndarray  # original size, uint8


def decode_all(items: Sequence[LabelledImage], what: str) -> list[DecodedImage]:
    """Decode images, skipping unreadable ones with one warning that counts them."""
    decoded, bad = [], []
    for item in items:
        try:
            decoded.append(DecodedImage(item, to_grayscale(open_image(item.path))))
        except ImageError as exc:
            bad.append(str(exc))
    if bad:
        log.warning("skipped %d unreadable %s file(s), e.g. %s", len(bad), what, bad[0])
    if not decoded:
        raise CaptchaCrnnError(f"none of the {len(items)} {what} images could be read")
    return decoded


def check_labels(images: Sequence[DecodedImage], tokenizer: CTCTokenizer, policy: InputPolicy) -> None:
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
        h, w = img.gray.shape
        width = policy.width_for((w, h))
        frames, needed = policy.frames(width), CTCTokenizer.min_frames(label)
        if frames < needed:
            need_width = needed * policy.width_stride
            raise LabelError(
                f"{path}: label {label!r} needs {needed} output frames but a {w}x{h} image gives {frames} "
                f"(input width {width}); train with --min-width {need_width} to stretch narrow images"
            )


class ImageSet(Dataset):
    """Resized uint8 images with their encoded labels."""

    def __init__(self, images: Sequence[DecodedImage], tokenizer: CTCTokenizer, policy: InputPolicy) -> None:
        self.paths = [str(img.item.path) for img in images]
        self.labels = [img.item.label for img in images]
        self.pixels = [policy.resize(img.gray) for img in images]
        self.targets = [tokenizer.encode(label) for label in self.labels]

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, list[int], int]:
        return self.pixels[i], self.targets[i], i


class Collate:
    """Batch (pixels, target, index) triples; a class rather than a closure so workers can pickle it."""

    def __init__(self, policy: InputPolicy) -> None:
        self.policy = policy

    def __call__(self, batch: Sequence[tuple[np.ndarray, list[int], int]]) -> dict[str, torch.Tensor]:
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
    def __init__(
        self, train: ImageSet, val: ImageSet, policy: InputPolicy, batch_size: int, seed: int
    ) -> None:
        super().__init__()
        self.train_set, self.val_set = train, val
        self.batch_size, self.seed = batch_size, seed
        self.collate = Collate(policy)

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.train_set,
            self.batch_size,
            shuffle=True,
            collate_fn=self.collate,
            generator=generator,
            drop_last=False,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, max(self.batch_size, 64), shuffle=False, collate_fn=self.collate)
