"""ddddocr's pre-trained model on labelled images, plain and restricted to a charset; run in its own venv.

    python _ddddocr_zero_shot.py IMAGES.json CHARSET     ->  one JSON object on stdout

Restricted two ways: ddddocr's own `set_ranges` (which drops other characters after decoding) and a
masked greedy decode of its per-frame probabilities (other classes' scores removed before the argmax,
both cases of a letter counting for the allowed one), the same rule captcha-crnn's --charset uses.
Scoring is case-insensitive. Imports nothing from captcha_crnn.
"""

import json
import sys
import time
from pathlib import Path

import ddddocr
import numpy as np


def masked_decode(probabilities: np.ndarray, charset: list[str], allowed: str) -> str:
    groups = [[0]]  # blank first
    for ch in allowed:
        groups.append([i for i, c in enumerate(charset) if c in (ch, ch.swapcase()) and c])
    scores = np.stack([probabilities[:, g].sum(axis=1) for g in groups], axis=1)
    best = scores.argmax(axis=1)
    out, previous = [], 0
    for idx in best:
        if idx != previous and idx != 0:
            out.append(allowed[idx - 1])
        previous = idx
    return "".join(out)


def main() -> None:
    items = json.loads(Path(sys.argv[1]).read_text())
    allowed = sys.argv[2]
    blobs = [Path(p).read_bytes() for p, _ in items]
    labels = [label.lower() for _, label in items]
    ocr = ddddocr.DdddOcr(show_ad=False)
    plain, masked, latencies = [], [], []
    for blob in blobs:
        t = time.perf_counter()
        plain.append(ocr.classification(blob).lower())
        latencies.append(time.perf_counter() - t)
        result = ocr.classification(blob, probability=True)
        probs = np.asarray(result["probabilities"])
        if probs.ndim == 3:  # (frames, 1, classes) from this version; (1, frames, classes) in others
            probs = probs[:, 0, :] if probs.shape[1] == 1 else probs[0]
        masked.append(masked_decode(probs, result["charset"], allowed).lower())
    ocr.set_ranges(allowed)
    ranged = [ocr.classification(blob).lower() for blob in blobs]
    acc = lambda preds: sum(p == t for p, t in zip(preds, labels)) / len(labels)  # noqa: E731
    print(
        json.dumps(
            {
                "plain": acc(plain),
                "set_ranges": acc(ranged),
                "masked": acc(masked),
                "latency_ms_p50": round(1000 * float(np.median(latencies)), 2),
                "count": len(items),
            }
        )
    )


if __name__ == "__main__":
    main()
