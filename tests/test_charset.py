"""Constrained decoding (`--charset`): scores of other classes are masked before decoding, and the other
case counts for a character whose case the charset leaves out. The same code behind the Python API, the
CLI and the HTTP service."""

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from captcha_crnn import Recognizer
from captcha_crnn.cli.main import main
from captcha_crnn.data.tokenizer import CTCTokenizer
from captcha_crnn.errors import LabelError
from captcha_crnn.serving.app import create_app


def frames(rows: list[dict[str, float]], charset: str) -> np.ndarray:
    """(T, C) log-probabilities from per-frame {character: probability} (the rest spread evenly; "" is
    the blank)."""
    classes = len(charset) + 1
    out = np.empty((len(rows), classes))
    for t, row in enumerate(rows):
        rest = (1 - sum(row.values())) / (classes - len(row))
        out[t] = rest
        for ch, p in row.items():
            out[t, 0 if ch == "" else charset.index(ch) + 1] = p
    return np.log(out)


def test_a_masked_class_gives_the_best_allowed_character_not_a_missing_one():
    tok = CTCTokenizer("0123456789OIl")
    lp = frames([{"O": 0.6, "0": 0.3}, {"": 0.9}, {"l": 0.5, "1": 0.4}], tok.charset)
    assert tok.greedy_decode(lp)[0] == "Ol"
    text, confidence = tok.constrain("0123456789").decode(lp)
    assert text == "01"
    assert 0.5 < confidence <= 1.0  # renormalised over the kept classes: 0.3/0.4, 0.9/.., 0.4/0.5


def test_the_other_case_counts_only_when_the_charset_leaves_it_out():
    tok = CTCTokenizer("abAB")
    lp = frames([{"A": 0.5, "b": 0.3}], tok.charset)
    assert tok.constrain("ab").decode(lp)[0] == "a"  # A's 0.5 counts for a
    assert tok.constrain("aAb").decode(lp)[0] == "A"  # both cases allowed: A stays A
    assert tok.constrain("B").decode(lp)[0] == "B"  # b's 0.3 counts for B, nothing else is allowed


def test_projected_scores_are_log_probabilities():
    tok = CTCTokenizer("0123456789abc")
    lp = np.log(np.random.default_rng(0).dirichlet(np.ones(14), size=7))
    projected = tok.constrain("19c").project(lp)
    assert projected.shape == (7, 4)
    np.testing.assert_allclose(np.exp(projected).sum(axis=1), 1.0, rtol=1e-9)


@pytest.mark.parametrize(
    ("allowed", "message"), [("01x", "'x'"), ("", "non-empty"), ("0 1", "without spaces")]
)
def test_a_charset_the_model_cannot_read_is_refused(allowed, message):
    with pytest.raises(LabelError, match=message):
        CTCTokenizer("0123456789").constrain(allowed)


@pytest.fixture(scope="module")
def model_file(reading_model):
    return reading_model


@pytest.fixture(scope="module")
def recognizer(model_file):
    return Recognizer.load(model_file)


@pytest.fixture(scope="module")
def images(captcha_dir):
    return sorted(captcha_dir.glob("*.png"))[:6]


def test_python_api_restricts_what_is_read(recognizer, images):
    free = recognizer.predict(images)
    same = recognizer.predict(images, charset="0123456789")  # masking nothing changes nothing
    assert [p.text for p in same] == [p.text for p in free]
    narrow = recognizer.predict(images, charset="01")
    assert all(set(p.text) <= set("01") for p in narrow)
    assert any(set(p.text) - set("01") for p in free)  # so the restriction did something


def test_cli_predict_and_evaluate_take_charset(model_file, captcha_dir, images, capsys):
    model = str(model_file)
    assert main(["predict", model, *map(str, images), "--json", "--charset", "01"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(images) and all(set(r["text"]) <= set("01") for r in rows)
    assert main(["evaluate", model, str(captcha_dir), "--json", "--charset", "0123456789"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 48
    assert main(["evaluate", model, str(captcha_dir), "--json", "--charset", "01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # labels have digits the charset leaves out
    assert err.startswith("error: ") and err.endswith("(--charset '01')")
    assert main(["predict", model, str(images[0]), "--charset", "0z"]) == 2
    assert "'z'" in capsys.readouterr().err


def test_service_takes_charset_per_request(recognizer, model_file, images):
    app = create_app(recognizer, str(model_file))
    with TestClient(app) as client:
        body = images[0].read_bytes()
        one = client.post("/v1/recognize?charset=01", content=body)
        assert one.status_code == 200 and set(one.json()["text"]) <= set("01")
        assert one.json()["text"] == recognizer.predict(images[0], charset="01").text
        files = [("files", (p.name, p.read_bytes(), "image/png")) for p in images]
        batch = client.post("/v1/recognize/batch", params={"charset": "23"}, files=files)
        assert batch.status_code == 200
        assert [r["text"] for r in batch.json()] == [p.text for p in recognizer.predict(images, charset="23")]
        bad = client.post("/v1/recognize?charset=0x", content=body)
        assert bad.status_code == 422 and "'x'" in bad.json()["detail"]
