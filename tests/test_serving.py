"""The HTTP service through FastAPI's test client: every endpoint and every hostile input."""

import io
import json
import tempfile

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from captcha_crnn import Recognizer
from captcha_crnn.serving.app import ServeLimits, create_app


@pytest.fixture(scope="module")
def recognizer(trained_run):
    return Recognizer.load(trained_run / "model.pt")


@pytest.fixture(scope="module")
def client(recognizer, trained_run):
    app = create_app(recognizer, str(trained_run / "model.pt"), ServeLimits(max_pixels=1_000_000))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def images(captcha_dir):
    return sorted(captcha_dir.glob("*.png"))[:3]


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def assert_still_serving(client, image):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.post("/v1/recognize", content=image.read_bytes()).status_code == 200


def test_health_model_and_docs(client, trained_run):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/v1/model").json()
    assert info["charset"] == "0123456789"
    assert info["input"] == {
        "height": 32,
        "min_width": 96,
        "max_width": 96,
        "fixed_width": 96,
        "stretch": 1.2,
        "crop": False,
    }
    assert info["model_file"] == str(trained_run / "model.pt") and info["version"]
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/recognize", "/v1/recognize/batch", "/v1/model", "/healthz"} <= set(paths)


def test_recognize_multipart_and_raw_body_match_the_recognizer(client, recognizer, images):
    expected = recognizer.predict(images[0])
    for response in (
        client.post("/v1/recognize", files={"file": ("a.png", images[0].read_bytes(), "image/png")}),
        client.post("/v1/recognize", content=images[0].read_bytes(), headers={"content-type": "image/png"}),
    ):
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"text", "confidence", "elapsed_ms"}
        assert body["text"] == expected.text
        assert body["confidence"] == pytest.approx(expected.confidence, abs=1e-5)
        assert body["elapsed_ms"] > 0


def test_batch_answers_in_order(client, recognizer, images):
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in [images[2], images[0], images[1]]]
    response = client.post("/v1/recognize/batch", files=files)
    assert response.status_code == 200
    body = response.json()
    assert [b["file"] for b in body] == [images[2].name, images[0].name, images[1].name]
    assert [b["text"] for b in body] == [
        p.text for p in recognizer.predict([images[2], images[0], images[1]])
    ]


