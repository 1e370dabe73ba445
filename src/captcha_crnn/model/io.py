"""The model file: weights plus everything needed to use them (charset, input policy, architecture).

`model.pt` is a plain dict of tensors, strings and numbers, written with `torch.save` and read with
`torch.load(weights_only=True)`, so loading a model file never runs pickled code. Lightning checkpoints
(`*.ckpt`) from a run folder load the same way.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from captcha_crnn.data.images import InputPolicy
from captcha_crnn.errors import ModelFileError, one_line
from captcha_crnn.files import atomic_write, check_model_path
from captcha_crnn.model.crnn import CRNN, CRNNConfig

FORMAT = "captcha-crnn/1"


@dataclass
class ModelBundle:
    model: CRNN
    charset: str
    policy: InputPolicy
    meta: dict[str, Any]


def save_model(path: Path, model: CRNN, charset: str, policy: InputPolicy, meta: dict[str, Any]) -> None:
    payload = {
        "format": FORMAT,
        "model_config": model.config.to_dict(),
        "charset": charset,
        "input_policy": policy.to_dict(),
        "meta": meta,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_torch_save(payload, path)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """`torch.save`, atomically (files.atomic_write): a crash mid-write leaves the previous file whole."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(obj, fh))


def load_model(path: str | Path) -> ModelBundle:
    """Read a `model.pt` or a Lightning `.ckpt` written by `train`, or a shipped model by name ("general");
    anything else is a ModelFileError."""
    from captcha_crnn.weights import resolve

    path = resolve(path, ".pt")
    check_model_path(path)
    try:
        with warnings.catch_warnings():  # a non-model pickle warns before it fails; the error says it all
            warnings.simplefilter("ignore")
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch.load on arbitrary bytes raises many types (KeyError, UnpicklingError...)
        raise ModelFileError(f"{path}: not a captcha-crnn model file ({_not_torch(path)})") from None
    if not isinstance(raw, dict):
        raise ModelFileError(f"{path}: not a captcha-crnn model file")
    if raw.get("format") == FORMAT:
        fields, state = raw, raw["state_dict"]
    elif isinstance(raw.get("hyper_parameters"), dict) and "state_dict" in raw:  # Lightning checkpoint
        fields = raw["hyper_parameters"]
        if not {"model_config", "charset", "input_policy"} <= fields.keys():
            raise ModelFileError(
                f"{path}: not a captcha-crnn model file (a Lightning checkpoint of another model)"
            )
        # The weights' moving average when training kept one (what validation measured), else the weights.
        prefix = "ema_model." if any(k.startswith("ema_model.") for k in raw["state_dict"]) else "model."
        state = {k.removeprefix(prefix): v for k, v in raw["state_dict"].items() if k.startswith(prefix)}
    elif str(raw.get("format", "")).startswith("captcha-crnn/"):
        raise ModelFileError(
            f"{path}: a captcha-crnn model of format {raw['format']!r}, which this version ({FORMAT!r}) "
            "cannot read; upgrade captcha-crnn"
        )
    else:
        raise ModelFileError(f"{path}: not a captcha-crnn model file (no model format marker)")
    try:
        model = CRNN(CRNNConfig.from_dict(fields["model_config"]))
        model.load_state_dict(state)
        policy = InputPolicy.from_dict(fields["input_policy"])
        charset = str(fields["charset"])
        if len(set(charset)) != len(charset):
            raise ValueError(f"the charset {charset!r} repeats a character")
        if len(charset) + 1 != model.config.num_classes:
            raise ValueError(f"{len(charset)} charset characters for {model.config.num_classes - 1} outputs")
        if (policy.channels, policy.height) != (model.config.in_channels, model.config.height):
            raise ValueError(
                f"input of {policy.channels} channel(s) at height {policy.height} for a network that takes "
                f"{model.config.in_channels} at height {model.config.height}"
            )
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: damaged captcha-crnn model file ({_damage(exc)})") from None
    model.eval()
    return ModelBundle(model, charset, policy, dict(fields.get("meta", {})))


def _not_torch(path: Path) -> str:
    """Why torch could not read the file, from its first bytes: an ONNX model (which export and training
    do not take), a torch file cut short or damaged, or something else."""
    if Path(path).suffix.lower() == ".onnx":
        return "an ONNX model: this reads a model.pt or a training checkpoint (.ckpt)"
    try:
        with Path(path).open("rb") as fh:
            head = fh.read(4)
    except OSError:
        head = b""
    if head == b"PK\x03\x04":  # torch's zip format
        return "a torch file cut short or damaged"
    return "not a torch weights file"


def _damage(exc: Exception) -> str:
    """One line on what a model file lacks or holds wrong: a missing field by name, or the first lines of
    torch's account of the weights that do not fit (its first line alone says nothing)."""
    if isinstance(exc, KeyError) and exc.args:
        return f"no {exc.args[0]!r} field"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = (
        " ".join(lines[:2])
        if lines and lines[0].endswith(":")
        else (lines[0] if lines else type(exc).__name__)
    )
    return one_line(detail, 200)
