"""`Recognizer`: the one predictor behind the CLI, the Python API and the HTTP service."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from captcha_crnn.arithmetic import check_solver
from captcha_crnn.data.images import ImageSource, InputPolicy, load_for_model, stack_batch
from captcha_crnn.data.tokenizer import Constraint, CTCTokenizer, Lengths
from captcha_crnn.errors import ImageError, OptionError
from captcha_crnn.inference.backends import Backend, TorchBackend, load_any
from captcha_crnn.inference.reading import Length, Prediction, Reading, recorded_lengths

__all__ = ["Length", "Prediction", "Reading", "Recognizer", "recorded_lengths"]

CHUNK = 512  # images decoded and run per step when streaming: memory stays flat whatever the folder's size
# A variable-width input is padded to its width rounded up to this (2 frames), whatever else is in its batch:
# a site's captchas cut to their text fall into a few such widths, so they still go through in full batches.
# 32 px read 29 of tii-digits' 1800 images fewer than padding to the batch's widest (sorted by width).
PAD_TO = 8


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

        Padding changes a reading (the network standardises each image over its whole width, and the
        recurrent layer reads the padded frames), so an image is never padded for its neighbours' sake:
        each is padded to its own width rounded up to PAD_TO pixels (none where the model reads one fixed
        width), and batched with the images that round to the same. It reads the same alone as among others.
        """
        padded = [self._padded_width(p.shape[1]) for p in pixels]
        out: list[np.ndarray] = [np.empty(0)] * len(pixels)
        order = sorted(range(len(pixels)), key=padded.__getitem__)
        for width, same in itertools.groupby(order, key=padded.__getitem__):
            group = list(same)
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                images, lengths = stack_batch([pixels[i] for i in chunk], self.policy, width)
                scores = self.backend(images)
                for row, i in enumerate(chunk):
                    out[i] = scores[row, : lengths[row]]
        return out

    def _padded_width(self, width: int) -> int:
        return width if self.policy.fixed_width else -(-width // PAD_TO) * PAD_TO

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
            raise OptionError("length", f"must be N or N-M with 1 <= N <= M, or 'any'; got {length!r}")
        # One CTC frame per `width_stride` pixels of the widest input: no image holds a longer reading.
        most = self.policy.max_width // self.policy.width_stride
        if found[0] > most:
            raise OptionError(
                "length",
                f"asks for {found[0]}+ characters, but this model reads at most {most} (its widest input, "
                f"{self.policy.max_width} px, gives one reading position per {self.policy.width_stride} px)",
            )
        return found

    def reading(self, charset: str | None = None, length: Length = None, solve: str | None = None) -> Reading:
        """How to read, checked against this model before any image is: `charset` restricts the output
        to those characters (their scores decide, not a filter afterwards), `length` (4, (4, 6), "4-6",
        "any"; None: the training labels' lengths) bounds how many, `solve` ("arithmetic") reads the text
        as an expression. An OptionError names a charset or length the model cannot take."""
        if solve is not None:
            check_solver(solve)
        constraint = self.constraint(charset) if charset is not None else None
        return Reading(charset, self.lengths_for(length), solve, self.tokenizer, constraint)

    def decode(self, log_probs: np.ndarray, reading: Reading | None = None) -> Prediction:
        """One image's (frames, classes) log-probabilities -> Prediction, read as `reading` says (None:
        the model's defaults)."""
        return (reading or self.reading()).decode(log_probs)

    def predict_pixels(
        self, pixels: Sequence[np.ndarray], reading: Reading | None = None
    ) -> list[Prediction]:
        reading = reading or self.reading()
        return [reading.decode(lp) for lp in self.log_probs(pixels)]

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
        reading = self.reading(charset, length, solve)  # a bad option fails before any image is read
        single = not isinstance(images, (list, tuple))
        decoded = self.preprocess_many([images] if single else list(images))
        if error := next((d for d in decoded if isinstance(d, ImageError)), None):
            raise error
        preds = self.predict_pixels(decoded, reading)  # type: ignore[arg-type]
        return preds[0] if single else preds
