"""`evaluate --report DIR`: prediction grid, confusions, per-character accuracy, one self-contained HTML."""

from __future__ import annotations

import base64
import csv
import html
import random
from pathlib import Path

from captcha_crnn.data.images import display_pixels, open_image
from captcha_crnn.errors import CaptchaCrnnError, ImageError
from captcha_crnn.files import check_writable_folder
from captcha_crnn.inference.evaluate import Evaluation
from captcha_crnn.reporting.analysis import confusions, per_char_accuracy, show_char
from captcha_crnn.reporting.plots import Tile, char_accuracy_chart, confusion_chart, image_grid

REPORT_FILES = (
    "report.html",
    "predictions.png",
    "confusions.png",
    "per_char.png",
    "confusions.csv",
    "per_char.csv",
)
GRID_CELLS = 48  # wrong images first, then right ones, up to this many
TOP_CONFUSIONS = 20


def check_report_dir(out: Path) -> Path:
    """`out` may take a report: a new folder or one without a report (an earlier one is never
    overwritten). Nothing is created: write_report makes the folder once the evaluation has succeeded."""
    out = Path(out)
    check_writable_folder(out)
    clash = [name for name in REPORT_FILES if (out / name).exists()]
    if clash:
        raise CaptchaCrnnError(f"{out}: already holds a report ({', '.join(clash)}); choose another folder")
    return out


def grid_tiles(evaluation: Evaluation, cells: int = GRID_CELLS, seed: int = 0) -> tuple[list[Tile], str]:
    wrong = [r for r in evaluation.records if r["prediction"] != r["label"]]
    right = [r for r in evaluation.records if r["prediction"] == r["label"]]
    shown_right = random.Random(seed).sample(right, min(len(right), max(0, cells - len(wrong))))
    chosen = wrong[:cells] + shown_right
    tiles = []
    for r in chosen:
        try:
            image = display_pixels(open_image(str(r["file"])))
        except ImageError:
            continue
        is_wrong = r["prediction"] != r["label"]
        caption = f"{r['label']} -> {r['prediction'] or '(empty)'}" if is_wrong else str(r["label"])
        tiles.append(Tile(image, caption, is_wrong))
    n_wrong = min(len(wrong), cells)
    if not wrong:
        shown = "none wrong"
    elif len(wrong) == 1:
        shown = "the wrong one first (red: truth -> prediction)"
    elif n_wrong == len(wrong):
        shown = f"all {len(wrong)} wrong ones first (red: truth -> prediction)"
    else:
        shown = f"the first {n_wrong} of {len(wrong)} wrong ones (red: truth -> prediction)"
    title = f"{len(tiles)} of {evaluation.count} images, {shown}"
    return tiles, title


def _png_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_report(evaluation: Evaluation, out: Path, model: str, data: str) -> Path:
    """Write every report file into `out` (checked with check_report_dir) and return report.html."""
    out.mkdir(parents=True, exist_ok=True)
    pairs = [(str(r["label"]), str(r["prediction"])) for r in evaluation.records]
    confused = confusions(pairs).most_common()
    chars = per_char_accuracy(pairs)

    tiles, grid_title = grid_tiles(evaluation)
    image_grid(tiles, out / "predictions.png", grid_title)
    confusion_chart(confused[:TOP_CONFUSIONS], out / "confusions.png")
    char_accuracy_chart(chars, out / "per_char.png")
    with (out / "confusions.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["truth", "prediction", "count"])
        writer.writerows((t, p, n) for (t, p), n in confused)
    with (out / "per_char.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["char", "occurrences", "correct", "accuracy"])
        writer.writerows((s.char, s.total, s.correct, f"{s.accuracy:.6f}") for s in chars)

    e = evaluation
    metrics = [
        ("images", f"{e.count}"),
        ("sequence accuracy", f"{e.sequence_accuracy:.2%}"),
        ("wrong images", f"{len(e.errors)}"),
        ("character error rate", f"{e.cer:.2%}"),
        ("character accuracy", f"{e.char_accuracy:.2%}"),
        ("mean CTC loss", f"{e.loss:.4f}"),
    ]
    esc = html.escape
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in metrics)
    conf_rows = (
        "".join(
            f"<tr><td>{esc(show_char(t))}</td><td>{esc(show_char(p))}</td><td>{n}</td></tr>"
            for (t, p), n in confused[:TOP_CONFUSIONS]
        )
        or '<tr><td colspan="3">no confusions</td></tr>'
    )
    char_rows = "".join(
        f"<tr><td>{esc(show_char(s.char))}</td><td>{s.total}</td><td>{s.correct}</td><td>{s.accuracy:.2%}</td></tr>"
        for s in chars
    )
    error_rows = (
        "".join(
            f"<tr><td>{esc(Path(str(r['file'])).name)}</td><td>{esc(str(r['label']))}</td>"
            f"<td>{esc(str(r['prediction']))}</td><td>{float(r['confidence']):.3f}</td></tr>"  # type: ignore[arg-type]
            for r in e.errors
        )
        or '<tr><td colspan="4">none</td></tr>'
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>captcha-crnn report: {esc(Path(data).name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; font-variant-numeric: tabular-nums; }}
td {{ font-family: ui-monospace, monospace; }}
img {{ max-width: 100%; height: auto; border: 1px solid #eee; }}
.cols {{ display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }}
.scroll {{ max-height: 24em; overflow-y: auto; }}
</style></head><body>
<h1>Evaluation report</h1>
<p>Model <code>{esc(model)}</code> on <code>{esc(data)}</code>.</p>
<h2>Metrics</h2>
<table id="metrics">{rows}</table>
<h2>Predictions</h2>
{_png_tag(out / "predictions.png", "prediction grid")}
<h2>Most confused characters</h2>
<div class="cols"><table id="confusions"><tr><th>truth</th><th>read as</th><th>count</th></tr>{conf_rows}</table>
{_png_tag(out / "confusions.png", "confusion chart")}</div>
<h2>Per-character accuracy</h2>
<div class="cols"><div class="scroll"><table id="per-char"><tr><th>char</th><th>occurrences</th><th>correct</th>
<th>accuracy</th></tr>{char_rows}</table></div>
{_png_tag(out / "per_char.png", "per-character accuracy chart")}</div>
<h2>Wrong images ({len(e.errors)})</h2>
<div class="scroll"><table id="errors"><tr><th>file</th><th>truth</th><th>prediction</th><th>confidence</th></tr>
{error_rows}</table></div>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
