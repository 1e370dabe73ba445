"""What runs the network for a Recognizer: PyTorch for `model.pt`/`.ckpt`, onnxruntime for `.onnx`.

Both take (B, C, H, W) float32 images in [0, 1] (C: the input policy's channels) and return
(B, frames, classes) log-probabilities. The ONNX backend imports neither torch nor Lightning, so a
deployment can install only onnxruntime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from captcha_crnn.data.images import InputPolicy
from captcha_crnn.errors import ModelFileError
from captcha_crnn.files import check_model_path

ONNX_FORMAT = "captcha-crnn-onnx/1"


class Backend(Protocol):
    def __call__(self, images: np.ndarray) -> np.ndarray: ...


class TorchBackend:
    def __init__(self, model: Any) -> None:
        self.model = model.eval()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        # no_grad, not inference_mode: inference-mode tensors cached by the GRU break a later torch.export
        # (ONNX export) of a model in the same process.
        with torch.no_grad():
            return self.model(torch.from_numpy(images)).log_softmax(-1).numpy()


class OnnxBackend:
    def __init__(self, session: Any) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: images})[0]


@dataclass
class LoadedModel:
    backend: Backend
    charset: str
    policy: InputPolicy
    meta: dict[str, Any] = field(default_factory=dict)


def is_onnx(path: Path) -> bool:
    return path.suffix.lower() == ".onnx"


def load_onnx(path: Path) -> LoadedModel:
    import onnxruntime as ort

    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: not a loadable ONNX model ({first})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("format") != ONNX_FORMAT:
        raise ModelFileError(f"{path}: an ONNX model, but not one exported by captcha-crnn (no metadata)")
    try:
        policy = InputPolicy.from_dict(json.loads(meta["input_policy"]))
        charset = meta["charset"]
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: damaged captcha-crnn metadata ({exc})") from None
    return LoadedModel(
        OnnxBackend(session), charset, policy, {k: v for k, v in meta.items() if k != "charset"}
    )


def load_torch(path: Path) -> LoadedModel:
    try:
        from captcha_crnn.model.io import load_model
    except ImportError as exc:  # the slim install has no torch
        raise ModelFileError(
            f"{path}: a PyTorch model needs torch ({exc.name} is not installed); install captcha-crnn[train], "
            "or export it to ONNX where torch is installed: captcha-crnn export MODEL model.onnx"
        ) from None
    bundle = load_model(path)
    return LoadedModel(TorchBackend(bundle.model), bundle.charset, bundle.policy, bundle.meta)


def load_any(path: str | Path) -> LoadedModel:
    """A model file, or the name of a shipped model ("general")."""
    from captcha_crnn.weights import resolve

    path = resolve(path, ".onnx")
    check_model_path(path)
    return load_onnx(path) if is_onnx(path) else load_torch(path)
