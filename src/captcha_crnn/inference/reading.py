"""How a model reads: a `Reading` (which characters, how many, solved how), and what it gives, a
`Prediction`. `Recognizer.reading()` builds a Reading once, checked against its model; every front end
(the CLI, the Python API, the service, evaluate, the labelling page) decodes through `Reading.decode`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from captcha_crnn.arithmetic import answer
from captcha_crnn.data.tokenizer import Constraint, CTCTokenizer, Lengths, int_range

Length = int | str | tuple[int, int] | None  # a reading's length: 4, "4-6", (4, 6), "any", None (the model's)


def recorded_lengths(value: Any) -> Lengths | None:
    """Label lengths as (fewest, most): from [4, 6] (model.pt), "4-6" or "4" (ONNX metadata, --length), or
    an int; None if absent or not of those shapes."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value, value
        if isinstance(value, str):
            return int_range(value)
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return int(value[0]), int(value[1])
    except (ValueError, TypeError):
        pass
    return None


@dataclass(frozen=True)
class Prediction:
    text: str
    confidence: float  # probability of the best CTC path, in [0, 1]
    # Solved (solve="arithmetic"): the text's value, or None and answer_error saying why it has none.
    answer: int | None = None
    answer_error: str | None = None

    def solved(self, solver: str | None) -> Prediction:
        """With the text's answer by `solver` (arithmetic.SOLVERS); unchanged for None. The CLI, the
        Python API and the service all solve through here."""
        if solver is None:
            return self
        found = answer(self.text, solver)
        return replace(self, answer=found.value, answer_error=found.error)

    def to_dict(self) -> dict[str, Any]:
        """text and confidence, and the answer fields once solved: what predict --json and the API give."""
        out: dict[str, Any] = {"text": self.text, "confidence": round(self.confidence, 6)}
        if self.answer is not None or self.answer_error is not None:
            out["answer"] = self.answer
            if self.answer_error is not None:
                out["answer_error"] = self.answer_error
        return out


@dataclass(frozen=True)
class Reading:
    """Read only `charset`'s characters (None: all the model knows), `lengths` of them (None: any), and
    solve by `solve` (None: leave the text as read). Equal readings hash alike: the service's batcher
    gives requests that read alike one forward pass."""

    charset: str | None = None
    lengths: Lengths | None = None
    solve: str | None = None
    tokenizer: CTCTokenizer | None = field(default=None, compare=False, repr=False)  # the model's
    constraint: Constraint | None = field(default=None, compare=False, repr=False)  # for `charset`

    @property
    def alphabet(self) -> CTCTokenizer:
        """The classes a reading is made of: the restricted charset's, else the model's."""
        found = self.constraint.tokenizer if self.constraint is not None else self.tokenizer
        assert found is not None, "a Reading is made by Recognizer.reading()"
        return found

    def project(self, log_probs: np.ndarray) -> np.ndarray:
        """The model's (frames, classes) log-probabilities over `alphabet`'s classes (renormalised)."""
        return log_probs if self.constraint is None else self.constraint.project(log_probs)

    def decode(self, log_probs: np.ndarray) -> Prediction:
        """One image's log-probabilities -> text, confidence (and answer). A best path whose text is
        shorter or longer than `lengths` allows gives way to the best path of an allowed length: a
        dropped or doubled glyph is the commonest CTC error on captchas."""
        return self.read(self.project(log_probs))

    def read(self, projected: np.ndarray) -> Prediction:
        """`decode` of scores already `project`ed (evaluate projects once, for the reading and the loss)."""
        text, confidence = self.alphabet.greedy_decode(projected, text_lengths=self.lengths)
        return Prediction(text, confidence).solved(self.solve)
