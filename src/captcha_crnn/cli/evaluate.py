"""`captcha-crnn evaluate`: score a model on labelled images, optionally with a report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from captcha_crnn.cli.common import (
    add_label_options,
    add_model_argument,
    add_reading_options,
    check_numbers,
    load_recognizer,
    print_metrics,
)


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a model on labelled images",
        description="Print count, sequence accuracy, character error rate, character accuracy "
        "and mean CTC loss, then each wrong image as 'file: truth -> prediction'.",
    )
    add_model_argument(p)
    p.add_argument("data", type=Path, metavar="DATA", help="folder of labelled images")
    add_label_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write a report into DIR: prediction grid (wrong images first), most confused "
        "characters, per-character accuracy, and a self-contained report.html",
    )
    add_reading_options(
        p,
        "also score the answers: each label and reading taken as an expression (arithmetic captchas: "
        "12×4= -> 48); every label must solve. Adds an answer accuracy (--json: answer_accuracy)",
    )
    p.add_argument(
        "--ignore-case",
        action="store_true",
        help="score without regard to case: labels and readings are folded to lower case",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captcha_crnn.data.labels import collect
    from captcha_crnn.inference.evaluate import evaluate

    check_numbers(args, at_least_1=("batch_size",))
    if args.report:
        from captcha_crnn.files import check_apart
        from captcha_crnn.reporting.report import check_report_dir

        check_apart(args.report, args.data, args.recursive, "--report")
        check_report_dir(args.report)  # fail before the work, not after
    recognizer, _ = load_recognizer(args)  # its options checked before the folder is read
    items = collect(args.data, args.labels, args.label_pattern, args.recursive)
    result = evaluate(
        recognizer,
        items,
        progress=True,
        charset=args.charset,
        ignore_case=args.ignore_case,
        solve=args.solve,
        length=args.length,
    )
    if args.report:
        from captcha_crnn.reporting.report import write_report

        page = write_report(result, args.report, str(args.model), str(args.data))
        print(f"report: {page}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print_metrics(result.to_dict(), f"{args.model} on {args.data}:")
    if result.errors:
        # Most confident first: a reading the model is sure of that disagrees with its label is often a
        # wrong label (three of tii-digits' last six errors were).
        print(f"wrong ({len(result.errors)}, most confident first):")
        for err in sorted(result.errors, key=lambda e: -float(e["confidence"])):
            line = f"  {err['file']}: {err['label']} -> {err['prediction']} ({float(err['confidence']):.2f})"
            if args.solve:
                right = err["answer"] == err["true_answer"]
                line += (
                    " (answer right)"
                    if right
                    else f" (answer {_shown(err['answer'])}, not {err['true_answer']})"
                )
            print(line)
    return 0


def _shown(value: object) -> str:
    return "none" if value is None else str(value)
