"""captcha-crnn: CRNN + CTC text recognizers for captcha-style images.

The public API is deliberately small::

    from captcha_crnn import Recognizer
    rec = Recognizer.load("runs/x/model.pt")
    rec.predict("7041.png")  # -> Prediction(text='7041', confidence=0.99)

Importing the package is cheap: heavy modules (torch, lightning) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from captcha_crnn.inference.recognizer import Prediction, Recognizer

__all__ = ["Prediction", "Recognizer", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy so that `import captcha_crnn` (and `--help`) does not pay for importing torch.
    if name in ("Recognizer", "Prediction"):
        from captcha_crnn.inference import recognizer

        return getattr(recognizer, name)
    raise AttributeError(name)
