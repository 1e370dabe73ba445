"""One backend's inference measurements, run in a fresh process so its peak RSS is its own.

    python _infer_worker.py BACKEND MODEL IMAGES.json      (BACKEND: torch, onnx, ddddocr)

IMAGES.json lists [path, label] pairs. Prints one JSON object. For ddddocr this runs in the
benchmark's own virtual environment and imports nothing from captcha_crnn.
"""

import json
import resource
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss
    over exec, so a worker would report its (much larger) parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    backend, model, images_file = sys.argv[1:4]
    items = json.loads(Path(images_file).read_text())
    blobs = [Path(path).read_bytes() for path, _ in items]
    labels = [label for _, label in items]
    start = time.perf_counter()
    if backend == "ddddocr":
        import ddddocr

        ocr = ddddocr.DdddOcr(show_ad=False)

        def predict_one(blob):
            return ocr.classification(blob)

        def predict_batch(batch):
            return [ocr.classification(b) for b in batch]  # ddddocr has no batch API
    else:
        from captcha_crnn import Recognizer

        rec = Recognizer.load(model, batch_size=64)

        def predict_one(blob):
            return rec.predict(blob).text

        def predict_batch(batch):
            return [p.text for p in rec.predict(list(batch))]

    load_s = time.perf_counter() - start
    for blob in blobs[:20]:  # warm-up
        predict_one(blob)
    latencies = []
    predictions = []
    for i in range(300):  # 300 single-image calls, bytes in, text out (decode and CTC decoding included)
        blob = blobs[i % len(blobs)]
        t = time.perf_counter()
        text = predict_one(blob)
        latencies.append(time.perf_counter() - t)
        if i < len(blobs):
            predictions.append(text)
    latencies.sort()
    batch = (blobs * (64 // len(blobs) + 1))[:64]
    predict_batch(batch)
    rounds, t = 10, time.perf_counter()
    for _ in range(rounds):
        predict_batch(batch)
    throughput = rounds * 64 / (time.perf_counter() - t)
    network = None
    if backend != "ddddocr":  # the network alone: batches of 64 already-decoded images
        pixels = [rec.preprocess(b) for b in batch]
        rec.log_probs(pixels)
        t = time.perf_counter()
        for _ in range(rounds):
            rec.log_probs(pixels)
        network = round(rounds * 64 / (time.perf_counter() - t), 1)
    correct = sum(p == label for p, label in zip(predictions, labels))
    print(
        json.dumps(
            {
                "backend": backend,
                "load_seconds": round(load_s, 3),
                "p50_ms": round(1000 * latencies[len(latencies) // 2], 3),
                "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 3),
                "batch64_images_per_second": round(throughput, 1),
                "network_images_per_second": network,
                "sequence_accuracy": correct / len(labels),
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


if __name__ == "__main__":
    main()
