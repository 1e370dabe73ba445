"""The charset and CTC encoding: one class owns both, so training and inference cannot disagree."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from captcha_crnn.errors import LabelError, OptionError

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

    def greedy_decode(
        self, log_probs: np.ndarray, length: int | None = None, text_lengths: Lengths | None = None
    ) -> tuple[str, float]:
        """Best-path decoding of one (T, C) array of log-probabilities.

        Collapse repeats, then drop blanks, so "n n" separated by a blank stays "nn". The confidence is
        the best path's probability: the product of each frame's top probability, in [0, 1].
        `text_lengths` (lo, hi): when the best path reads fewer or more characters, the best path that
        reads lo..hi of them instead (see best_path_within).
        """
        frames = log_probs[:length] if length is not None else log_probs
        best = frames.argmax(axis=1)
        logp = float(frames.max(axis=1).sum())
        ids = collapse(best)
        if text_lengths is not None and not text_lengths[0] <= len(ids) <= text_lengths[1]:
            found = best_path_within(frames, *text_lengths)
            if found is not None:
                ids, logp = collapse(found[0]), found[1]
        return self.decode_ids(ids), min(max(float(np.exp(logp)), 0.0), 1.0)

    @staticmethod
    def min_frames(label: str) -> int:
        """Frames CTC needs for `label`: one per character plus a blank between each repeated pair."""
        return len(label) + sum(1 for a, b in itertools.pairwise(label) if a == b)

    def decode_batch(self, log_probs: np.ndarray, lengths: Sequence[int]) -> list[tuple[str, float]]:
        """Greedy decoding of a (B, T, C) batch, each row cut to its own length."""
        return [self.greedy_decode(lp, int(n)) for lp, n in zip(log_probs, lengths)]

    def constrain(self, allowed: str) -> Constraint:
        """Decoding restricted to the characters of `allowed` (`--charset`), by their scores.

        Each allowed character keeps its own class's probability, plus its other case's when the model
        knows both cases and `allowed` has only this one (a model reading "A" on a lower-case-only site
        means "a"). Classes left over lose their probability mass before decoding, so a "0" the model
        scores as "O" first becomes the best digit, not a missing character.
        """
        if not allowed or any(ch.isspace() for ch in allowed):
            raise OptionError("charset", f"must be non-empty characters without spaces, got {allowed!r}")
        allowed = "".join(dict.fromkeys(allowed))
        groups = [(BLANK,)]
        for ch in allowed:
            other = ch.swapcase()
            group = tuple(
                self._index[c]
                for c in dict.fromkeys((ch, other))
                if c in self._index and (c == ch or c not in allowed)
            )
            if not group:
                raise OptionError(
                    "charset", f"has {ch!r}, which the model cannot read (its charset is {self.charset!r})"
                )
            groups.append(group)
        return Constraint(CTCTokenizer(allowed), tuple(groups))


@dataclass(frozen=True)
class Constraint:
    """A restricted charset's tokenizer, and which of the model's classes count for each of its classes."""

    tokenizer: CTCTokenizer
    groups: tuple[tuple[int, ...], ...]  # for output class i (0: blank), the model classes summed into it

    def project(self, log_probs: np.ndarray) -> np.ndarray:
        """(T, model classes) log-probabilities -> (T, allowed classes + 1), renormalised over what is kept."""
        kept = np.stack([np.logaddexp.reduce(log_probs[:, list(g)], axis=1) for g in self.groups], axis=1)
        return kept - np.logaddexp.reduce(kept, axis=1, keepdims=True)

    def decode(self, log_probs: np.ndarray, text_lengths: Lengths | None = None) -> tuple[str, float]:
        return self.tokenizer.greedy_decode(self.project(log_probs), text_lengths=text_lengths)


Lengths = tuple[int, int]  # the fewest and most characters a reading may have


def int_range(text: str) -> Lengths:
    """'4' -> (4, 4), '4-6' -> (4, 6); ValueError for anything else ('4-', '-6', 'x'). The one reading of
    a range, for --length wherever it is given and for the lengths a model file records."""
    low, dash, high = text.strip().partition("-")
    return int(low), int(high if dash else low)  # int("") refuses a missing end


def collapse(path: np.ndarray) -> list[int]:
    """A CTC path (one class per frame) -> class ids: repeats merged, then blanks dropped."""
    keep = np.ones(len(path), dtype=bool)
    keep[1:] = path[1:] != path[:-1]
    ids = path[keep]
    return ids[ids != BLANK].tolist()


def best_path_within(log_probs: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, float] | None:
    """The most probable CTC path whose text has lo..hi characters, and its log-probability; None when
    no path has (too few frames).

    Viterbi over (characters read so far, the frame's class): a blank keeps the count, the class of the
    previous frame continues its character, any other class starts the next one. Captchas mostly have a
    fixed length, and a CTC reading of the wrong length (a dropped or doubled glyph) is always wrong:
    the best path of the right length is the reading a person would choose among the model's options.
    """
    frames, classes = log_probs.shape
    if lo > frames:
        return None
    hi = min(hi, frames)  # no path reads more characters than it has frames (a huge --length costs nothing)
    rows = np.arange(hi + 1)
    score = np.full((hi + 1, classes), -np.inf)
    score[0, BLANK] = log_probs[0, BLANK]
    if hi >= 1:
        score[1, 1:] = log_probs[0, 1:]
    from_count = np.zeros((frames, hi + 1, classes), dtype=np.int16)  # the previous frame's state
    from_class = np.zeros((frames, hi + 1, classes), dtype=np.int16)
    for t in range(1, frames):
        order = np.argsort(score, axis=1)
        first, second = order[:, -1], order[:, -2]  # each count's best and second-best last class
        best, runner_up = score[rows, first], score[rows, second]
        new = np.full_like(score, -np.inf)
        # a blank: the count stays, from the best state with that count
        new[:, BLANK] = best + log_probs[t, BLANK]
        from_count[t, :, BLANK], from_class[t, :, BLANK] = rows, first
        # class c continues the character of a frame of class c ...
        stay = score[:, 1:]
        # ... or starts the next one after any other class (blank included): count - 1, best other
        other = np.where(first[:-1, None] == np.arange(1, classes), second[:-1, None], first[:-1, None])
        start = np.full_like(stay, -np.inf)
        start[1:] = np.where(first[:-1, None] == np.arange(1, classes), runner_up[:-1, None], best[:-1, None])
        take_start = start > stay
        new[:, 1:] = np.where(take_start, start, stay) + log_probs[t, 1:]
        from_count[t, :, 1:] = np.where(take_start, rows[:, None] - 1, rows[:, None])
        from_class[t, 1:, 1:] = np.where(take_start[1:], other, np.arange(1, classes))
        from_class[t, 0, 1:] = np.arange(1, classes)
        score = new
    ends = score[lo : hi + 1]
    if not np.isfinite(ends).any():
        return None
    count, cls = np.unravel_index(np.argmax(ends), ends.shape)
    count += lo
    path = np.empty(frames, dtype=np.int64)
    for t in range(frames - 1, -1, -1):
        path[t] = cls
        count, cls = from_count[t, count, cls], from_class[t, count, cls]
    return path, float(ends.max())
