"""Several models in one service: named routes, the listing, 404s that name the models, the command line
(names, folders, the shipped model, refusals), and --reload: a changed file is swapped in while serving,
requests in flight finish on the model they started with, and a broken file keeps the old model."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from fixed_readers import image, reader

from captcha_crnn import Recognizer
from captcha_crnn.cli.main import main
from captcha_crnn.data.images import InputPolicy
from captcha_crnn.errors import CaptchaCrnnError
from captcha_crnn.inference.backends import ONNX_FORMAT
from captcha_crnn.inference.recognizer import Prediction, Reading
from captcha_crnn.serving.app import app_from_env, create_app, create_models_app

DIGITS, LETTERS = "0123456789", "abc"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "digits": reader(root / "digits.onnx", DIGITS, "12", "7"),
        "letters": reader(root / "letters.onnx", LETTERS, "cab", "a"),
        "bright": image(root / "bright.png", True),
        "dark": image(root / "dark.png", False),
    }


@pytest.fixture(scope="module")
def client(files):
    models = [(name, Recognizer.load(files[name]), str(files[name])) for name in ("digits", "letters")]
    with TestClient(create_models_app(models)) as c:
        yield c


def read(client, url: str, data: bytes) -> str:
    response = client.post(url, content=data)
    assert response.status_code == 200, response.text
    return response.json()["text"]


def test_each_model_reads_at_its_own_routes_and_the_first_at_the_plain_ones(client, files):
    bright, dark = files["bright"].read_bytes(), files["dark"].read_bytes()
    assert read(client, "/v1/models/digits/recognize", bright) == "12"
    assert read(client, "/v1/models/letters/recognize", bright) == "cab"
    assert read(client, "/v1/models/letters/recognize", dark) == "a"
    assert read(client, "/v1/recognize", bright) == "12"
    batch = [("files", ("d.png", dark)), ("files", ("b.png", bright))]
    response = client.post("/v1/models/letters/recognize/batch", files=batch)
    assert [(b["file"], b["text"]) for b in response.json()] == [("d.png", "a"), ("b.png", "cab")]
    assert [b["text"] for b in client.post("/v1/recognize/batch", files=batch).json()] == ["7", "12"]
    assert client.get("/v1/model").json()["charset"] == DIGITS
    assert client.get("/v1/models/letters").json()["charset"] == LETTERS
    models = client.app.state.models
    assert models.get("digits").batcher is not models.get("letters").batcher  # one micro-batcher each


def test_the_listing_names_every_model(client, files):
    listing = client.get("/v1/models").json()
    assert listing["default"] == "digits"
    assert [(m["name"], m["charset"], m["model_file"]) for m in listing["models"]] == [
        ("digits", DIGITS, str(files["digits"])),
        ("letters", LETTERS, str(files["letters"])),
    ]
    assert listing["models"][0]["input"] == {
        "height": 32,
        "min_width": 64,
        "max_width": 64,
        "fixed_width": 64,
        "stretch": 1.0,
        "crop": False,
    }
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/models", "/v1/models/{name}", "/v1/models/{name}/recognize"} <= set(paths)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/v1/models/nope/recognize"),
        ("post", "/v1/models/nope/recognize/batch"),
        ("get", "/v1/models/nope"),
    ],
)
def test_an_unknown_model_is_404_listing_the_names(client, files, method, url):
    kwargs = {"files": [("files", ("b.png", files["bright"].read_bytes()))]} if method == "post" else {}
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == 404
    assert response.json() == {"detail": "no model named 'nope'; models: digits, letters"}


def test_a_restricted_charset_is_checked_against_the_named_model(client, files):
    bright = files["bright"].read_bytes()
    response = client.post("/v1/models/letters/recognize?charset=0", content=bright)
    assert response.status_code == 422 and "'0'" in response.json()["detail"]
    expected = Recognizer.load(files["digits"]).predict(files["bright"], charset="0123").text
    assert read(client, "/v1/models/digits/recognize?charset=0123", bright) == expected
    assert set(expected) <= set("0123")


def test_the_page_chooses_the_model_from_the_listing(client):
    page = client.get("/").text
    assert '<select id="models">' in page and 'fetch("v1/models")' in page
    assert "v1/models/${encodeURIComponent(" in page


def test_two_models_with_one_name_are_refused_when_the_app_is_made(files):
    rec = Recognizer.load(files["digits"])
    with pytest.raises(CaptchaCrnnError, match="two models are named 'a'"):
        create_models_app([("a", rec, "x.onnx"), ("a", rec, "y.onnx")])


# ---------------------------------------------------------------- the command line


@pytest.fixture
def serve_env(monkeypatch):
    """`serve` with uvicorn stubbed out; its environment variables are restored after the test."""
    import uvicorn

    for name in ("MODEL", "MODELS", "SOLVE", "RELOAD", "FOLDERS", "THREADS", "MAX_QUEUE"):
        monkeypatch.setenv(f"CAPTCHA_CRNN_{name}", "")
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    return calls


def test_serve_names_models_and_the_workers_serve_them_all(serve_env, files, capsys):
    assert main(["serve", str(files["digits"]), str(files["letters"]), "--name", "d,l"]) == 0
    assert serve_env and f"serving d ({files['digits']}), l ({files['letters']})" in capsys.readouterr().err
    assert (
        os.environ["CAPTCHA_CRNN_MODEL"] == str(files["digits"]) and os.environ["CAPTCHA_CRNN_RELOAD"] == ""
    )
    with TestClient(app_from_env()) as c:
        assert [m["name"] for m in c.get("/v1/models").json()["models"]] == ["d", "l"]
        assert read(c, "/v1/models/l/recognize", files["bright"].read_bytes()) == "cab"
        assert read(c, "/v1/recognize", files["bright"].read_bytes()) == "12"


def test_a_folder_serves_every_model_file_in_it_and_general_is_a_model(serve_env, files, tmp_path):
    for name in ("digits", "letters"):
        (tmp_path / f"{name}.onnx").write_bytes(files[name].read_bytes())
    (tmp_path / "notes.txt").write_text("not a model")
    assert main(["serve", "general", str(tmp_path)]) == 0
    assert json.loads(os.environ["CAPTCHA_CRNN_MODELS"]) == [
        ["general", "general"],
        ["digits", str(tmp_path / "digits.onnx")],
        ["letters", str(tmp_path / "letters.onnx")],
    ]
    with TestClient(app_from_env()) as c:
        listing = c.get("/v1/models").json()
        assert listing["default"] == "general" and len(listing["models"]) == 3
        assert listing["models"][0]["charset"] == Recognizer.load("general").charset


def test_a_model_named_alone_ignores_a_stale_models_list(monkeypatch, files):
    """MODEL set by hand (uvicorn --factory) serves that model, whatever MODELS an earlier serve left."""
    monkeypatch.setenv("CAPTCHA_CRNN_MODEL", str(files["letters"]))
    monkeypatch.setenv("CAPTCHA_CRNN_MODELS", json.dumps([["digits", str(files["digits"])]]))
    monkeypatch.setenv("CAPTCHA_CRNN_RELOAD", "")
    with TestClient(app_from_env()) as c:
        assert [m["name"] for m in c.get("/v1/models").json()["models"]] == ["letters"]


def refused(capsys, argv: list[str]) -> str:
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_serve_refuses_duplicate_names_and_a_name_count_mismatch(serve_env, files, tmp_path, capsys):
    other = tmp_path / "digits.onnx"
    other.write_bytes(files["digits"].read_bytes())
    err = refused(capsys, [str(files["digits"]), str(other)])
    assert "two models are named 'digits'" in err and "--name" in err
    err = refused(capsys, [str(files["digits"]), str(files["letters"]), "--name", "a,a"])
    assert "two models are named 'a'" in err
    err = refused(capsys, [str(files["digits"]), str(files["letters"]), "--name", "only"])
    assert "--name gives 1 name(s) for 2 model(s)" in err
    assert "must be 1-64 letters" in refused(capsys, [str(files["digits"]), "--name", "a/b"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"{empty}: no model files" in refused(capsys, [str(empty)])
    assert not serve_env  # nothing was started


# ---------------------------------------------------------------- --reload


def wait_for(condition, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def warnings():
    handler, logger = Warnings(), logging.getLogger("captcha_crnn.serving")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def unrunnable(path):
    """An ONNX file that loads (metadata and all) but cannot run on the images it is given: its graph
    wants 3 channels while its input policy makes 1."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 3, 32, "w"])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", 3, 32, "w"])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "bad", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    policy = InputPolicy(height=32, min_width=64, max_width=64)
    meta = {"format": ONNX_FORMAT, "charset": "xyz", "input_policy": json.dumps(policy.to_dict())}
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path.with_name("tmp.onnx")))
    os.replace(path.with_name("tmp.onnx"), path)


