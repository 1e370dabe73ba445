"""`Recognizer`: the one predictor behind the CLI, the Python API and (later) the HTTP service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from captcha_crnn.data.images import ImageSource, InputPolicy, load_for_model, stack_batch
from captcha_crnn.data.tokenizer import CTCTokenizer


@dataclass(frozen=True)
class Prediction:
    text: str
    confidence: float  # probability of the best CTC path, in [0, 1]


class Recognizer:
    """Reads text from captcha images with a trained model.

    >>> rec = Recognizer.load("runs/demo/model.pt")
    >>> rec.predict("7041.png").text
    '7041'
    """

    def __init__(
        self, model, charset: str, policy: InputPolicy, meta: dict | None = None, batch_size: int = 64
    ):  # type: ignore[no-untyped-def]
        self.model = model
        self.tokenizer = CTCTokenizer(charset)
        self.policy = policy
        self.meta = meta or {}
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 64) -> Recognizer:
        """Load a `model.pt` (or a run's `.ckpt`) written by `captcha-crnn train`."""
        from captcha_crnn.model.io import load_model

        bundle = load_model(path)
        return cls(
            bundle.model, bundle.charset, bundle.policy, {**bundle.meta, "path": str(path)}, batch_size
        )

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
        import torch

        order = sorted(range(len(pixels)), key=lambda i: pixels[i].shape[1])
        out: list[np.ndarray] = [np.empty(0)] * len(pixels)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                images, lengths = stack_batch([pixels[i] for i in chunk], self.policy)
                scores = self.model(torch.from_numpy(images)).log_softmax(-1).numpy()
                for row, i in enumerate(chunk):
                    out[i] = scores[row, : lengths[row]]
        return out

    def predict_pixels(self, pixels: Sequence[np.ndarray]) -> list[Prediction]:
        return [Prediction(*self.tokenizer.greedy_decode(lp)) for lp in self.log_probs(pixels)]

    def predict(self, images: ImageSource | Sequence[ImageSource]) -> Prediction | list[Prediction]:
        """Text and confidence for one image (path, bytes, PIL image or numpy array) or a list of them.

        A single image gives a single Prediction; a list gives a list in the same order.
        """
        single = not isinstance(images, (list, tuple))
        batch = [images] if single else list(images)
        preds = self.predict_pixels([self.preprocess(img) for img in batch])
        return preds[0] if single else preds
