"""Inference speed, memory and accuracy: PyTorch, onnxruntime fp32 and int8, the general reader, and
ddddocr, in one run.

    python benchmarks/inference.py [--model model.pt]

Without --model, the default model is trained on 90% of captcha-v2 (the seeded split of `train`, which
then takes its own validation split from that 90%); all backends are measured on the other 72 images,
which neither training nor checkpoint choice saw. ddddocr (a pretrained
general captcha reader, not trained on this style) runs from its own environment,
benchmarks/.venv-ddddocr, created here on first use with `pip install ddddocr`. Each backend runs in a
fresh process (`_infer_worker.py`) that loads the model and predicts 300 single images then 10 batches of
64: its peak RSS is that process's. The general reader (the shipped
`general.onnx`, or `--reader FILE`) is timed the same way on the same images, zero-shot. Results:
benchmarks/results/inference.json and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import report  # noqa: E402  (benchmarks/report.py)
from common import train_default_model  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data" / "captcha-v2"
DDDDOCR_VENV = HERE / ".venv-ddddocr"


def ddddocr_python() -> Path:
    python = DDDDOCR_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DDDDOCR_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "ddddocr==1.6.1"], check=True)
    return python


def model_flops(config: dict, height: int, width: int) -> float:
    """Multiply-adds x 2 of one image through the CRNN (convolutions, BiGRU/BiLSTM, head)."""
    from captcha_crnn.model.crnn import HEIGHT_STRIDE, POOLS

    flops, h, w, c_in = 0.0, height, width, config.get("in_channels", 1)
    for i, c_out in enumerate(config["channels"]):
        flops += 2 * 9 * c_in * c_out * h * w
        if i in POOLS:
            ph, pw = POOLS[i]
            h, w = h // ph, w // pw
        c_in = c_out
    frames, hidden = w, config["hidden"]
    gates = 3 if config["rnn"] == "gru" else 4
    features = c_in * (height // HEIGHT_STRIDE)
    for layer in range(config["layers"]):
        inputs = features if layer == 0 else 2 * hidden
        flops += 2 * 2 * frames * gates * hidden * (inputs + hidden)  # two directions
    flops += 2 * frames * 2 * hidden * config["num_classes"]
    return flops


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    import torch

    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="a model.pt trained on captcha-v2 (default: train one)")
    parser.add_argument(
        "--reader",
        default="general",
        help="the general reader's .onnx for its row (default: the shipped one; it never trained on captcha-v2)",
    )
    args = parser.parse_args()
    from captcha_crnn.data.labels import collect, split_validation
    from captcha_crnn.export.onnx import export
    from captcha_crnn.model.io import load_model
    from captcha_crnn.weights import resolve

    reader = resolve(args.reader, ".onnx")  # before training: a wrong path fails now, not minutes later
    if reader.suffix != ".onnx":
        parser.error(
            f"{reader}: the reader's row times onnxruntime; give an .onnx file (or install onnxruntime)"
        )

    # The measured images are a held-out 10%: the model trains on the rest, from which `train` takes its
    # own validation split for checkpoint choice and stopping, so no decision sees the measured images.
    train_items, val_items = split_validation(collect(DATA), 0.1, seed=42)
    fit_items, select_items = split_validation(train_items, 0.1, seed=42)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            model = train_default_model(fit_items, select_items, tmp)
        export(model, tmp / "model.onnx")
        export(model, tmp / "model-int8.onnx", quantize=True)
        images = tmp / "images.json"
        images.write_text(json.dumps([[str(it.path), it.label] for it in val_items]))
        runs = {
            "PyTorch (eager)": (sys.executable, "torch", model),
            "onnxruntime fp32": (sys.executable, "onnx", tmp / "model.onnx"),
            "onnxruntime int8": (sys.executable, "onnx", tmp / "model-int8.onnx"),
            # issue 25's latency target: the shipped reader, zero-shot (its whole charset, no restriction)
            "general reader, onnxruntime fp32": (sys.executable, "onnx", reader),
            "ddddocr (pretrained)": (ddddocr_python(), "ddddocr", None),
        }
        results = {}
        for name, (python, backend, path) in runs.items():
            proc = subprocess.run(
                [str(python), str(HERE / "_infer_worker.py"), backend, str(path), str(images)],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            result["model_mb"] = round(path.stat().st_size / 1e6, 2) if path else None
            results[name] = result
            print(name, json.dumps(result), flush=True)
        bundle = load_model(model)
        width = bundle.policy.fixed_width or bundle.policy.max_width
        flops = model_flops(bundle.model.config.to_dict(), bundle.policy.height, width)
    if results["ddddocr (pretrained)"]["model_mb"] is None:  # its bundled model, in its own venv
        onnx_files = list(DDDDOCR_VENV.glob("lib/python*/site-packages/ddddocr/*.onnx"))
        results["ddddocr (pretrained)"]["model_mb"] = round(
            max(f.stat().st_size for f in onnx_files) / 1e6, 2
        )
    gflops = matmul_gflops()
    out = {
        "results": results,
        "val_images": len(val_items),
        "input": f"{width}x{bundle.policy.height}",
        "reader": str(args.reader),
        "model_mflops_per_image": round(flops / 1e6, 1),
        "matmul_gflops": round(gflops, 1),
        "ceiling_images_per_second": round(gflops * 1e9 / flops),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps({k: v for k, v in out.items() if k != "results"}))
    report.save("inference", out)


if __name__ == "__main__":
    main()
