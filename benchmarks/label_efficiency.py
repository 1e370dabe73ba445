"""How many labels does a new style need? Test accuracy against the number of labelled images.

    python benchmarks/label_efficiency.py                                   # the whole curve
    python benchmarks/label_efficiency.py --sets captcha-v2 --sizes 50 100 200 --seeds 0 1 2
    python benchmarks/label_efficiency.py --suite-200                        # every suite style, 200 labels
    python benchmarks/label_efficiency.py --rerun                            # every row in the results again
    python benchmarks/label_efficiency.py --rerun --modes pretrained pretrained+unlabelled  # a new general model
    python benchmarks/label_efficiency.py --sets securimage --sizes 50 --train-args "--preset small"  # a probe

Modes: "scratch" (`train --init none`), "pretrained" (the default: from the shipped general model) and
"pretrained+unlabelled" (`--unlabelled` with up to 600 other images of the pool, their labels unused).
Each run trains with default settings on `size` labelled images drawn from the pool with its seed
(`train` takes its own 10% of them for validation, as a user with that many labels would), and is
tested on a fixed test set the pool never includes (a test label with a character that no labelled
image had counts as wrong: the model's charset is the labels'): for the real sets (../shared/data) the first of
accuracy.py's three folds, for generated styles their 500 test images. Real sites the general model
never trained on (issue 26, `--sets securimage ...`): securimage and henan-digits draw their labels from
accuracy.py's 6000 training images and are tested on the first 1000 of its 2000 test images;
cryptowin-math (1450) is split by a hash of the file name into 1000 test images and a pool of 450; the
telegram sets (~95 each) are tested on every image the labelled ones leave (about 45), so they have no
other images to add unlabelled and skip that mode. Results accumulate in
results/label_efficiency.json (a rerun replaces the same set/mode/size/seed); the plot is
results/label_efficiency.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import report  # noqa: E402
from accuracy import DATA, SPLIT, by_hash, folds, machine, split, style_data  # noqa: E402
from styles import SUITE  # noqa: E402

from captcha_crnn import __version__  # noqa: E402
from captcha_crnn.data.labels import LabelledImage, collect  # noqa: E402
from captcha_crnn.inference.evaluate import evaluate  # noqa: E402
from captcha_crnn.inference.recognizer import Recognizer  # noqa: E402

RESULTS = BENCH / "results" / "label_efficiency.json"
SETS = ("captcha-v2", "tii-digits", "warped-rotated", "captcha-library")
MODES = ("scratch", "pretrained", "pretrained+unlabelled")
SIZES = (25, 50, 100, 200, 400, 0)  # 0: the whole pool
SITES = (
    "securimage",
    "henan-digits",
    "cryptowin-math",
    "telegram-charon",
    "telegram-misty",
    "telegram-misty-new",
)
SITE_TEST = 1000
MIN_TEST = 20  # a small site's run needs at least this many images left to test
UNLABELLED = 600


def pool_and_test(name: str) -> tuple[list[LabelledImage], list[LabelledImage] | None]:
    """The images labels are drawn from, and the test images (None: whatever the labelled ones leave)."""
    if name in SPLIT:
        pool, test = split(name)
        return pool, test[:SITE_TEST]
    if name in SITES:
        items = by_hash(name, collect(DATA / "real" / name))
        if len(items) >= SITE_TEST + 400:  # a pool of 400 or more beside the test images
            return items[SITE_TEST:], items[:SITE_TEST]
        return items, None
    if name in ("captcha-v2", "tii-digits"):
        parts = folds(collect(DATA / name))
        return parts[1] + parts[2], parts[0]
    style, n_train = SUITE[name]
    train_dir, test_dir = style_data(name, style, n_train)
    return collect(train_dir), collect(test_dir)


def run_one(name: str, mode: str, size: int, seed: int, minutes: float, extra: tuple[str, ...] = ()) -> dict:
    pool, test = pool_and_test(name)
    order = sorted(pool, key=lambda item: str(item.path))
    random.Random(seed).shuffle(order)
    size = size or len(order)
    labelled, rest = order[:size], order[size:]
    if test is None:  # a small site: tested on the images not labelled, none left to add unlabelled
        if mode == "pretrained+unlabelled" or len(rest) < MIN_TEST:
            raise SystemExit(f"{name}: {len(rest)} images left to test and none to add unlabelled")
        test, rest = rest, []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = tmp_path / "labelled"
        data.mkdir()
        for i, item in enumerate(labelled):  # symlinks: train sees exactly these images
            (data / f"{i:05d}{item.path.suffix}").symlink_to(item.path.resolve())
        with (data / "labels.csv").open("w", newline="") as fh:
            csv.writer(fh).writerows(
                [("file", "label")]
                + [(f"{i:05d}{it.path.suffix}", it.label) for i, it in enumerate(labelled)]
            )
        cmd = [sys.executable, "-m", "captcha_crnn", "-q", "train", str(data), "--out", str(tmp_path / "run"),
               "--no-progress", "--seed", str(seed), "--max-time", str(minutes)]  # fmt: skip
        cmd += list(extra)
        if mode == "scratch":
            cmd += ["--init", "none"]
        if mode == "pretrained+unlabelled":
            unlabelled = tmp_path / "unlabelled"
            unlabelled.mkdir()
            for i, item in enumerate(rest[:UNLABELLED]):
                (unlabelled / f"{i:05d}{item.path.suffix}").symlink_to(item.path.resolve())
            cmd += ["--unlabelled", str(unlabelled)]
        start = time.monotonic()
        subprocess.run(cmd, check=True)
        seconds = time.monotonic() - start
        rec = Recognizer.load(tmp_path / "run" / "model.pt")
        # A test label with a character none of the labelled images had cannot be read (the model's
        # charset is the labels'): it counts as wrong, and the row says how many there were.
        known = [item for item in test if not set(item.label) - set(rec.charset)]
        result = evaluate(rec, known)
        self_training = json.loads((tmp_path / "run" / "run.json").read_text()).get("self_training")
    row = {
        "set": name,
        "mode": mode,
        "size": size,
        "seed": seed,
        "test_images": len(test),
        "test_sequence_accuracy": result.sequence_accuracy * len(known) / len(test),
        "test_cer": result.cer,  # of the readable ones
        "unreadable_test_labels": len(test) - len(known),
        "seconds": round(seconds, 1),
        **({"train_args": shlex.join(extra)} if extra else {}),
    }
    if self_training:  # the pseudo-labels each round trained on: how many rounds ran, and with what
        row["pseudo_labels"] = [r["pseudo_labels"] for r in self_training["rounds"]]
    print(json.dumps(row), flush=True)
    return row


def _fits(name: str, mode: str, size: int) -> bool:
    """Whether a run of a real site leaves enough test images (and, for --unlabelled, others to add)."""
    pool, test = pool_and_test(name)
    return test is not None or (mode != "pretrained+unlabelled" and 0 < size <= len(pool) - MIN_TEST)


def load() -> dict:
    if RESULTS.exists():
        return json.loads(RESULTS.read_text())
    return {"runs": []}


def store(data: dict, row: dict) -> None:
    key = ("set", "mode", "size", "seed")
    data["runs"] = [r for r in data["runs"] if any(r[k] != row[k] for k in key)] + [row]
    data.update(version=__version__, machine=machine(), command="python benchmarks/label_efficiency.py")
    report.save("label_efficiency", data)
    plot(data)


def plot(data: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [s for s in (*SETS, *SITES) if any(r["set"] == s for r in data["runs"])]
    if not sets:
        return
    fig, axes = plt.subplots(1, len(sets), figsize=(4 * len(sets), 3.4), squeeze=False)
    for ax, name in zip(axes[0], sets):
        for mode in MODES:
            runs = [r for r in data["runs"] if r["set"] == name and r["mode"] == mode]
            sizes = sorted({r["size"] for r in runs})
            means = [
                sum(r["test_sequence_accuracy"] for r in runs if r["size"] == s)
                / sum(1 for r in runs if r["size"] == s)
                for s in sizes
            ]
            if sizes:
                ax.plot(sizes, [100 * m for m in means], marker="o", label=mode)
        ax.set_xscale("log")
        ticks = sorted({r["size"] for r in data["runs"] if r["set"] == name})
        ax.minorticks_off()
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_title(name)
        ax.set_xlabel("labelled images")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test sequence accuracy, %")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(BENCH / "results" / "label_efficiency.png", dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=list(SETS))
    p.add_argument("--modes", nargs="+", choices=MODES, help="default: all")
    p.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="0: the whole pool")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--minutes", type=float, default=4.0, help="cap per training run")
    p.add_argument("--suite-200", action="store_true", help="every suite style, pretrained, 200 labels")
    p.add_argument(
        "--rerun",
        action="store_true",
        help="run every row already in the results again, of --modes when given, whatever --sets/--sizes/"
        "--seeds say (after a change of defaults, or of the general model: the scratch rows do not use it)",
    )
    p.add_argument(
        "--train-args",
        metavar="ARGS",
        help="a probe: these extra train arguments (e.g. '--preset small'); rows are printed, not stored",
    )
    args = p.parse_args()
    data = load()
    if args.train_args:
        extra = tuple(shlex.split(args.train_args))
        for name in args.sets:
            for size in args.sizes:
                for mode in args.modes or ["pretrained"]:
                    for seed in args.seeds:
                        run_one(name, mode, size, seed, args.minutes, extra)
        return
    if args.rerun:
        for row in [r for r in data["runs"] if r["mode"] in (args.modes or MODES)]:
            store(data, run_one(row["set"], row["mode"], row["size"], row["seed"], args.minutes))
        return
    if args.suite_200:
        for name in SUITE:
            for seed in args.seeds:
                store(data, run_one(name, "pretrained", 200, seed, args.minutes))
        return
    for name in args.sets:
        for size in args.sizes:
            for mode in args.modes or MODES:
                if name in SITES and not _fits(name, mode, size):
                    continue  # a small site: every image not labelled is a test image
                for seed in args.seeds:
                    store(data, run_one(name, mode, size, seed, args.minutes))


if __name__ == "__main__":
    main()
