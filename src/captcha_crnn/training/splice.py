"""Splicing: new training images cut and joined from two labelled ones (StackMix, Shonenkov et al. 2021).

Few labels give the network few sequences; it learns them whole. Where each character sits in an image is
known from the starting model's CTC forced alignment with the true label, so an image can be cut between
two characters and joined to the tail of another image of the same label length cut at the same place:
`ab|cde` + `vw|xyz` -> `abxyz`, a new sequence in the style's own pixels. Forced alignment needs a model
that already reads the style somewhat: the run's starting weights (a fine-tune from the general model).
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset

from captcha_crnn.data.images import InputPolicy, stack_batch
from captcha_crnn.data.tokenizer import BLANK

log = logging.getLogger("captcha_crnn")

Sample = tuple[np.ndarray, list[int], int]


def forced_alignment(log_probs: np.ndarray, target: Sequence[int]) -> list[tuple[int, int]]:
    """Each target character's first and last frame on the most likely CTC path that reads `target`
    ((T, C) log-probabilities; the usual Viterbi over the label with blanks between its characters)."""
    states = [BLANK]
    for c in target:
        states += [c, BLANK]
    n_frames, n_states = log_probs.shape[0], len(states)
    score = np.full((n_frames, n_states), -np.inf)
    back = np.zeros((n_frames, n_states), dtype=np.int64)
    emit = log_probs[:, states]  # (T, S)
    score[0, 0] = emit[0, 0]
    if n_states > 1:
        score[0, 1] = emit[0, 1]
    # s may come from s, s-1, and s-2 when s is a character different from the one two states back
    skip = np.array([s >= 2 and states[s] != BLANK and states[s] != states[s - 2] for s in range(n_states)])
    for t in range(1, n_frames):
        prev = score[t - 1]
        stay = prev
        step = np.concatenate([[-np.inf], prev[:-1]])
        jump = np.where(skip, np.concatenate([[-np.inf, -np.inf], prev[:-2]]), -np.inf)
        options = np.stack([stay, step, jump])  # (3, S)
        best = options.argmax(0)
        score[t] = options[best, np.arange(n_states)] + emit[t]
        back[t] = best
    end = n_states - 1 if n_states == 1 or score[-1, -1] >= score[-1, -2] else n_states - 2
    path = np.empty(n_frames, dtype=np.int64)
    s = end
    for t in range(n_frames - 1, -1, -1):
        path[t] = s
        s -= back[t, s]
    spans = []
    for k in range(len(target)):
        frames = np.flatnonzero(path == 2 * k + 1)
        spans.append((int(frames[0]), int(frames[-1])) if frames.size else (-1, -1))
    return spans


def cuts_from_spans(spans: Sequence[tuple[int, int]], stride: int) -> list[int] | None:
    """Pixel columns between consecutive characters: halfway from one character's last frame to the
    next one's first. None where the alignment lost a character."""
    if any(first < 0 for first, _ in spans):
        return None
    return [
        round((a_last + 1 + b_first) * stride / 2) for (_, a_last), (b_first, _) in itertools.pairwise(spans)
    ]


@torch.no_grad()
def align(
    model: torch.nn.Module,
    pixels: Sequence[np.ndarray],
    targets: Sequence[list[int]],
    policy: InputPolicy,
    batch_size: int = 64,
) -> list[list[int] | None]:
    """Each image's cut columns, from `model`'s forced alignment with its label."""
    was_training = model.training
    model.eval()
    cuts: list[list[int] | None] = []
    try:
        for start in range(0, len(pixels), batch_size):
            chunk = pixels[start : start + batch_size]
            images, lengths = stack_batch(chunk, policy)
            batch = torch.from_numpy(images).contiguous(memory_format=torch.channels_last)
            log_probs = model(batch).float().log_softmax(-1).numpy()
            for row, n, target in zip(log_probs, lengths, targets[start : start + batch_size]):
                spans = forced_alignment(row[:n], target)
                cuts.append(cuts_from_spans(spans, policy.width_stride))
    finally:
        model.train(was_training)
    return cuts


class SpliceSet(Dataset):
    """A training set in memory whose items are, with probability `share`, spliced with another item of
    the same label length (see the module's docstring); otherwise the item itself. No item is spliced
    until `align` has found where its characters are."""

    lazy = False

    def __init__(
        self,
        base: Any,
        policy: InputPolicy,
        share: float,
        cuts: Sequence[list[int] | None] | None = None,
    ) -> None:
        self.base, self.policy, self.share = base, policy, share
        self.pixels, self.targets = base.pixels, base.targets
        self.set_cuts(cuts if cuts is not None else [None] * len(self.pixels))

    def set_cuts(self, cuts: Sequence[list[int] | None]) -> None:
        self.cuts = list(cuts)
        self.partners: dict[int, list[int]] = {}
        for i, c in enumerate(self.cuts):
            if c:
                self.partners.setdefault(len(self.targets[i]), []).append(i)

    def align(self, model: torch.nn.Module) -> int:
        """Find each image's characters with `model`; how many images can be spliced."""
        self.set_cuts(align(model, self.pixels, self.targets, self.policy))
        return sum(bool(c) for c in self.cuts)

    def widths(self) -> list[int] | None:
        return self.base.widths()

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i: int) -> Sample:
        pixels, target = self.pixels[i], self.targets[i]
        partners = self.partners.get(len(target), [])
        if not self.cuts[i] or len(partners) < 2 or random.random() >= self.share:
            return pixels, target, i
        j = random.choice(partners)
        while j == i:
            j = random.choice(partners)
        k = random.randrange(1, len(target))  # the first k characters from i, the rest from j
        a, b = self.cuts[i][k - 1], self.cuts[j][k - 1]  # type: ignore[index]
        joined = np.concatenate([pixels[:, :a], self.pixels[j][:, b:]], axis=1)
        label = target[:k] + self.targets[j][k:]
        needed = len(label) + sum(x == y for x, y in itertools.pairwise(label))  # CTCTokenizer.min_frames
        if joined.shape[1] < self.policy.min_width or self.policy.frames(joined.shape[1]) < needed:
            return pixels, target, i
        return np.ascontiguousarray(joined), label, i


class AlignAtStart(L.Callback):
    """Finds the characters of the training set (a SpliceSet) with the weights training starts from."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dataset = trainer.datamodule.train_set  # type: ignore[attr-defined]
        if isinstance(dataset, SpliceSet):
            aligned = dataset.align(pl_module.model)
            if trainer.is_global_zero:
                log.info(
                    "splicing %g of the training images drawn: %d of %d aligned",
                    dataset.share,
                    aligned,
                    len(dataset),
                )
