"""Pictures and the evaluation report: files exist, are valid and sanely sized, and say the right things."""

import csv
import re
import shutil

import pytest
from PIL import Image

from captcha_crnn.cli.main import main
from captcha_crnn.reporting.analysis import MISSING, confusions, per_char_accuracy


def assert_png(path, min_side=200, max_side=6000):
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert min_side <= img.width <= max_side and min_side <= img.height <= max_side, img.size


def test_confusions_on_a_hand_made_example():
    pairs = [("7041", "7091"), ("7041", "7041"), ("abcde", "abce"), ("ab", "abx"), ("n4", "m4"), ("n", "m")]
    counts = confusions(pairs)
    assert counts == {("4", "9"): 1, ("d", MISSING): 1, (MISSING, "x"): 1, ("n", "m"): 2}
    assert counts.most_common(1) == [(("n", "m"), 2)]


def test_per_char_accuracy_on_a_hand_made_example():
    stats = {s.char: s for s in per_char_accuracy([("7041", "7091"), ("7041", "7041"), ("nn", "n")])}
    assert (stats["4"].total, stats["4"].correct) == (2, 1)
    assert (stats["7"].total, stats["7"].correct) == (2, 2)
    assert (stats["n"].total, stats["n"].correct) == (2, 1)
    assert stats["4"].accuracy == 0.5
    assert per_char_accuracy([("7041", "7091"), ("7041", "7041")])[0].char == "4"  # worst first


def test_training_writes_curves(trained_run):
    assert_png(trained_run / "curves.png")


def test_evaluate_report_files(trained_run, captcha_dir, tmp_path, capsys):
    report = tmp_path / "report"
    assert (
        main(["evaluate", str(trained_run / "model.pt"), str(captcha_dir), "--report", str(report), "--json"])
        == 0
    )
    import json

    result = json.loads(capsys.readouterr().out)
    for name in ["predictions.png", "confusions.png", "per_char.png"]:
        assert_png(report / name, min_side=180)  # a chart of one to three bars is 2 inches at 90 dpi
    page = (report / "report.html").read_text()
    assert 2_000 < len(page) < 20_000_000
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert 'src="http' not in page and "<script" not in page  # self-contained: images are embedded
    assert page.count("data:image/png;base64,") == 3
    metrics = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]+)</td></tr>", page))
    assert metrics["images"] == "48"
    assert metrics["wrong images"] == str(len(result["errors"]))
    assert metrics["sequence accuracy"] == f"{result['sequence_accuracy']:.2%}"
    assert f"Wrong images ({len(result['errors'])})" in page
    rows = list(csv.DictReader((report / "per_char.csv").open()))
    assert sum(int(r["occurrences"]) for r in rows) == 48 * 4
    confusion_rows = list(csv.DictReader((report / "confusions.csv").open()))
    assert all(int(r["count"]) >= 1 for r in confusion_rows)
    # a second report into the same folder is refused, the first one kept
    before = (report / "report.html").read_bytes()
    assert main(["evaluate", str(trained_run / "model.pt"), str(captcha_dir), "--report", str(report)]) == 2
    assert "already holds a report" in capsys.readouterr().err
    assert (report / "report.html").read_bytes() == before


def test_preview_grid_and_statistics(captcha_dir, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(captcha_dir, data)
    (data / "broken.png").write_bytes(b"not a png")
    with (data / "labels.csv").open("a") as fh:
        fh.write("broken.png,1234\n")
    out = tmp_path / "preview.png"
    assert main(["preview", str(data), "--out", str(out), "--count", "12"]) == 0
    text = capsys.readouterr().out
    assert "48 readable, 1 unreadable" in text
    assert "100x40 (48)" in text
    assert "label lengths: 4 (48)" in text
    assert "characters:    10:" in text
    assert "broken.png" in text
    assert_png(out)
    assert main(["preview", str(data), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["preview", str(data), "--out", str(out), "--force", "--count", "3"]) == 0


@pytest.mark.parametrize("n", [1, 60])
def test_prediction_grid_any_size(tmp_path, n):
    import numpy as np

    from captcha_crnn.reporting.plots import Tile, image_grid

    tiles = [Tile(np.full((40, 100, 3), 200, dtype=np.uint8), f"{i:04d}", wrong=i % 7 == 0) for i in range(n)]
    assert_png(image_grid(tiles, tmp_path / "g.png", "title"))


def test_characters_the_font_lacks_are_one_warning_line(tmp_path, caplog):
    import warnings

    import numpy as np

    from captcha_crnn.reporting.plots import Tile, image_grid

    tiles = [Tile(np.full((40, 100, 3), 200, dtype=np.uint8), caption) for caption in ("名字", "ab名")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's own warning would raise here
        assert_png(image_grid(tiles, tmp_path / "g.png", "title"), min_side=100)
    lines = [r.getMessage() for r in caplog.records if "no glyph" in r.getMessage()]
    assert lines == [
        f"{tmp_path / 'g.png'}: 2 character(s) have no glyph in the plot's font and show as boxes"
    ]
