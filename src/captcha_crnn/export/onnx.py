"""`captcha-crnn export MODEL OUT.onnx`: the network with log-softmax in the graph, dynamic batch and
width, and in the file's metadata everything else a predictor needs (charset, input policy,
normalisation, version). The file is checked right after writing: onnx's checker, then the same batch
through PyTorch and onnxruntime must give the same text and log-probabilities within a tolerance."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from captcha_crnn import __version__
from captcha_crnn.data.images import stack_batch
from captcha_crnn.errors import CaptchaCrnnError, ModelFileError, one_line, refuse_existing
from captcha_crnn.inference.backends import ONNX_FORMAT, load_onnx
from captcha_crnn.model.io import ModelBundle, load_model

# Max |probability difference| per frame and class between PyTorch and onnxruntime (fp32); measured ~1e-6.
# Probabilities, not log-probs: a class at log-prob -40 differs by 1e-3 in float32 rounding and means nothing.
TOLERANCE = 1e-3
NORMALISATION = (
    "grey (1 channel) or RGB (3 channels, input_policy.channels), alpha composited on white (except a "
    "drawing on a transparent canvas, half its pixels or more fully clear, whose alpha-weighted mean "
    "luminance contrast with white is under 64 of 255: then grey = 255 - alpha), scaled to [0, 1]; the "
    "graph normalises it"
)
RESIZE = (  # what InputPolicy.width_for does, for readers of the file in other languages
    "bilinear, to input_policy.height rows and W columns: W = round(width * height / image height * "
    "stretch / width_stride) * width_stride, clamped to [min_width, max_width]; stretch is 1 when absent. "
    "When input_policy.crop is true, the image is first cut to its text as captcha_crnn.data.textbox."
    "text_box finds it"
)


class LogProbs(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).log_softmax(-1)


@dataclass
class ExportReport:
    path: Path
    bytes: int
    max_abs_diff: float
    same_text: int
    checked: int


def _probe_batch(policy, count: int = 8, seed: int = 0) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Random images across the policy's widths: enough to compare two runtimes on the same input."""
    rng = np.random.default_rng(seed)
    widths = np.linspace(policy.min_width, policy.max_width, count).astype(int) // policy.width_stride
    channels = () if policy.channels == 1 else (policy.channels,)
    pixels = [
        rng.integers(0, 256, (policy.height, max(w, 1) * policy.width_stride, *channels), dtype=np.uint8)
        for w in widths
    ]
    images, _ = stack_batch(pixels, policy)
    return images


def export(model_path: Path, out: Path, quantize: bool = False, force: bool = False) -> ExportReport:
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise CaptchaCrnnError(f"{out}: the output file must end in .onnx")
    if not out.parent.is_dir():
        problem = "not a folder" if out.parent.exists() else "no such folder (create it first)"
        raise CaptchaCrnnError(f"{out.parent}: {problem}")
    if out.is_dir():
        raise CaptchaCrnnError(f"{out}: is a folder; give the path of the .onnx file to write")
    refuse_existing(out, force)
    bundle = load_model(model_path)
    wrapper = LogProbs(bundle.model).eval()
    probe = torch.from_numpy(_probe_batch(bundle.policy))
    try:
        return _export(bundle, wrapper, probe, out, quantize)
    except OSError as exc:  # read-only or full disk, no permission
        raise CaptchaCrnnError(f"{out}: cannot write ({one_line(exc.strerror or exc, 200)})") from None


def _export(
    bundle: ModelBundle, wrapper: nn.Module, probe: torch.Tensor, out: Path, quantize: bool
) -> ExportReport:
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:  # beside OUT: the final rename stays atomic
        raw = Path(tmp) / "model.onnx"
        _torch_export(wrapper, probe, raw)
        import onnx

        proto = onnx.load(str(raw))
        meta = {
            "format": ONNX_FORMAT,
            "charset": bundle.charset,
            "input_policy": json.dumps(bundle.policy.to_dict()),
            "normalisation": NORMALISATION,
            "resize": RESIZE,
            "model_config": json.dumps(bundle.model.config.to_dict()),
            "version": __version__,
            "quantized": "int8" if quantize else "no",
            "ignore_case": "yes" if bundle.meta.get("ignore_case") else "no",
        }
        lengths = bundle.meta.get("label_lengths")
        if lengths:  # models trained before it was recorded have none: their readings have any length
            meta["label_lengths"] = f"{lengths[0]}-{lengths[1]}"
        del proto.metadata_props[:]
        for key, value in meta.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(proto)
        final = Path(tmp) / "final.onnx"
        onnx.save(proto, str(final))
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = Path(tmp) / "int8.onnx"
            root = logging.getLogger()
            level, root.level = root.level, logging.ERROR  # the quantizer's advice goes to the root logger
            try:
                quantize_dynamic(str(final), str(quantized), weight_type=QuantType.QInt8)
            finally:
                root.setLevel(level)
            proto = onnx.load(str(quantized))
            del proto.metadata_props[:]  # the quantizer keeps its own; put ours back
            for key, value in meta.items():
                proto.metadata_props.add(key=key, value=value)
            onnx.save(proto, str(quantized))
            final = quantized
        report = _verify(wrapper, probe, final, bundle.charset, strict=not quantize)
        os.replace(final, out)  # only a verified file reaches OUT
    report.path, report.bytes = out, out.stat().st_size
    return report


def _torch_export(wrapper: nn.Module, probe: torch.Tensor, path: Path) -> None:
    # The TorchScript exporter: the dynamo one (torch 2.13) takes ~16 s and fails on a second GRU export
    # in the same process; this one takes ~0.3 s and gives the same graph to ~1e-5.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (probe,),
            str(path),
            input_names=["images"],
            output_names=["log_probs"],
            dynamic_axes={"images": {0: "batch", 3: "width"}, "log_probs": {0: "batch", 1: "frames"}},
            dynamo=False,
            opset_version=17,
        )


def _verify(wrapper: nn.Module, probe: torch.Tensor, path: Path, charset: str, strict: bool) -> ExportReport:
    from captcha_crnn.data.tokenizer import CTCTokenizer

    try:
        loaded = load_onnx(path)
    except ModelFileError as exc:  # e.g. an onnxruntime without a kernel the (quantized) graph needs
        import onnxruntime

        reason = str(exc).removeprefix(f"{path}: ")
        raise CaptchaCrnnError(
            f"export check failed: onnxruntime {onnxruntime.__version__} cannot run the exported model "
            f"({reason}); the file was not written"
        ) from None
    with torch.inference_mode():
        expected = wrapper(probe).numpy()
    got = loaded.backend(probe.numpy())
    diff = float(np.abs(np.exp(expected) - np.exp(got)).max())
    tok = CTCTokenizer(charset)
    same = sum(tok.greedy_decode(a)[0] == tok.greedy_decode(b)[0] for a, b in zip(expected, got))
    if strict and (diff > TOLERANCE or same != len(expected)):
        raise CaptchaCrnnError(
            f"export check failed: onnxruntime differs from PyTorch by {diff:.2e} (tolerance {TOLERANCE}), "
            f"{same}/{len(expected)} texts equal; the file was not written"
        )
    return ExportReport(path, 0, diff, same, len(expected))
