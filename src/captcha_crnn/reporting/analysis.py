"""Which characters a model gets wrong: Levenshtein alignment of each truth with its prediction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

MISSING = ""  # the empty side of an insertion or a deletion


@dataclass(frozen=True)
class CharAccuracy:
    char: str
    total: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def confusions(pairs: Iterable[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """(truth char, predicted char) counts over the minimal edits; "" marks a missing or extra char."""
    counts: Counter[tuple[str, str]] = Counter()
    for truth, pred in pairs:
        for op in Levenshtein.editops(truth, pred):
            if op.tag == "replace":
                counts[(truth[op.src_pos], pred[op.dest_pos])] += 1
            elif op.tag == "delete":
                counts[(truth[op.src_pos], MISSING)] += 1
            else:  # insert
                counts[(MISSING, pred[op.dest_pos])] += 1
    return counts


def per_char_accuracy(pairs: Iterable[tuple[str, str]]) -> list[CharAccuracy]:
    """For each character of the truths: how often it was read correctly, sorted worst first."""
    total: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    for truth, pred in pairs:
        total.update(truth)
        for op in Levenshtein.editops(truth, pred):
            if op.tag in ("replace", "delete"):
                wrong[truth[op.src_pos]] += 1
    stats = [CharAccuracy(ch, n, n - wrong[ch]) for ch, n in total.items()]
    return sorted(stats, key=lambda s: (s.accuracy, -s.total, s.char))


def show_char(ch: str) -> str:
    """A printable name for a confusion side."""
    if ch == MISSING:
        return "(none)"
    return repr(ch) if ch.isspace() else ch
