"""Scoring a model on labelled images: sequence accuracy, CER, character accuracy, CTC loss, errors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from rapidfuzz.distance import Levenshtein

from captcha_crnn.data.labels import LabelledImage
from captcha_crnn.errors import CaptchaCrnnError, ImageError, LabelError
from captcha_crnn.inference.recognizer import Recognizer

log = logging.getLogger("captcha_crnn")


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

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        del data["records"]
        return data


def ctc_loss(log_probs: Sequence[np.ndarray], targets: Sequence[list[int]]) -> float:
    """Mean over images of the CTC loss divided by label length: the reduction training's val_loss uses."""
    import torch
    import torch.nn.functional as F

    losses = [
        F.ctc_loss(
            torch.from_numpy(lp[:, None, :]),
            torch.tensor([t]),
            [lp.shape[0]],
            [len(t)],
            blank=0,
            reduction="mean",
            zero_infinity=True,
        ).item()
        for lp, t in zip(log_probs, targets)
    ]
    return float(np.mean(losses)) if losses else 0.0


def evaluate(recognizer: Recognizer, items: Sequence[LabelledImage]) -> Evaluation:
    """Score `recognizer` on labelled images; unreadable files are skipped with a warning."""
    tok = recognizer.tokenizer
    for item in items:
        missing = tok.unknown_chars(item.label)
        if missing:
            raise LabelError(
                f"{item.path}: label {item.label!r} has characters the model does not know: {missing!r} "
                f"(model charset {tok.charset!r})"
            )
    kept, pixels, bad = [], [], []
    for item in items:
        try:
            pixels.append(recognizer.preprocess(item.path))
            kept.append(item)
        except ImageError as exc:
            bad.append(str(exc))
    if bad:
        log.warning("skipped %d unreadable file(s), e.g. %s", len(bad), bad[0])
    if not kept:
        raise CaptchaCrnnError("no readable labelled images to evaluate")
    log_probs = recognizer.log_probs(pixels)
    decoded = [tok.greedy_decode(lp) for lp in log_probs]
    truths = [it.label for it in kept]
    preds = [text for text, _ in decoded]
    cer = character_error_rate(truths, preds)
    records = [
        {"file": str(it.path), "label": it.label, "prediction": text, "confidence": round(conf, 6)}
        for it, (text, conf) in zip(kept, decoded)
    ]
    errors = [r for r in records if r["prediction"] != r["label"]]
    return Evaluation(
        count=len(kept),
        sequence_accuracy=1.0 - len(errors) / len(kept),
        cer=cer,
        char_accuracy=1.0 - cer,
        loss=ctc_loss(log_probs, [tok.encode(t) for t in truths]),
        errors=errors,
        records=records,
    )
