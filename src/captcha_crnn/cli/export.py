"""`captcha-crnn export`: one self-contained ONNX file for torch-free inference."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write one self-contained ONNX file for torch-free inference",
        description="Export MODEL to ONNX: dynamic batch and width, with the charset, input "
        "size policy, normalisation and version in the file's metadata. The file "
        "is checked (onnx checker, same predictions as PyTorch) before it is "
        "written. predict, evaluate and serve take the .onnx file as MODEL.",
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="model.pt (or a run's .ckpt)")
    p.add_argument("out", type=Path, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument(
        "--quantize",
        action="store_true",
        help="int8 weights (onnxruntime dynamic quantization): smaller; check its accuracy with evaluate",
    )
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captcha_crnn.export.onnx import export

    report = export(args.model, args.out, quantize=args.quantize, force=args.force)
    print(
        f"wrote {report.path} ({report.bytes / 1e6:.2f} MB); checked against PyTorch on {report.checked} images: "
        f"{report.same_text}/{report.checked} same text, max probability difference {report.max_abs_diff:.2e}"
    )
    return 0
