"""The labelling workbench, scripted: key presses a user needs, and how fast the page answers.

    python benchmarks/labelling.py        # writes results/labelling.json, then regenerates BENCHMARKS.md

Key presses: 200 captcha-v2 images (a seeded draw) labelled through the JSON API the page uses
(`captcha-crnn label DIR`, defaults: the general model's suggestions, least certain first). The simulated
user presses Enter when the suggestion is right (1 key) and otherwise types the true label and Enter
(len + 1 keys). After RETRAIN_AT labels they press "Retrain now" and wait for it; the new model then makes
the suggestions. Reported: keys beyond the accepted ones (target < 300), accepted suggestions before and
after the retrain, the retrain's time.

Speed: a folder of 5000 images (links to the shared sets' files under distinct names); the time of
GET /api/next and POST /api/label, while the background scoring runs (target < 50 ms each).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import report  # noqa: E402
from accuracy import DATA, machine  # noqa: E402

from captcha_crnn import Recognizer, __version__  # noqa: E402
from captcha_crnn.data.labels import collect  # noqa: E402
from captcha_crnn.labelling.app import create_label_app  # noqa: E402
from captcha_crnn.labelling.retrain import Retrainer  # noqa: E402
from captcha_crnn.labelling.store import LabelStore  # noqa: E402
from captcha_crnn.labelling.workbench import Workbench  # noqa: E402

IMAGES = 200
RETRAIN_AT = 50
SPEED_IMAGES = 5000


def keystrokes(tmp: Path) -> dict:
    items = sorted(collect(DATA / "captcha-v2"), key=lambda i: str(i.path))
    random.Random(7).shuffle(items)
    folder = tmp / "todo"
    folder.mkdir()
    truth = {}
    for i, item in enumerate(items[:IMAGES]):
        name = f"{i:04d}.png"
        (folder / name).symlink_to(item.path.resolve())
        truth[name] = item.label
    store = LabelStore(folder / "labels.csv").open()
    bench = Workbench(folder, store, Recognizer.load("general"), follow_symlinks=True)
    retrainer = Retrainer(folder, tmp / "runs")
    client = TestClient(create_label_app(bench, retrainer, "general"))
    bench.start()
    phases = {
        "before": {"accepted": 0, "typed": 0, "keys": 0},
        "after": {"accepted": 0, "typed": 0, "keys": 0},
    }
    retrain: dict = {}
    labelled = 0
    while (r := client.get("/api/next")).status_code == 200:
        item = r.json()
        answer = truth[item["file"]]
        phase = phases["after" if retrain else "before"]
        if item["suggestion"] == answer:
            phase["accepted"] += 1
        else:
            phase["typed"] += 1
            phase["keys"] += len(answer) + 1
        assert client.post("/api/label", json={"file": item["file"], "label": answer}).status_code == 200
        labelled += 1
        if labelled == RETRAIN_AT:
            start = time.monotonic()
            assert client.post("/api/retrain", json={}).status_code == 202
            while retrainer.running:
                time.sleep(0.5)
            retrain = {**retrainer.job.to_dict(), "seconds": round(time.monotonic() - start, 1)}
    bench.stop()
    store.close()
    typed_keys = sum(p["keys"] for p in phases.values())
    return {
        "images": IMAGES,
        "retrain_at": RETRAIN_AT,
        "keys_beyond_accepted": typed_keys,
        "total_keys": typed_keys + sum(p["accepted"] for p in phases.values()),
        "phases": phases,
        "retrain": {k: retrain.get(k) for k in ("state", "labels", "val_accuracy", "seconds", "message")},
    }


def speed(tmp: Path) -> dict:
    sources = [i.path for name in ("captcha-v2", "tii-digits") for i in collect(DATA / name)]
    folder = tmp / "many"
    folder.mkdir()
    for i in range(SPEED_IMAGES):
        source = sources[i % len(sources)]
        (folder / f"{i:05d}{source.suffix}").symlink_to(source.resolve())
    store = LabelStore(folder / "labels.csv").open()
    start = time.perf_counter()
    bench = Workbench(folder, store, Recognizer.load("general"), follow_symlinks=True)
    listed = time.perf_counter() - start
    client = TestClient(create_label_app(bench, None, "general"))
    bench.start()  # scoring runs in the background while the user works
    nexts, labels = [], []
    for _ in range(100):
        t = time.perf_counter()
        item = client.get("/api/next").json()
        nexts.append(time.perf_counter() - t)
        t = time.perf_counter()
        client.post("/api/label", json={"file": item["file"], "label": item["suggestion"] or "x"})
        labels.append(time.perf_counter() - t)
    bench.stop()
    store.close()
    ms = lambda xs, q: round(1000 * statistics.quantiles(xs, n=100)[q - 1], 1)  # noqa: E731
    return {
        "images": SPEED_IMAGES,
        "start_seconds": round(listed, 2),
        "next_ms_p50": ms(nexts, 50),
        "next_ms_p95": ms(nexts, 95),
        "label_ms_p50": ms(labels, 50),
        "label_ms_p95": ms(labels, 95),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "version": __version__,
            "machine": machine(),
            "command": "python benchmarks/labelling.py",
            "keystrokes": keystrokes(Path(tmp)),
            "speed": speed(Path(tmp)),
        }
    print(json.dumps(results, indent=2))
    report.save("labelling", results)


if __name__ == "__main__":
    main()