def test_a_media_type_in_capitals_is_read_as_multipart_and_its_boundary_kept(client, recognizer, images):
    """Media types are case-insensitive; a boundary is not (a lower-cased one would not split the body)."""
    for url, field in (("/v1/recognize", "file"), ("/v1/recognize/batch", "files")):
        body = (
            (
                f'--CaseMatters\r\nContent-Disposition: form-data; name="{field}"; filename="a.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + images[0].read_bytes()
            + b"\r\n--CaseMatters--\r\n"
        )
        headers = {"content-type": "Multipart/Form-Data; boundary=CaseMatters"}
        response = client.post(url, content=body, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body[0] if isinstance(body, list) else body)["text"] == recognizer.predict(images[0]).text


def test_a_batch_over_the_pixel_budget_is_413_before_any_image_is_decoded(recognizer, trained_run, images):
    """Decoding runs on the batching thread: one request of many huge blank images must not hold it."""
    limits = ServeLimits(max_pixels=1_000_000, max_batch_pixels=2_000_000)
    with TestClient(create_app(recognizer, str(trained_run / "model.pt"), limits)) as c:
        blank = png_bytes(Image.new("L", (1000, 1000), 255))  # 1 MP each, a few kB
        files = [("files", (f"{i}.png", blank, "image/png")) for i in range(3)]
        response = c.post("/v1/recognize/batch", files=files)
        assert response.status_code == 413
        assert "3000000 pixels together, over the 2000000" in response.json()["detail"]
        assert c.post("/v1/recognize/batch", files=files[:2]).status_code == 200  # at the budget
        assert c.get("/v1/model").json()["limits"]["max_batch_pixels"] == 2_000_000
        assert_still_serving(c, images[0])


def test_body_over_the_limit_is_413(client, images):
    big = b"\0" * (2 * 1024 * 1024 + 1)
    response = client.post("/v1/recognize", content=big)
    assert response.status_code == 413 and "larger than" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(40):
            yield b"\0" * 65536

    response = client.post("/v1/recognize", content=chunks())
    assert response.status_code == 413
    assert_still_serving(client, images[0])


@pytest.mark.parametrize(
    "payload",
    [b"", b"just some text", png_bytes(Image.new("RGB", (60, 20), "white"), "TIFF")],
    ids=["empty", "text", "tiff"],
)
def test_not_an_image_or_unsupported_format_is_415(client, images, payload):
    response = client.post("/v1/recognize", files={"file": ("x.bin", payload, "application/octet-stream")})
    assert response.status_code == 415, response.text
    assert "x.bin" in response.json()["detail"]
    assert_still_serving(client, images[0])


def test_truncated_image_and_pixel_bomb_are_422(client, images):
    data = images[0].read_bytes()
    response = client.post("/v1/recognize", content=data[: len(data) // 2])
    assert response.status_code == 422 and "truncated" in response.json()["detail"]
    bomb = png_bytes(Image.new("1", (2000, 2000)))  # a few KB on the wire, 4M pixels decoded
    assert len(bomb) < 100_000
    response = client.post("/v1/recognize", content=bomb)
    assert response.status_code == 422 and "pixels" in response.json()["detail"]
    assert_still_serving(client, images[0])


def test_bad_requests_are_json_errors(client, images):
    assert client.post("/v1/recognize/batch", content=images[0].read_bytes()).status_code == 415
    two = [("file", ("a.png", images[0].read_bytes())), ("file", ("b.png", images[1].read_bytes()))]
    response = client.post("/v1/recognize", files=two)
    assert response.status_code == 400 and "exactly one" in response.json()["detail"]
    assert client.get("/nope").json()["detail"]
    assert_still_serving(client, images[0])


@pytest.mark.parametrize("count", [65, 66, 200])
def test_any_batch_over_the_limit_gets_the_same_413(client, count):
    """The multipart parser's file limit and the batch limit must give one answer, not 413 or 400."""
    files = [("files", (f"{i}.png", b"x")) for i in range(count)]
    response = client.post("/v1/recognize/batch", files=files)
    assert response.status_code == 413
    assert response.json() == {"detail": "at most 64 images per batch"}


def test_a_batch_at_the_limit_is_read(client):
    files = [("files", (f"{i}.png", b"x")) for i in range(64)]
    response = client.post("/v1/recognize/batch", files=files)
    assert response.status_code == 415 and "0.png" in response.json()["detail"]  # decoded, not refused


@pytest.mark.parametrize("count", [0, 2, 70])
def test_recognize_wants_exactly_one_file_whatever_the_count(client, images, count):
    files = [("file", (f"{i}.png", images[0].read_bytes())) for i in range(count)]
    response = client.post("/v1/recognize", files=files or {"note": (None, "no file")})
    assert response.status_code == 400
    assert response.json() == {"detail": "send exactly one image file, or the image as the raw request body"}


def test_openapi_shows_what_each_route_returns(client):
    spec = client.get("/openapi.json").json()

    def returns(path, method, status):
        return json.dumps(spec["paths"][path][method]["responses"][status]["content"]["application/json"])

    assert "#/components/schemas/Recognition" in returns("/v1/recognize", "post", "200")
    assert "#/components/schemas/BatchItem" in returns("/v1/recognize/batch", "post", "200")
    assert "#/components/schemas/ModelInfo" in returns("/v1/model", "get", "200")
    assert "#/components/schemas/Health" in returns("/healthz", "get", "200")
    assert "#/components/schemas/Health" in returns("/healthz", "get", "503")
    for status in ("400", "408", "413", "415", "422", "500", "503", "504"):
        assert "#/components/schemas/Error" in returns("/v1/recognize", "post", status)
        assert "#/components/schemas/Error" in returns("/v1/recognize/batch", "post", status)
    schemas = spec["components"]["schemas"]
    assert {"text", "confidence", "elapsed_ms"} <= set(schemas["Recognition"]["properties"])
    assert {"charset", "input", "model_file", "version", "limits"} <= set(schemas["ModelInfo"]["properties"])


def test_uploads_are_never_spooled_to_disk(client, monkeypatch):
    """A 1.5 MB upload (over Starlette's default 1 MB spool) must stay in memory."""
    noise = np.random.default_rng(0).integers(0, 256, (700, 800, 3), dtype=np.uint8)
    data = png_bytes(Image.fromarray(noise))
    assert 1_100_000 < len(data) < 2 * 1024 * 1024

    def no_disk(self):  # SpooledTemporaryFile moves to a real file here
        raise AssertionError("upload written to disk")

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", no_disk)
    response = client.post("/v1/recognize", files={"file": ("noise.png", data, "image/png")})
    assert response.status_code == 200


def test_page_is_offline_and_uses_the_api(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "v1/recognize" in page and 'type="file"' in page
    assert "http://" not in page and "https://" not in page  # no CDN: works offline


def test_concurrent_requests_each_get_their_own_answer(client, recognizer, captcha_dir):
    """Requests arriving together share a forward pass; a bad image fails only its own request."""
    from concurrent.futures import ThreadPoolExecutor

    paths = sorted(captcha_dir.glob("*.png"))[:12]
    expected = [p.text for p in recognizer.predict(paths)]
    payloads = [p.read_bytes() for p in paths] + [b"not an image"]

    def post(data):
        return client.post("/v1/recognize", content=data)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, payloads * 3))
    for i, response in enumerate(responses):
        if i % len(payloads) == len(paths):
            assert response.status_code == 415
        else:
            assert response.status_code == 200
            assert response.json()["text"] == expected[i % len(payloads)]
