"""`Recognizer`: the one predictor behind the CLI, the Python API and the HTTP service."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from captcha_crnn.arithmetic import answer, check_solver
from captcha_crnn.data.images import ImageSource, InputPolicy, load_for_model, stack_batch
from captcha_crnn.data.tokenizer import Constraint, CTCTokenizer, Lengths
from captcha_crnn.errors import CaptchaCrnnError, ImageError
from captcha_crnn.inference.backends import Backend, TorchBackend, load_any

CHUNK = 512  # images decoded and run per step when streaming: memory stays flat whatever the folder's size


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
            low, _, high = value.strip().partition("-")
            return int(low), int(high or low)
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


class Recognizer:
    """Reads text from captcha images with a trained model.

    >>> rec = Recognizer.load("runs/demo/model.pt")   # or an exported model.onnx, or "general"
    >>> rec.predict("7041.png").text
    '7041'
    >>> rec.predict("7041.png", charset="0123456789").text   # read digits only
    '7041'
    >>> rec.predict("sum.png", solve="arithmetic").answer     # an arithmetic model reading "12×4="
    48
    """

    CONSTRAINTS_KEPT = 64  # restricted charsets remembered (the service takes one per request)

    def __init__(
        self,
        model: Any,
        charset: str,
        policy: InputPolicy,
        meta: dict[str, Any] | None = None,
        batch_size: int = 64,
    ) -> None:
        """`model` is a torch module, or a backend: any callable from (B, C, H, W) images to
        (B, frames, classes) log-probabilities (see backends.py)."""
        is_module = hasattr(model, "parameters")  # a torch module; anything else is already a backend
        self.backend: Backend = TorchBackend(model) if is_module else model
        self.tokenizer = CTCTokenizer(charset)
        self.policy = policy
        self.meta = meta or {}
        self.batch_size = batch_size
        self._constraints: dict[str, Constraint] = {}
        # Trained with --ignore-case: it reads lower case, and its labels are folded before scoring.
        self.ignore_case = str(self.meta.get("ignore_case", "")).lower() in ("true", "yes")
        # The fewest and most characters of the training labels: readings keep to them (see decode).
        self.text_lengths = recorded_lengths(self.meta.get("label_lengths"))

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 64) -> Recognizer:
        """Load a `model.pt` or a run's `.ckpt` (PyTorch), a `.onnx` from `export` (onnxruntime only), or
        the shipped general model by its name, "general"."""
        loaded = load_any(path)
        meta = {**loaded.meta, "path": str(path)}
        return cls(loaded.backend, loaded.charset, loaded.policy, meta, batch_size)

    @property
    def charset(self) -> str:
        return self.tokenizer.charset

    def preprocess(
        self,
        image: ImageSource,
        name: str | None = None,
        max_pixels: int | None = None,
        formats: tuple[str, ...] | None = None,
    ) -> np.ndarray:
        """One image as the network's input; see `open_image` for the pixel and format limits."""
        return load_for_model(image, self.policy, name, max_pixels, formats)

    def log_probs(self, pixels: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per-image (frames, classes) log-probabilities for preprocessed images, in input order.

        Images are batched by width so that variable-width inputs carry as little padding as possible.
        """
        order = sorted(range(len(pixels)), key=lambda i: pixels[i].shape[1])
        out: list[np.ndarray] = [np.empty(0)] * len(pixels)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            images, lengths = stack_batch([pixels[i] for i in chunk], self.policy)
            scores = self.backend(images)
            for row, i in enumerate(chunk):
                out[i] = scores[row, : lengths[row]]
        return out

    def preprocess_many(self, sources: Sequence[ImageSource]) -> list[np.ndarray | ImageError]:
        """Decode several images; an unreadable one gives its ImageError in its place. (In one thread:
        decoding holds the GIL for most of its time, so a thread pool only burns more CPU, measured.)"""

        def one(source: ImageSource) -> np.ndarray | ImageError:
            try:
                return self.preprocess(source)
            except ImageError as exc:
                return exc

        return [one(s) for s in sources]

    def stream(
        self, sources: Iterable[ImageSource], chunk: int = CHUNK
    ) -> Iterator[tuple[ImageSource, np.ndarray | ImageError]]:
        """(source, log-probabilities or the ImageError that stopped it) for each image, in order, a chunk
        at a time: decoding and the network alternate, and nothing is kept after it is yielded. (Running
        the network in a second thread while this one decodes the next chunk gained nothing on 2 cores:
        the network's own threads already use both, measured.)"""
        remaining = iter(sources)
        while batch := list(itertools.islice(remaining, chunk)):
            decoded = self.preprocess_many(batch)
            good = [d for d in decoded if not isinstance(d, ImageError)]
            scores = iter(self.log_probs(good))  # type: ignore[arg-type]
            for src, d in zip(batch, decoded):
                yield src, d if isinstance(d, ImageError) else next(scores)

    def constraint(self, charset: str) -> Constraint:
        """Decoding restricted to `charset` (see CTCTokenizer.constrain); a LabelError names a character
        the model cannot read."""
        found = self._constraints.get(charset)
        if found is None:
            if len(self._constraints) >= self.CONSTRAINTS_KEPT:
                self._constraints.clear()
            found = self._constraints[charset] = self.tokenizer.constrain(charset)
        return found

    def lengths_for(self, length: Length = None) -> Lengths | None:
        """The reading lengths to keep to: the model's recorded ones for None, none for "any", else the
        given count (4), range ((4, 6)) or text ("4", "4-6")."""
        if length is None:
            return self.text_lengths
        if length == "any":
            return None
        found = recorded_lengths(length)
        if found is None or not 0 < found[0] <= found[1]:
            raise CaptchaCrnnError(f"--length must be N or N-M with 1 <= N <= M, or 'any'; got {length!r}")
        return found

    def decode(
        self,
        log_probs: np.ndarray,
        charset: str | None = None,
        solve: str | None = None,
        length: Length = None,
    ) -> Prediction:
        """One image's (frames, classes) log-probabilities -> text, read only as `charset` when given,
        and solved by `solve` (e.g. "arithmetic") when given. A best path whose text is shorter or longer
        than `length` allows (by default the training labels' lengths) gives way to the best path of an
        allowed length: a dropped or doubled glyph is the commonest CTC error on captchas."""
        lengths = self.lengths_for(length)
        if charset is None:
            pred = Prediction(*self.tokenizer.greedy_decode(log_probs, text_lengths=lengths))
        else:
            pred = Prediction(*self.constraint(charset).decode(log_probs, lengths))
        return pred.solved(solve)

    def predict_pixels(
        self,
        pixels: Sequence[np.ndarray],
        charset: str | None = None,
        solve: str | None = None,
        length: Length = None,
    ) -> list[Prediction]:
        return [self.decode(lp, charset, solve, length) for lp in self.log_probs(pixels)]

    def predict(
        self,
        images: ImageSource | Sequence[ImageSource],
        charset: str | None = None,
        solve: str | None = None,
        length: Length = None,
    ) -> Prediction | list[Prediction]:
        """Text and confidence for one image (path, bytes, PIL image or numpy array) or a list of them.

        A single image gives a single Prediction; a list gives a list in the same order. `charset`
        restricts the output to those characters (their scores decide, not a filter afterwards).
        `length` (4, (4, 6), "4-6") is how many characters a reading has; by default as many as the
        training labels had (recorded in the model; none for the general model), "any" for no limit.
        `solve="arithmetic"` also reads the text as an expression: `answer` is its value, or None with
        `answer_error` saying why.
        """
        if charset is not None:
            self.constraint(charset)  # a bad charset fails before any image is read
        self.lengths_for(length)  # and so does a bad length
        if solve is not None:
            check_solver(solve)
        single = not isinstance(images, (list, tuple))
        decoded = self.preprocess_many([images] if single else list(images))
        if error := next((d for d in decoded if isinstance(d, ImageError)), None):
            raise error
        preds = self.predict_pixels(decoded, charset, solve, length)  # type: ignore[arg-type]
        return preds[0] if single else preds
