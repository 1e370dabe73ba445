"""Scoring a model on labelled images: sequence accuracy, CER, character accuracy, CTC loss, errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import numpy as np
from rapidfuzz.distance import Levenshtein

from captcha_crnn.arithmetic import answer
from captcha_crnn.data.labels import LabelledImage
from captcha_crnn.errors import CaptchaCrnnError, ImageError, LabelError, warn_skipped
from captcha_crnn.inference.recognizer import Length, Recognizer

log = logging.getLogger("captcha_crnn")
T = TypeVar("T")


def character_error_rate(truths: Sequence[str], predictions: Sequence[str]) -> float:
    """Levenshtein edits over total label characters (0 when there are no label characters)."""
    chars = sum(len(t) for t in truths)
    edits = sum(Levenshtein.distance(t, p) for t, p in zip(truths, predictions))
    return edits / chars if chars else 0.0


@dataclass
class Evaluation:
    count: int
    sequence_accuracy: float
    cer: float
    char_accuracy: float
    loss: float
    errors: list[dict[str, object]] = field(default_factory=list)
    # Every image's result (file, label, prediction, confidence), for reports; not part of --json.
    records: list[dict[str, object]] = field(default_factory=list, repr=False)
    # Solved (--solve): the share of images whose reading has the label's value. A misreading can still
    # be right ("12x4" for "12×4"), so it is at least the sequence accuracy.
    answer_accuracy: float | None = None

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        del data["records"]
        if self.answer_accuracy is None:
            del data["answer_accuracy"]
        return data


def ctc_nll(log_probs: np.ndarray, target: Sequence[int], blank: int = 0) -> float:
    """Negative log-likelihood of `target` under (T, C) log-probabilities: the CTC forward algorithm in
    numpy, so scoring an ONNX model never needs torch. Matches torch.nn.functional.ctc_loss."""
    ext = np.full(2 * len(target) + 1, blank, dtype=np.int64)
    ext[1::2] = target
    can_skip = np.zeros(len(ext), dtype=bool)
    can_skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    alpha = np.full(len(ext), -np.inf)
    alpha[0] = log_probs[0, blank]
    if len(ext) > 1:
        alpha[1] = log_probs[0, ext[1]]
    one_back, two_back = np.full(len(ext), -np.inf), np.full(len(ext), -np.inf)
    for t in range(1, len(log_probs)):
        one_back[1:] = alpha[:-1]
        two_back[2:] = np.where(can_skip[2:], alpha[:-2], -np.inf)
        alpha = np.logaddexp(np.logaddexp(alpha, one_back), two_back) + log_probs[t, ext]
    tail = np.logaddexp(alpha[-1], alpha[-2]) if len(ext) > 1 else alpha[-1]
    return float(-tail)


def ctc_loss(log_probs: Sequence[np.ndarray], targets: Sequence[Sequence[int]]) -> float:
    """Mean over images of the CTC loss divided by label length (infinite losses count as 0): the
    reduction training's val_loss uses (`nn.CTCLoss(reduction="mean", zero_infinity=True)`)."""
    losses = []
    for lp, target in zip(log_probs, targets):
        nll = ctc_nll(lp.astype(np.float64), target)
        losses.append(nll / max(len(target), 1) if np.isfinite(nll) else 0.0)
    return float(np.mean(losses)) if losses else 0.0


def evaluate(
    recognizer: Recognizer,
    items: Sequence[LabelledImage],
    pixels: Sequence[np.ndarray] | None = None,
    progress: bool = False,
    charset: str | None = None,
    ignore_case: bool = False,
    solve: str | None = None,
    length: Length = None,
) -> Evaluation:
    """Score `recognizer` on labelled images; unreadable files are skipped with a warning.

    Images are decoded and scored a chunk at a time, so memory does not grow with the number of images
    (beyond one short record each). `pixels`, when given, are the items' images already preprocessed
    (generated validation images that exist only in memory); the items' paths then only name them.
    `progress` draws a progress bar on stderr when it is a terminal. `charset` restricts what the model
    may read (`--charset`); the loss is then the restricted distribution's. `ignore_case` scores without
    regard to case: labels are folded to lower case and the model's upper-case scores count for lower
    case (a model trained with --ignore-case is always scored so). `solve` ("arithmetic") also scores
    the answers: each record gets the reading's `answer` and the label's `true_answer`, and every label
    must solve (a LabelError names the first that does not). `length` is how many characters a reading
    may have (Recognizer.lengths_for: by default the model's training labels' lengths).
    """
    if ignore_case or recognizer.ignore_case:
        charset = "".join(dict.fromkeys((charset or recognizer.charset).lower()))
        items = [LabelledImage(item.path, item.label.lower()) for item in items]
    reading = recognizer.reading(charset, length, solve)
    tok = reading.alphabet
    for item in items:
        missing = tok.unknown_chars(item.label)
        if missing:
            whose, which = (
                ("the model does not know", "model charset")
                if charset is None
                else ("--charset leaves out", "--charset")
            )
            raise LabelError(
                f"{item.path}: label {item.label!r} has characters {whose}: {missing!r} ({which} {tok.charset!r})"
            )
    truths = _true_answers(items, solve) if solve is not None else {}
    scored = (
        zip(items, recognizer.log_probs(pixels))
        if pixels is not None
        else (zip(items, (lp for _, lp in recognizer.stream(it.path for it in items))))
    )
    records, bad, losses = [], [], []
    for item, log_probs in progress_bar(scored, len(items), "evaluating", progress):
        if isinstance(log_probs, ImageError):
            bad.append(str(log_probs))
            continue
        projected = reading.project(log_probs)
        pred = reading.read(projected)
        text, confidence = pred.text, pred.confidence
        losses.append(ctc_loss([projected], [tok.encode(item.label)]))
        record: dict[str, object] = {
            "file": str(item.path),
            "label": item.label,
            "prediction": text,
            "confidence": round(confidence, 6),
        }
        if solve is not None:
            record["answer"] = pred.answer
            record["true_answer"] = truths[item.label]
        records.append(record)
    warn_skipped(bad)
    if not records:
        first = f"; the first unreadable one: {bad[0]}" if bad else ""
        raise CaptchaCrnnError(f"no readable labelled images to evaluate{first}")
    errors = [r for r in records if r["prediction"] != r["label"]]
    cer = character_error_rate([r["label"] for r in records], [r["prediction"] for r in records])
    answered = sum(r["answer"] == r["true_answer"] for r in records) if solve is not None else None
    return Evaluation(
        count=len(records),
        sequence_accuracy=1.0 - len(errors) / len(records),
        cer=cer,
        char_accuracy=max(0.0, 1.0 - cer),  # a CER over 1 (readings longer than labels) reads as none right
        loss=float(np.mean(losses)),
        errors=errors,
        records=records,
        answer_accuracy=None if answered is None else answered / len(records),
    )


def _true_answers(items: Sequence[LabelledImage], solve: str) -> dict[str, int]:
    """Each distinct label's value; a LabelError for the first label that has none."""
    truths: dict[str, int] = {}
    for item in items:
        if item.label not in truths:
            found = answer(item.label, solve)
            if found.value is None:
                raise LabelError(f"{item.path}: label {item.label!r} has no answer: {found.error}")
            truths[item.label] = found.value
    return truths


def progress_bar(iterable: Iterable[T], total: int, what: str, enabled: bool) -> Iterable[T]:
    """tqdm on stderr when asked for and stderr is a terminal (tqdm comes with the train extra's
    Lightning; the slim install simply shows none)."""
    if not enabled or not sys.stderr.isatty():
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=what, unit="img", file=sys.stderr, leave=False)
