"""The charset and CTC encoding: one class owns both, so training and inference cannot disagree."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import numpy as np

from captcha_crnn.errors import LabelError

BLANK = 0  # CTC blank is class 0; character i of the charset is class i + 1.


class CTCTokenizer:
    """Maps labels to class ids and decodes per-frame CTC outputs back to text."""

    def __init__(self, charset: str) -> None:
        if not charset:
            raise LabelError("the charset is empty: there are no characters to learn")
        if len(set(charset)) != len(charset):
            raise LabelError(f"the charset {charset!r} repeats a character")
        self.charset = charset
        self._index = {ch: i + 1 for i, ch in enumerate(charset)}

    @classmethod
    def from_labels(cls, labels: Iterable[str]) -> CTCTokenizer:
        """The sorted set of characters seen in the labels."""
        return cls("".join(sorted(set("".join(labels)))))

    @property
    def num_classes(self) -> int:
        """Charset size plus the blank."""
        return len(self.charset) + 1

    def unknown_chars(self, label: str) -> str:
        """Characters of `label` the charset lacks, in order of first appearance."""
        return "".join(dict.fromkeys(ch for ch in label if ch not in self._index))

    def encode(self, label: str) -> list[int]:
        missing = self.unknown_chars(label)
        if missing:
            raise LabelError(f"label {label!r} has characters outside the charset: {missing!r}")
        return [self._index[ch] for ch in label]

    def decode_ids(self, ids: Sequence[int]) -> str:
        """Class ids (no blanks, already collapsed) to text."""
        return "".join(self.charset[i - 1] for i in ids if i != BLANK)

    def greedy_decode(self, log_probs: np.ndarray, length: int | None = None) -> tuple[str, float]:
        """Best-path decoding of one (T, C) array of log-probabilities.

        Collapse repeats, then drop blanks, so "n n" separated by a blank stays "nn". The confidence is
        the best path's probability: the product of each frame's top probability, in [0, 1].
        """
        frames = log_probs[:length] if length is not None else log_probs
        best = frames.argmax(axis=1)
        confidence = float(np.exp(frames.max(axis=1).sum()))
        keep = np.ones(len(best), dtype=bool)
        keep[1:] = best[1:] != best[:-1]
        ids = best[keep]
        return self.decode_ids(ids[ids != BLANK].tolist()), min(max(confidence, 0.0), 1.0)

    @staticmethod
    def min_frames(label: str) -> int:
        """Frames CTC needs for `label`: one per character plus a blank between each repeated pair."""
        return len(label) + sum(1 for a, b in itertools.pairwise(label) if a == b)

    def decode_batch(self, log_probs: np.ndarray, lengths: Sequence[int]) -> list[tuple[str, float]]:
        """Greedy decoding of a (B, T, C) batch, each row cut to its own length."""
        return [self.greedy_decode(lp, int(n)) for lp, n in zip(log_probs, lengths)]
