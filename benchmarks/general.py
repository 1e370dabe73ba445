"""The shipped general model with no training on the style, side by side with ddddocr's pre-trained one.

    python benchmarks/general.py        # writes results/general.json, then regenerates BENCHMARKS.md

Every image of ../shared/data's two sets is a test image: the general model was trained only on
generated captchas (scripts/pretrain.py), whose fonts and looks are not these sets'. Each model reads
them plain and restricted to the set's characters (`--charset`: digits for tii-digits, the 19 symbols
of captcha-v2's labels), and restricted with the labels' length too (`--length`: 4 and 5, what a
user knows of their captchas); scoring is case-insensitive (the general model reads 62 classes; the sets are
lower case or digits). ddddocr runs in its own virtual environment (benchmarks/.venv-ddddocr, made on
first use), restricted both by its own `set_ranges` and by masking its probabilities the same way.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from captcha_crnn import __version__
from captcha_crnn.data.labels import collect
from captcha_crnn.inference.evaluate import evaluate
from captcha_crnn.inference.recognizer import Recognizer
from captcha_crnn.weights import HERE as WEIGHTS
from captcha_crnn.weights import manifest

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import report  # noqa: E402
from accuracy import DATA, machine  # noqa: E402
from inference import DDDDOCR_VENV, ddddocr_python  # noqa: E402


def ours(items: list, charset: str, lengths: tuple[int, int]) -> dict:
    rec = Recognizer.load("general")
    plain = evaluate(rec, items, ignore_case=True)
    restricted = evaluate(rec, items, charset=charset, ignore_case=True)
    with_length = evaluate(rec, items, charset=charset, ignore_case=True, length=lengths)
    blobs = [item.path.read_bytes() for item in items[:200]]
    for blob in blobs[:20]:
        rec.predict(blob)
    latencies = []
    for blob in blobs:
        t = time.perf_counter()
        rec.predict(blob)
        latencies.append(time.perf_counter() - t)
    return {
        "plain": plain.sequence_accuracy,
        "restricted": restricted.sequence_accuracy,
        "restricted_cer": restricted.cer,
        "restricted_length": with_length.sequence_accuracy,
        "latency_ms_p50": round(1000 * statistics.median(latencies), 2),
        "errors": [f"{e['label']} -> {e['prediction']}" for e in restricted.errors[:8]],
    }


def theirs(items: list, charset: str, lengths: tuple[int, int]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "images.json"
        listing.write_text(json.dumps([[str(i.path), i.label] for i in items]))
        worker = BENCH / "_ddddocr_zero_shot.py"
        out = subprocess.run(
            [str(ddddocr_python()), str(worker), str(listing), charset, f"{lengths[0]}-{lengths[1]}"],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def stages(record: dict) -> list[dict]:
    """Each pre-training stage's machine, minutes and epochs, from the shipped model's record: the
    earlier stages are listed in its recipe, the last one is what the totals leave."""
    recipe, trained = record["recipe"], record["trained"]
    earlier = [{k: st[k] for k in ("device", "minutes", "epochs")} for st in recipe.get("stages", [])]
    last = {
        "device": recipe.get("device", "2 CPU cores"),
        "minutes": round(trained["minutes"] - sum(st["minutes"] for st in earlier), 1),
        "epochs": trained["epochs"] - sum(st["epochs"] for st in earlier),
    }
    return [*earlier, last]


def main() -> None:
    results: dict = {
        "version": __version__,
        "machine": machine(),
        "command": "python benchmarks/general.py",
        "general": {**manifest()["trained"], "stages": stages(manifest())},
        "sizes_mb": {
            "general.onnx": round((WEIGHTS / "general.onnx").stat().st_size / 1e6, 2),
            "ddddocr common.onnx": round(
                sum(
                    p.stat().st_size
                    for p in DDDDOCR_VENV.glob("lib/python*/site-packages/ddddocr/common.onnx")
                )
                / 1e6,
                2,
            ),
        },
        "sets": {},
    }
    for name in ("captcha-v2", "tii-digits"):
        items = collect(DATA / name, None, None, False)
        charset = "".join(sorted(set("".join(i.label.lower() for i in items))))
        lengths = (min(len(i.label) for i in items), max(len(i.label) for i in items))
        print(f"{name}: {len(items)} images, charset {charset}, lengths {lengths}", flush=True)
        results["sets"][name] = {
            "count": len(items),
            "charset": charset,
            "lengths": list(lengths),
            "general": ours(items, charset, lengths),
            "ddddocr": theirs(items, charset, lengths),
        }
        print(json.dumps(results["sets"][name]), flush=True)
    report.save("general", results)
    print(f"wrote {report.write_report()}")


if __name__ == "__main__":
    main()
