"""Self-training (`train DATA --unlabelled DIR`): unlabelled images of the same style count too.

Round 0 trains on the labelled images. Each later round reads the unlabelled images with the last
round's model, keeps the readings it is at least `pseudo_threshold` sure of as labels (pseudo-labels),
and trains again from that model on the labelled plus pseudo-labelled images, for LATER_ROUNDS_SHARE of
the first round's batches on the fixed schedule (it starts from a model that already reads the site).
Validation stays on the same labelled images every round (the seeded split), so each round is judged on
real labels only.
Earlier rounds' run folders are kept under RUN/self-training/; the last round is the run itself, and
its run.json records the threshold, the rounds and how many pseudo-labels each round used.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from captcha_crnn.data.labels import LabelledImage, find_images
from captcha_crnn.errors import CaptchaCrnnError, ImageError, one_line
from captcha_crnn.files import atomic_write_text
from captcha_crnn.options import TrainOptions
from captcha_crnn.training import rundir

if TYPE_CHECKING:
    from captcha_crnn.training.train import TrainResult

log = logging.getLogger("captcha_crnn")

LATER_ROUNDS_SHARE = 0.5  # of --steps, for each round after the first (docs/accuracy.md, session 12)


def self_train(opts: TrainOptions) -> TrainResult:
    from captcha_crnn.training.train import train

    unlabelled = _validate(opts)
    run = Path(opts.out) if opts.out else rundir.default_run_dir()
    rundir.existing_run(run, opts)  # an existing run is refused (without --force) before any training
    base = replace(opts, unlabelled=None, out=run)
    rounds: list[dict] = []
    extra: list[LabelledImage] = []
    result = None
    for n in range(opts.rounds + 1):
        last = n == opts.rounds
        out = run if last else run / "self-training" / f"round-{n}"
        round_opts = replace(base, out=out, force=opts.force if last else True)
        if result is not None:  # start from the last round's model, for fewer batches
            steps = max(1, round(opts.steps * LATER_ROUNDS_SHARE))
            round_opts = replace(round_opts, init=result.model_path, steps=steps)
        log.info("self-training round %d of %d: %d pseudo-labelled images", n, opts.rounds, len(extra))
        result = train(round_opts, extra)
        rounds.append(
            {
                "round": n,
                "pseudo_labels": len(extra),
                "val_seq_acc": result.val_metrics.get("sequence_accuracy"),
                "run": str(out),
            }
        )
        if not last:
            extra = pseudo_labels(result.model_path, unlabelled, opts.pseudo_threshold)
    _record(run, opts, len(unlabelled), rounds)
    assert result is not None  # rounds >= 1: the loop ran
    return result


def _validate(opts: TrainOptions) -> list[Path]:
    if opts.resume:
        raise CaptchaCrnnError("--resume does not work with --unlabelled; start the run again")
    if opts.data is None:
        raise CaptchaCrnnError("--unlabelled needs a DATA folder of labelled images")
    if not 0 < opts.pseudo_threshold < 1:
        raise CaptchaCrnnError(f"--pseudo-threshold must be between 0 and 1, got {opts.pseudo_threshold}")
    if opts.rounds < 1:
        raise CaptchaCrnnError(f"--rounds must be at least 1, got {opts.rounds}")
    images = find_images(Path(opts.unlabelled))  # type: ignore[arg-type]
    if Path(opts.unlabelled).resolve() == Path(opts.data).resolve():  # type: ignore[arg-type]
        raise CaptchaCrnnError(
            f"{one_line(opts.unlabelled)}: --unlabelled must not be the labelled DATA folder"
        )
    return images


def pseudo_labels(model: Path, images: list[Path], threshold: float) -> list[LabelledImage]:
    """The model's readings of `images` that it is at least `threshold` sure of, as labels."""
    from captcha_crnn.inference.recognizer import Recognizer

    recognizer = Recognizer.load(model)
    kept = []
    for path, scores in recognizer.stream(images):
        if isinstance(scores, ImageError):
            continue
        pred = recognizer.decode(scores)
        if pred.text and pred.confidence >= threshold:
            kept.append(LabelledImage(path, pred.text))
    log.info(
        "pseudo-labels: %d of %d unlabelled images read with confidence >= %g",
        len(kept),
        len(images),
        threshold,
    )
    return kept


def _record(run: Path, opts: TrainOptions, unlabelled: int, rounds: list[dict]) -> None:
    record_path = run / "run.json"
    record = json.loads(record_path.read_text())
    record["self_training"] = {
        "unlabelled": str(opts.unlabelled),
        "unlabelled_images": unlabelled,
        "threshold": opts.pseudo_threshold,
        "rounds": rounds,
    }
    atomic_write_text(record_path, json.dumps(record, indent=2))