def replace_bytes(path, data: bytes) -> None:
    path.with_name("tmp").write_bytes(data)
    os.replace(path.with_name("tmp"), path)


def test_reload_swaps_a_changed_file_and_keeps_the_old_model_when_one_is_broken(files, tmp_path, warnings):
    path = reader(tmp_path / "m.onnx", DIGITS, "12")
    bright = files["bright"].read_bytes()
    app = create_app(Recognizer.load(path), str(path), reload_every=0.05)
    with TestClient(app) as c:

        def charset() -> str:
            return c.get("/v1/models/m").json()["charset"]

        assert charset() == DIGITS and read(c, "/v1/recognize", bright) == "12"
        reader(path, LETTERS, "cab")
        wait_for(lambda: charset() == LETTERS)
        assert read(c, "/v1/models/m/recognize", bright) == "cab" and warnings == []

        for breakage in (lambda: replace_bytes(path, b"not a model"), lambda: unrunnable(path)):
            breakage()
            wait_for(lambda: c.get("/v1/models/m").json()["reload_error"] is not None)
            time.sleep(0.3)  # several more polls of the same broken file
            assert charset() == LETTERS and read(c, "/v1/recognize", bright) == "cab"  # the old one serves
            assert len(warnings) == 1 and "still serving the model loaded before" in warnings[0]
            assert "\n" not in warnings[0] and "m.onnx" in warnings[0]
            warnings.clear()

        reader(path, DIGITS, "99")  # a good file again is taken
        wait_for(lambda: charset() == DIGITS)
        assert read(c, "/v1/recognize", bright) == "99" and c.get("/v1/model").json()["reload_error"] is None


