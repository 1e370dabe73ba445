"""Peak memory of training on a folder far larger than memory needs: 200,000 generated images on disk.

    python benchmarks/scale.py            # generates the images once (cached), then measures

The images (4-6 characters, 120x40, about 2 KB each) are generated once into benchmarks/.cache/ (git
ignores it) by 2 processes. Training runs `captcha-crnn train --lazy --workers 2` (lazy is automatic
above 20,000 images) for --minutes of wall time, on the first 20,000 and on all 200,000, and samples the
memory of the training process and its workers together every 0.2 s: PSS (shared pages split between
the processes sharing them: the memory really used) and the plain sum of RSS (shared pages counted once
per process).
Results go to benchmarks/results/scale.json and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "scale-200k"
sys.path.insert(0, str(HERE))
import report  # noqa: E402

from captcha_crnn.training.callbacks import epochs_recorded  # noqa: E402


def _generate_part(args: tuple[int, int, int]) -> list[tuple[str, str]]:
    from captcha_crnn.data.synthetic import Renderer, Style

    start, stop, seed = args
    renderer = Renderer(
        Style(charset="abcdefghjkmnpqrstuvwxyz23456789", length=(4, 6), width=(120, 120), height=40), seed
    )
    rows = []
    for i in range(start, stop):
        label, image = renderer.sample()
        name = f"{i:06d}_{label}.png"
        image.save(CACHE / name)
        rows.append((name, label))
    return rows


def ensure_images(count: int) -> None:
    labels = CACHE / "labels.csv"
    if labels.exists() and sum(1 for _ in labels.open()) - 1 >= count:
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    step = 5000
    parts = [(s, min(s + step, count), s) for s in range(0, count, step)]
    print(f"generating {count} images into {CACHE} ...", flush=True)
    with multiprocessing.Pool(2) as pool:
        rows = [row for part in pool.imap(_generate_part, parts) for row in part]
    with labels.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label"])
        writer.writerows(rows)


def tree_memory_mb(pid: int) -> tuple[float, float]:
    """(PSS, RSS) of a process and all its descendants, from /proc. DataLoader workers are forked and
    share most pages with the trainer: summing RSS counts those pages once per process, PSS (each shared
    page split between its sharers) sums to the memory really used."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    pss = rss = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            continue
    return pss / 1024, rss / 1024


def measure(labels: Path, minutes: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "captcha_crnn", "-q", "train", str(CACHE), "--labels", str(labels),
            "--out", str(Path(tmp) / "run"), "--max-time", str(minutes), "--no-progress", "--lazy", "--workers", "2",
            "--val-split", "0.01",
        ]  # fmt: skip
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak_pss = peak_rss = 0.0
        while proc.poll() is None:
            pss, rss = tree_memory_mb(proc.pid)
            peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
            time.sleep(0.2)
        err = proc.stderr.read() if proc.stderr else ""
        if proc.returncode != 0:
            sys.exit(f"training failed: {err[-2000:]}")
        metrics = Path(tmp) / "run" / "metrics.csv"
        epochs = epochs_recorded(metrics)
    images = sum(1 for _ in labels.open()) - 1
    return {
        "images": images,
        "peak_pss_mb": round(peak_pss, 1),
        "peak_rss_sum_mb": round(peak_rss, 1),
        "wall_seconds": round(time.monotonic() - start, 1),
        "epochs_completed": epochs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--minutes", type=float, default=3.0, help="training time per measurement")
    args = parser.parse_args()
    ensure_images(args.count)
    with tempfile.TemporaryDirectory() as tmp:
        all_rows = (CACHE / "labels.csv").read_text().splitlines()
        results = []
        for n in (args.count // 10, args.count):
            labels = Path(tmp) / f"labels-{n}.csv"
            labels.write_text("\n".join(all_rows[: n + 1]) + "\n")
            print(f"training on {n} images for {args.minutes} min ...", flush=True)
            results.append(measure(labels, args.minutes))
            print(results[-1], flush=True)
    report.save("scale", {"minutes": args.minutes, "runs": results, "date": time.strftime("%Y-%m-%d")})


if __name__ == "__main__":
    main()
