"""ddddocr's pre-trained model on labelled images, plain and restricted to a charset; run in its own venv.

    python _ddddocr_zero_shot.py IMAGES.json CHARSET LO-HI [fold|case]   ->  one JSON object on stdout

Restricted two ways: ddddocr's own `set_ranges` (which drops other characters after decoding) and a
masked greedy decode of its per-frame probabilities (other classes' scores removed before the argmax,
both cases of a letter counting for the allowed one), the same rule captcha-crnn's --charset uses.
"masked_length" also keeps the reading to LO..HI characters with captcha-crnn's own length-constrained
best path (`captcha_crnn.data.tokenizer`, which needs only numpy: imported from the source tree), so
that both models get the same decoding. Scoring is case-insensitive ("fold", the default); with "case"
a letter counts only in its own case, when masking and when scoring.
"""

import json
import sys
import time
from pathlib import Path

import ddddocr
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from captcha_crnn.data.tokenizer import CTCTokenizer  # (numpy only)


def masked_decode(
    probabilities: np.ndarray,
    charset: list[str],
    allowed: str,
    lengths: tuple[int, int] | None = None,
    case: bool = False,
) -> str:
    groups = [[0]]  # blank first
    for ch in allowed:
        same = (ch,) if case else (ch, ch.swapcase())
        groups.append([i for i, c in enumerate(charset) if c in same and c])
    scores = np.stack([probabilities[:, g].sum(axis=1) for g in groups], axis=1)
    log_probs = np.log(np.maximum(scores / scores.sum(axis=1, keepdims=True), 1e-30))
    return CTCTokenizer(allowed).greedy_decode(log_probs, text_lengths=lengths)[0]


def main() -> None:
    items = json.loads(Path(sys.argv[1]).read_text())
    allowed = sys.argv[2]
    low, _, high = sys.argv[3].partition("-")
    lengths = (int(low), int(high or low))
    case = len(sys.argv) > 4 and sys.argv[4] == "case"
    fold = (lambda text: text) if case else str.lower
    blobs = [Path(p).read_bytes() for p, _ in items]
    labels = [fold(label) for _, label in items]
    ocr = ddddocr.DdddOcr(show_ad=False)
    plain, masked, masked_length, latencies = [], [], [], []
    for blob in blobs:
        t = time.perf_counter()
        plain.append(fold(ocr.classification(blob)))
        latencies.append(time.perf_counter() - t)
        result = ocr.classification(blob, probability=True)
        probs = np.asarray(result["probabilities"])
        if probs.ndim == 3:  # (frames, 1, classes) from this version; (1, frames, classes) in others
            probs = probs[:, 0, :] if probs.shape[1] == 1 else probs[0]
        masked.append(fold(masked_decode(probs, result["charset"], allowed, None, case)))
        masked_length.append(fold(masked_decode(probs, result["charset"], allowed, lengths, case)))
    ocr.set_ranges(allowed)
    ranged = [fold(ocr.classification(blob)) for blob in blobs]
    acc = lambda preds: sum(p == t for p, t in zip(preds, labels)) / len(labels)  # noqa: E731
    print(
        json.dumps(
            {
                "plain": acc(plain),
                "set_ranges": acc(ranged),
                "masked": acc(masked),
                "masked_length": acc(masked_length),
                "latency_ms_p50": round(1000 * float(np.median(latencies)), 2),
                "count": len(items),
            }
        )
    )


if __name__ == "__main__":
    main()
