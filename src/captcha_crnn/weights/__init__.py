"""Models that ship inside the package, by name: `Recognizer.load("general")`, `predict general a.png`.

`general.pt` (PyTorch, what fine-tuning starts from) and `general.onnx` (for the slim install and fast
reading) are written by `scripts/pretrain.py package`, with their SHA-256 in `general.json`; a file that
does not match its checksum is refused rather than silently used.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from captcha_crnn.errors import ModelFileError

HERE = Path(__file__).resolve().parent
NAMES = ("general",)


def is_builtin(model: str | Path) -> bool:
    """A shipped model's name, unless a file of that name exists (a model file always wins; a folder
    named "general" in the working directory does not hide the shipped model)."""
    return str(model) in NAMES and not Path(model).is_file()


def resolve(model: str | Path, kind: str = ".onnx") -> Path:
    """The file behind a model argument: a shipped model's `.onnx` or `.pt` (`kind`), else the path."""
    if not is_builtin(model):
        return Path(model)
    onnx = kind == ".onnx" and _has_onnxruntime()
    path = HERE / f"{model}{'.onnx' if onnx else '.pt'}"
    _verify(path)
    return path


def manifest(name: str = "general") -> dict:
    """The shipped model's record: file checksums, the data recipe and seed, how long it trained."""
    try:
        return json.loads((HERE / f"{name}.json").read_text())
    except (OSError, ValueError):
        raise ModelFileError(
            f"the shipped {name} model is missing from this installation ({HERE / (name + '.json')}); "
            "reinstall captcha-crnn"
        ) from None


@functools.cache
def _verify(path: Path) -> None:
    expected = manifest(path.stem).get("files", {}).get(path.name)
    try:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        raise ModelFileError(f"{path}: the shipped model file is missing; reinstall captcha-crnn") from None
    if actual != expected:
        raise ModelFileError(
            f"{path}: does not match its checksum in {path.stem}.json; reinstall captcha-crnn"
        )


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None