def test_reload_serves_a_new_model_file_in_a_served_folder(files, tmp_path, warnings, serve_env):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "digits.onnx").write_bytes(files["digits"].read_bytes())
    bright = files["bright"].read_bytes()
    assert main(["serve", str(folder), "--reload"]) == 0  # uvicorn stubbed: the workers' settings
    assert json.loads(os.environ["CAPTCHA_CRNN_FOLDERS"]) == [str(folder)]
    os.environ["CAPTCHA_CRNN_RELOAD"] = "0.05"  # poll faster than serve's 2 s
    with TestClient(app_from_env()) as c:

        def names() -> list[str]:
            return [m["name"] for m in c.get("/v1/models").json()["models"]]

        assert names() == ["digits"]
        (folder / "notes.txt").write_text("not a model")  # other files are ignored
        replace_bytes(folder / "broken.onnx", b"not a model")
        replace_bytes(folder / "letters.onnx", files["letters"].read_bytes())  # whole, at once
        wait_for(lambda: "letters" in names())
        assert read(c, "/v1/models/letters/recognize", bright) == "cab"
        assert read(c, "/v1/recognize", bright) == "12"  # the first model stays the default
        time.sleep(0.3)  # several more polls of the same broken file
        assert names() == ["digits", "letters"]
        assert (
            len(warnings) == 1 and warnings[0].startswith("new model file") and "broken.onnx" in warnings[0]
        )


class Tagged:
    """A stand-in model that tags what it preprocesses and refuses pixels another model preprocessed;
    `gate` holds a pass while it is decoding, between the two steps a swap must not come between."""

    policy = InputPolicy(height=32, min_width=32, max_width=32)
    charset = "ab"

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.entered, self.gate = threading.Event(), threading.Event()
        self.gate.set()

    def preprocess(self, data, name, max_pixels, formats):
        self.entered.set()
        self.gate.wait(10)
        return (self.tag, data)

    def reading(self, charset=None, length=None):
        return Reading(charset, None)

    def predict_pixels(self, pixels, reading):
        assert all(tag == self.tag for tag, _ in pixels), "one pass mixed two models"
        return [Prediction(self.tag, 1.0) for _ in pixels]


def test_a_reload_never_drops_or_mixes_requests_in_flight(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"version 1")
    old, new = Tagged("a"), Tagged("b")
    app = create_app(old, str(path), reload_every=0.02, loader=lambda file: new)
    batcher = app.state.batcher

    async def steps():
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
            app.router.lifespan_context(app),
        ):
            old.gate.clear()
            in_flight = asyncio.create_task(client.post("/v1/recognize", content=b"1"))
            await asyncio.to_thread(old.entered.wait, 5)  # its pass is decoding with the old model
            path.write_bytes(b"version 2, longer")
            for _ in range(500):
                if batcher.model is new:
                    break
                await asyncio.sleep(0.01)
            assert batcher.model is new  # swapped while the old model's pass is still running
            waiting = asyncio.create_task(client.post("/v1/recognize", content=b"2"))
            await asyncio.sleep(0.05)
            old.gate.set()
            return await in_flight, await waiting

    first, second = asyncio.run(asyncio.wait_for(steps(), 20))
    assert (first.status_code, first.json()["text"]) == (200, "a")
    assert (second.status_code, second.json()["text"]) == (200, "b")
