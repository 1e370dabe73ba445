"""Arithmetic captchas end to end: does a model trained with default settings answer them?

    python benchmarks/arithmetic.py                       # 5000 to train on, 500 to test: the target
    python benchmarks/arithmetic.py --train-count 500     # a quick probe (not the target's numbers)

Generates TRAIN captchas (`generate --kind arithmetic`, seed 1) and TEST fresh ones (seed 2: another
random stream, so no test image is a training image, though a short expression such as 3+8 may be drawn
in both) into a temporary folder, trains with every default (`train DIR --out RUN`), then scores the
test set with `evaluate --solve arithmetic --json`: text accuracy (the expression read exactly) and
answer accuracy (its value right, whatever glyph was read for an operator). Target: answer accuracy
>= 98% with the defaults. Writes benchmarks/results/arithmetic.json: the accuracies, counts, seconds per
step and the commands run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from captcha_crnn.training.callbacks import epochs_recorded

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "arithmetic.json"
TARGET = 0.98
TRAIN_SEED, TEST_SEED = 1, 2


def captcha_crnn(*args: str) -> tuple[list[str], str, float]:
    """Run one CLI command; (the command, its stdout, seconds). A failure stops the benchmark."""
    command = [sys.executable, "-m", "captcha_crnn", *args]
    start = time.perf_counter()
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return command, done.stdout, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-count", type=int, default=5000)
    parser.add_argument("--test-count", type=int, default=500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="arithmetic-") as tmp:
        train, test, run = Path(tmp, "train"), Path(tmp, "test"), Path(tmp, "run")
        generate = ("generate", "--kind", "arithmetic", "--count")
        steps = {
            "generate_train": (*generate, str(args.train_count), "--seed", str(TRAIN_SEED), str(train)),
            "generate_test": (*generate, str(args.test_count), "--seed", str(TEST_SEED), str(test)),
            "train": ("-q", "train", str(train), "--out", str(run), "--no-progress"),
            "evaluate": ("evaluate", str(run / "model.pt"), str(test), "--solve", "arithmetic", "--json"),
        }
        commands, seconds, outputs = {}, {}, {}
        for step, cli_args in steps.items():
            print(f"{step} ...", flush=True)
            command, outputs[step], seconds[step] = captcha_crnn(*cli_args)
            commands[step] = shlex.join(["captcha-crnn", *command[3:]]).replace(tmp, "$TMP")
        scores = json.loads(outputs["evaluate"])
        epochs = epochs_recorded(run / "metrics.csv")

    result = {
        "target": f"answer_accuracy >= {TARGET:.0%} on {args.test_count} fresh captchas",
        "met": scores["answer_accuracy"] >= TARGET,
        "text_accuracy": scores["sequence_accuracy"],
        "answer_accuracy": scores["answer_accuracy"],
        "cer": scores["cer"],
        "train_count": args.train_count,
        "test_count": scores["count"],
        "text_errors": len(scores["errors"]),
        "answer_errors": sum(e["answer"] != e["true_answer"] for e in scores["errors"]),
        "wrong_examples": [
            {k: e[k] for k in ("label", "prediction", "answer", "true_answer")} for e in scores["errors"][:20]
        ],
        "epochs": epochs,
        "seconds": {step: round(s, 1) for step, s in seconds.items()}
        | {"total": round(sum(seconds.values()), 1)},
        "commands": commands,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    sys.path.insert(0, str(HERE))
    import report

    report.write_report()  # BENCHMARKS.md's section from the file just written
    print(
        f"text accuracy {result['text_accuracy']:.2%}, answer accuracy {result['answer_accuracy']:.2%} "
        f"(target {TARGET:.0%}: {'met' if result['met'] else 'NOT met'}), {result['seconds']['total']:.0f} s "
        f"-> {RESULT}"
    )


if __name__ == "__main__":
    main()
