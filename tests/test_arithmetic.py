"""Arithmetic captchas: the expression parser, generating them, and `--solve arithmetic` in predict,
evaluate, the Python API and the service. Models whose readings the tests choose (fixed_readers.py) make
the answers exact; one tiny model trained on generated expressions shows `train` takes them as text."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import asdict
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fixed_readers import image, reader
from isolated import run_without

from captcha_crnn import Recognizer
from captcha_crnn.arithmetic import CHARSET, ENDINGS, GLYPHS, LENGTH, UnsolvableError, expression, solve
from captcha_crnn.cli.main import main
from captcha_crnn.data.synthetic import Renderer, Style
from captcha_crnn.errors import CaptchaCrnnError
from captcha_crnn.serving.app import app_from_env, create_app

# ---------------------------------------------------------------- the parser


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12×4=", 48),
        ("12x4", 48),
        ("12*4=?", 48),
        ("12X4", 48),  # an upper-case reading of x
        ("84÷7", 12),
        ("84/7=", 12),
        ("3+8=?", 11),
        ("3+8?", 11),
        ("3 + 8 = ?", 11),
        ("  80 -17  ", 63),
        ("10−3", 7),  # U+2212 minus
        ("3-8", -5),
        ("0÷5=", 0),
        ("99×99=?", 9801),
        ("2+3×4", 14),
        ("2×3+4", 10),
        ("10-2-3", 5),
        ("8÷2÷2", 2),
    ],
)
def test_solve_reads_every_glyph_variant_spacing_and_ending(text, value):
    assert solve(text) == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("3+", "a number is missing after '+'"),
        ("", "no expression"),
        ("=?", "no expression"),
        ("42=", "no operator"),
        ("+3", "a number is missing at the start"),
        ("3++4", "a number is missing after '+'"),
        ("2**3", "a number is missing after '*'"),  # Python's power operator is not arithmetic here
        ("1 2+3", "an operator is missing before '2'"),
        ("3+8?=", "'?' is neither a digit nor an operator"),
        ("3+8==", "'=' is neither a digit nor an operator"),
        ("a+b", "'a' is neither a digit nor an operator"),
        ("__import__('os')", "'_' is neither a digit nor an operator"),
        ("7÷2", "7 / 2 is not a whole number"),
        ("5/0", "division by zero"),
        ("3+\n", "a number is missing after '+'"),
        ("1234567890+1", "too long a number"),
    ],
)
def test_solve_refuses_what_does_not_parse_in_one_line(text, why):
    with pytest.raises(UnsolvableError) as caught:
        solve(text)
    message = str(caught.value)
    assert isinstance(caught.value, CaptchaCrnnError)
    assert message.startswith("cannot solve '") and message.endswith(why) and "\n" not in message


def test_expressions_are_whole_non_negative_and_use_every_variant():
    rng = random.Random(7)
    drawn = [expression(rng) for _ in range(3000)]
    again = random.Random(7)
    assert drawn == [expression(again) for _ in range(3000)]  # one seed, one list
    glyphs = {g for variants in GLYPHS.values() for g in variants}
    seen_glyphs, seen_endings = set(), set()
    for text in drawn:
        assert set(text) <= set(CHARSET) and LENGTH[0] <= len(text) <= LENGTH[1], text
        body = text.rstrip("=?")
        seen_endings.add(text[len(body) :])
        (op,) = [ch for ch in body if not ch.isdigit()]
        a, b = (int(n) for n in body.split(op))
        assert 0 <= a <= 99 and 0 <= b <= 99
        seen_glyphs.add(op)
        value = solve(text)
        assert value >= 0, text  # subtraction never goes negative
        if op in "÷/":
            assert b != 0 and value * b == a, text  # division comes out whole
    assert seen_glyphs == glyphs and seen_endings == set(ENDINGS)


def test_the_default_font_draws_every_character():
    """DroidSansMono (from the captcha package) must have × and ÷, or they would be drawn as boxes."""
    ttlib = pytest.importorskip("fontTools.ttLib")
    from captcha_crnn.data.looks import font_path

    cmap = ttlib.TTFont(font_path("droid-mono")).getBestCmap()
    assert [ch for ch in CHARSET if ord(ch) not in cmap] == []
    assert Renderer(Style(kind="arithmetic"), 0).generator.look.fonts == ("droid-mono",)


# ---------------------------------------------------------------- generating


def test_style_kind_fixes_the_charset_and_lengths_and_round_trips():
    style = Style(kind="arithmetic", charset="abc", length=(1, 2))
    drawn = style.generator()  # what its labels hold, which training checks
    assert (drawn.charset, drawn.length) == (CHARSET, LENGTH)
    assert Style.from_dict(json.loads(json.dumps(asdict(style)))) == style
    assert Style().kind == "text"
    with pytest.raises(CaptchaCrnnError, match="unknown kind 'sums'"):
        Style(kind="sums")
    with pytest.raises(CaptchaCrnnError, match="do not go together"):
        Style(kind="arithmetic", recipe="general")


def labels(folder: Path) -> list[tuple[str, str]]:
    with (folder / "labels.csv").open(encoding="utf-8") as fh:
        return [tuple(row) for row in list(csv.reader(fh))[1:]]


def test_generate_arithmetic_labels_solve_and_repeat_per_seed(tmp_path, capsys):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        assert (
            main(
                [
                    "generate",
                    str(tmp_path / name),
                    "--kind",
                    "arithmetic",
                    "--count",
                    "12",
                    "--seed",
                    str(seed),
                ]
            )
            == 0
        )
    rows = labels(tmp_path / "a")
    assert len(rows) == 12
    for file, label in rows:
        solve(label)
        assert file == f"{int(file[:2]):02d}.png" or file.endswith(
            f"_{label}.png"
        )  # index alone unless ASCII
    assert any("_" not in file for file, _ in rows)  # an operator other than x makes an index-only name
    assert rows == labels(tmp_path / "b")
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f, _ in rows)
    assert [lbl for _, lbl in rows] != [lbl for _, lbl in labels(tmp_path / "c")]


@pytest.mark.parametrize("option", [["--charset", "0123"], ["--length", "5"]])
def test_generate_arithmetic_refuses_charset_and_length(tmp_path, capsys, option):
    assert main(["generate", str(tmp_path / "x"), "--kind", "arithmetic", "--count", "2", *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {option[0]}: not for --kind arithmetic") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_train_synthetic_kind_arithmetic_streams_expressions(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--synthetic", "32", "--kind", "arithmetic", "--max-epochs", "1", "--batch-size", "8"]
    assert main([*args, "--out", str(run), "--no-progress"]) == 0
    record = json.loads((run / "run.json").read_text())
    assert (
        set(record["charset"]) == set(CHARSET)
        and record["options"]["synthetic_style"]["kind"] == "arithmetic"
    )
    capsys.readouterr()
    assert main([*args, "--length", "4", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: --length: not for --kind arithmetic")


def test_train_learns_generated_expressions_and_evaluate_scores_their_answers(tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    assert (
        main(["-q", "generate", str(data), "--kind", "arithmetic", "--count", "32", "--size", "120x40"]) == 0
    )
    args = [
        "--max-epochs",
        "1",
        "--batch-size",
        "16",
        "--no-progress",
        "--init",
        "none",
        "--charset",
        CHARSET,
    ]
    assert main(["-q", "train", str(data), "--out", str(run), *args]) == 0
    assert json.loads((run / "run.json").read_text())["charset"] == CHARSET
    capsys.readouterr()
    assert main(["evaluate", str(run / "model.pt"), str(data), "--solve", "arithmetic", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 32 and 0 <= result["sequence_accuracy"] <= result["answer_accuracy"] <= 1
    wrong = [e for e in result["errors"] if e["answer"] != e["true_answer"]]
    assert result["answer_accuracy"] == pytest.approx(1 - len(wrong) / 32)
    truths = dict((str(data / f), lbl) for f, lbl in labels(data))
    assert all(e["true_answer"] == solve(truths[e["file"]]) for e in result["errors"])


# ---------------------------------------------------------------- solving what a model reads


@pytest.fixture(scope="module")
def sums(tmp_path_factory):
    """A model reading 12×4= from bright images and 3+ (which has no answer) from dark ones, and one
    image of each."""
    root = tmp_path_factory.mktemp("sums")
    model = reader(root / "sums.onnx", CHARSET, "12×4=", "3+")
    return model, image(root / "bright.png", True), image(root / "dark.png", False)


def test_predict_solve_prints_the_answer_or_a_question_mark(sums, capsys):
    model, bright, dark = sums
    assert main(["predict", str(model), str(bright), str(dark), "--solve", "arithmetic"]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(row[0], row[1], row[3]) for row in lines] == [
        (str(bright), "12×4=", "48"),
        (str(dark), "3+", "?"),
    ]
    assert main(["predict", str(model), str(bright)]) == 0
    assert capsys.readouterr().out.count("\t") == 2  # no answer column unless asked


def test_predict_solve_json_has_answer_or_null_and_why(sums, capsys):
    model, bright, dark = sums
    assert main(["predict", str(model), str(bright), str(dark), "--solve", "arithmetic", "--json"]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["text"] == "12×4=" and first["answer"] == 48 and "answer_error" not in first
    assert second["text"] == "3+" and second["answer"] is None
    assert second["answer_error"] == "cannot solve '3+': a number is missing after '+'"
    assert main(["predict", str(model), str(bright), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"file", "text", "confidence"}


def test_predict_and_evaluate_solve_an_onnx_model_without_torch(sums, tmp_path):
    model, bright, _ = sums
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "a.png").write_bytes(bright.read_bytes())
    (folder / "labels.csv").write_text("a.png,12x4=\n", encoding="utf-8")
    code = (
        "from captcha_crnn.cli.main import main; "
        f"assert main(['predict', {str(model)!r}, {str(bright)!r}, '--solve', 'arithmetic']) == 0; "
        f"assert main(['evaluate', {str(model)!r}, {str(folder)!r}, '--solve', 'arithmetic', '--json']) == 0"
    )
    out = run_without(code, ("torch", "lightning")).splitlines()
    assert out[0].endswith("\t48")
    assert json.loads(out[1])["answer_accuracy"] == 1.0


@pytest.fixture
def scored(sums, tmp_path):
    """Four labelled images for the sums model: read right; read as another glyph of the same sum; read
    wrong; read as something that does not solve."""
    model, bright, dark = sums
    rows = [("right.png", bright, "12×4="), ("glyph.png", bright, "12x4="), ("wrong.png", bright, "3+8")]
    rows.append(("unsolved.png", dark, "2+1=?"))
    for name, source, _ in rows:
        (tmp_path / name).write_bytes(source.read_bytes())
    (tmp_path / "labels.csv").write_text("".join(f"{n},{lbl}\n" for n, _, lbl in rows), encoding="utf-8")
    return model, tmp_path


def test_evaluate_solve_json_scores_text_and_answers(scored, capsys):
    model, folder = scored
    assert main(["evaluate", str(model), str(folder), "--solve", "arithmetic", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 4 and result["sequence_accuracy"] == 0.25
    assert result["answer_accuracy"] == 0.5  # right, and the other glyph for ×
    answers = {Path(e["file"]).name: (e["answer"], e["true_answer"]) for e in result["errors"]}
    assert answers == {"glyph.png": (48, 48), "wrong.png": (48, 11), "unsolved.png": (None, 3)}
    assert main(["evaluate", str(model), str(folder), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "answer_accuracy" not in plain and "answer" not in plain["errors"][0]


def test_evaluate_solve_table_has_an_answer_row(scored, capsys):
    model, folder = scored
    assert main(["evaluate", str(model), str(folder), "--solve", "arithmetic"]) == 0
    out = capsys.readouterr().out
    assert "answer accuracy" in out and "50.00%" in out
    assert "glyph.png: 12x4= -> 12×4= (1.00) (answer right)" in out  # (the reading's confidence)
    assert "unsolved.png: 2+1=? -> 3+ (1.00) (answer none, not 3)" in out


def test_evaluate_solve_refuses_a_label_without_an_answer(scored, capsys):
    model, folder = scored
    (folder / "labels.csv").write_text("right.png,12×4=\nwrong.png,12×\n", encoding="utf-8")
    assert main(["-q", "evaluate", str(model), str(folder), "--solve", "arithmetic"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "wrong.png: label '12×' has no answer: cannot solve" in err


def test_python_api_solves(sums):
    model, bright, dark = sums
    rec = Recognizer.load(model)
    assert rec.predict(bright, solve="arithmetic").answer == 48
    pred = rec.predict([dark], solve="arithmetic")[0]
    assert pred.answer is None and pred.answer_error.startswith("cannot solve '3+'")
    assert rec.predict(bright).answer is None and rec.predict(bright).answer_error is None
    with pytest.raises(CaptchaCrnnError, match="unknown solver 'algebra'"):
        rec.predict(bright, solve="algebra")


# ---------------------------------------------------------------- the service


def test_service_solve_adds_answers_to_one_and_batch(sums):
    model, bright, dark = sums
    app = create_app(Recognizer.load(model), str(model), solve="arithmetic")
    with TestClient(app) as client:
        body = client.post("/v1/recognize", content=bright.read_bytes()).json()
        assert body["text"] == "12×4=" and body["answer"] == 48 and "answer_error" not in body
        body = client.post("/v1/models/sums/recognize", content=dark.read_bytes()).json()
        assert body["answer"] is None and body["answer_error"].startswith("cannot solve '3+'")
        files = [("files", ("d.png", dark.read_bytes())), ("files", ("b.png", bright.read_bytes()))]
        batch = client.post("/v1/recognize/batch", files=files).json()
        assert [(b["file"], b["answer"]) for b in batch] == [("d.png", None), ("b.png", 48)]
        assert client.get("/v1/model").json()["solve"] == "arithmetic"
    with TestClient(create_app(Recognizer.load(model), str(model))) as client:
        body = client.post("/v1/recognize", content=bright.read_bytes()).json()
        assert set(body) == {"text", "confidence", "elapsed_ms"}  # unchanged without --solve


def test_one_request_can_ask_for_answers(sums):
    """?solve=arithmetic on a service started without --solve; an unknown solver is one 422 line."""
    model, bright, dark = sums
    with TestClient(create_app(Recognizer.load(model), str(model))) as client:
        solved = {"solve": "arithmetic"}
        body = client.post("/v1/recognize", params=solved, content=bright.read_bytes()).json()
        assert body["answer"] == 48
        files = [("files", ("d.png", dark.read_bytes())), ("files", ("b.png", bright.read_bytes()))]
        batch = client.post("/v1/models/sums/recognize/batch", params=solved, files=files).json()
        assert [b["answer"] for b in batch] == [None, 48] and batch[0]["answer_error"].startswith("cannot")
        plain = client.post("/v1/recognize", content=bright.read_bytes()).json()
        assert "answer" not in plain  # the next request without it is not solved
        bad = client.post("/v1/recognize", params={"solve": "algebra"}, content=bright.read_bytes())
        assert bad.status_code == 422
        assert bad.json() == {"detail": "unknown solve 'algebra'; choose from: arithmetic"}
        long = client.post("/v1/recognize", params={"charset": "0" * 600}, content=bright.read_bytes())
        assert long.status_code == 422 and long.json()["detail"].startswith("charset: String should have")


def test_serve_solve_reaches_the_workers(sums, monkeypatch, capsys):
    import uvicorn

    model, bright, _ = sums
    for name in ("MODEL", "MODELS", "SOLVE", "RELOAD", "FOLDERS", "THREADS"):
        monkeypatch.setenv(f"CAPTCHA_CRNN_{name}", "")  # restored after the test
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: None)
    assert main(["serve", str(model), "--solve", "arithmetic"]) == 0
    with TestClient(app_from_env()) as client:
        assert client.post("/v1/recognize", content=bright.read_bytes()).json()["answer"] == 48
    with pytest.raises(SystemExit) as exited:
        main(["serve", str(model), "--solve", "algebra"])
    assert exited.value.code == 2 and "invalid choice: 'algebra'" in capsys.readouterr().err
