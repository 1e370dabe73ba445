"""Models that ship inside the package, by name: `Recognizer.load("general")`, `predict general a.png`.

Two models answer to `general`. The **reader** (`general.pt`, and `general.onnx` for the slim install
and fast reading) is what `predict general`, the labelling page and the service read with: the larger
network, because reading with no training is where capacity pays; `train --init general` starts from
it too, with its size (plan._capacity: its start reads more of a new site). The **base**
(`general-base.pt`, the `nano` network) starts `train --preset nano`, about twice as fast an epoch
(`base_for` picks whichever fits).
Each is written by `scripts/pretrain.py`, with its files'
SHA-256 in `NAME.json`; a file that does not match its checksum is refused rather than silently used.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from captcha_crnn.errors import ModelFileError

HERE = Path(__file__).resolve().parent
NAMES = ("general", "general-base")
BASES = {"general": "general-base"}  # the model `train --init NAME` starts from, where it fits


def is_builtin(model: str | Path) -> bool:
    """A shipped model's name, unless a file of that name exists (a model file always wins; a folder
    named "general" in the working directory does not hide the shipped model)."""
    return str(model) in NAMES and not Path(model).is_file()


def base_for(model: str | Path) -> list[str]:
    """The shipped models that may start training for `--init model`, in order of preference: the base,
    then the reader itself (which a `--preset` of the reader's size fits)."""
    return [BASES[str(model)], str(model)] if str(model) in BASES else [str(model)]


def resolve(model: str | Path, kind: str = ".onnx") -> Path:
    """The file behind a model argument: a shipped model's `.onnx` or `.pt` (`kind`; the `.pt` when the
    model ships no `.onnx`), else the path."""
    if not is_builtin(model):
        return Path(model)
    onnx = kind == ".onnx" and _has_onnxruntime() and f"{model}.onnx" in manifest(str(model)).get("files", {})
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
