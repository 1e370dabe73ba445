"""The service under failure and overload, with a stand-in model that the tests can block, slow down or
break: no request may hang, whatever goes wrong. Each scenario runs under a deadline, so a request that
would wait forever fails the test instead of hanging it."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import httpx
import numpy as np
import pytest

from captcha_crnn.data.images import InputPolicy
from captcha_crnn.errors import UnsupportedImageError
from captcha_crnn.inference.backends import ONNX_FORMAT
from captcha_crnn.inference.recognizer import Prediction, Reading
from captcha_crnn.serving.app import ServeLimits, app_from_env, create_app
from captcha_crnn.serving.threads import threads_per_worker


class Fatal(BaseException):
    """Escapes `except Exception`: what it takes to kill the batcher's loop itself."""


class FakeModel:
    """Reads each image's bytes as its text. `gate` holds forward passes; `error` makes them fail."""

    policy = InputPolicy(height=32, min_width=32, max_width=32)
    charset = "0123456789"

    def __init__(self) -> None:
        self.passes: list[int] = []  # images per forward pass
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.error: BaseException | None = None

    def preprocess(self, data: bytes, name: str, max_pixels: int, formats: tuple[str, ...]) -> bytes:
        if data == b"crash":
            raise RuntimeError("a decoder bug\nwith a second line")
        if data == b"bad":
            raise UnsupportedImageError(f"{name}: not an image")
        return data

    def reading(self, charset: str | None = None, length: str | None = None) -> Reading:
        return Reading(charset, None)

    def predict_pixels(self, pixels: list[bytes], reading: Reading) -> list[Prediction]:
        self.passes.append(len(pixels))
        self.entered.set()
        self.gate.wait(10)
        if self.error is not None:
            raise self.error
        return [Prediction(p.decode(), 0.5) for p in pixels]


def scenario(app, steps, lifespan: bool = True, deadline: float = 10):
    """Run `steps(client)` against the app in one event loop, failing if it takes over `deadline` s."""

    async def main():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            if not lifespan:
                return await steps(client)
            async with app.router.lifespan_context(app):
                return await steps(client)

    return asyncio.run(asyncio.wait_for(main(), deadline))


async def until(condition, deadline: float = 5) -> None:
    for _ in range(int(deadline / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def queued(app) -> int:
    """Images waiting in the app's micro-batcher queue."""
    return app.state.batcher.queued if hasattr(app.state, "batcher") else -1


async def blocked_pass(model: FakeModel, client: httpx.AsyncClient, data: bytes) -> asyncio.Task:
    """Start a request and return once its forward pass is running (and held at the gate)."""
    model.gate.clear()
    task = asyncio.create_task(client.post("/v1/recognize", content=data))
    await asyncio.to_thread(model.entered.wait, 5)
    return task


def one_line_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and "\n" not in body["detail"]
    return body["detail"]


@pytest.fixture
def model():
    fake = FakeModel()
    yield fake
    fake.gate.set()  # never leave a worker thread blocked


def make_app(model, **limits):
    return create_app(model, "fake.pt", ServeLimits(**limits))


# ---------------------------------------------------------------- supervision


def test_a_decoder_crash_is_a_500_and_the_loop_goes_on(model):
    async def steps(client):
        crash = await client.post("/v1/recognize", content=b"crash")
        return crash, await client.post("/v1/recognize", content=b"7"), await client.get("/healthz")

    crash, after, health = scenario(make_app(model), steps)
    assert "RuntimeError" in one_line_error(crash, 500)
    assert after.status_code == 200 and after.json()["text"] == "7"
    assert health.json() == {"status": "ok"}


def test_a_model_failure_answers_every_request_in_the_pass_with_500(model):
    app = make_app(model)

    async def steps(client):
        first = await blocked_pass(model, client, b"1")
        others = [asyncio.create_task(client.post("/v1/recognize", content=c)) for c in (b"2", b"3")]
        await until(lambda: queued(app) == 2)
        model.error = ValueError("out of memory, say")
        model.gate.set()
        failed = await asyncio.gather(first, *others)
        model.error = None
        return failed, await client.post("/v1/recognize", content=b"4")

    failed, after = scenario(app, steps)
    for response in failed:
        assert "ValueError" in one_line_error(response, 500)
    assert model.passes == [1, 2, 1]
    assert after.status_code == 200 and after.json()["text"] == "4"


def test_if_the_loop_dies_healthz_says_so_and_requests_fail_fast(model):
    model.error = Fatal()

    async def steps(client):
        in_hand = await client.post("/v1/recognize", content=b"1")
        return in_hand, await client.get("/healthz"), await client.post("/v1/recognize", content=b"2")

    in_hand, health, later = scenario(make_app(model), steps)
    assert "died" in one_line_error(in_hand, 503)
    assert health.status_code == 503 and health.json()["status"] != "ok" and health.json()["detail"]
    assert "died" in one_line_error(later, 503)
    assert model.passes == [1]


def test_healthz_says_so_while_a_pass_runs_past_the_request_timeout(model):
    async def steps(client):
        stuck = await blocked_pass(model, client, b"1")
        healthy = await client.get("/healthz")
        await asyncio.sleep(0.4)
        hung = await client.get("/healthz")
        model.gate.set()
        await stuck
        await until(lambda: app.state.batcher.pass_started is None)
        return healthy, hung, await client.get("/healthz")

    app = make_app(model, request_timeout=0.3)
    healthy, hung, recovered = scenario(app, steps)
    assert healthy.status_code == 200 and recovered.status_code == 200
    assert hung.status_code == 503 and "the model may be hung" in hung.json()["detail"]


def test_without_a_running_loop_requests_fail_fast(model):
    """The app used without its lifespan (so no consumer task): 503 at once, not a wait forever."""

    async def steps(client):
        return await client.post("/v1/recognize", content=b"1"), await client.get("/healthz")

    response, health = scenario(make_app(model), steps, lifespan=False)
    one_line_error(response, 503)
    assert health.status_code == 503


# ---------------------------------------------------------------- overload


def test_a_full_queue_is_503_with_retry_after(model):
    app = make_app(model, max_queue=2)

    async def steps(client):
        first = await blocked_pass(model, client, b"1")
        waiting = [asyncio.create_task(client.post("/v1/recognize", content=c)) for c in (b"2", b"3")]
        await until(lambda: queued(app) == 2)
        full = await client.post("/v1/recognize", content=b"4")
        model.gate.set()
        return full, await asyncio.gather(first, *waiting)

    full, served = scenario(app, steps)
    assert "busy" in one_line_error(full, 503)
    assert int(full.headers["retry-after"]) >= 1
    assert [r.json()["text"] for r in served] == ["1", "2", "3"]


def test_an_empty_queue_takes_a_batch_larger_than_max_queue(model):
    files = [("files", (f"{i}.png", str(i).encode())) for i in range(5)]

    async def steps(client):
        return await client.post("/v1/recognize/batch", files=files)

    response = scenario(make_app(model, max_queue=2), steps)
    assert [r["text"] for r in response.json()] == ["0", "1", "2", "3", "4"]


def test_no_forward_pass_exceeds_max_queue_batch(model):
    app = make_app(model, max_queue_batch=4, max_batch=10)

    def batch(*texts):
        return [("files", (f"{t}.png", t.encode())) for t in texts]

    async def steps(client):
        first = await blocked_pass(model, client, b"0")
        sent = [
            asyncio.create_task(client.post("/v1/recognize/batch", files=batch(*texts)))
            for texts in (["1", "2", "3"], ["4", "5", "6"], ["7"], [str(n) for n in range(10, 20)])
        ]
        await until(lambda: queued(app) == 17)
        model.gate.set()
        return await asyncio.gather(first, *sent)

    responses = scenario(app, steps)
    assert all(r.status_code == 200 for r in responses)
    assert [r["text"] for r in responses[-1].json()] == [str(n) for n in range(10, 20)]
    assert max(model.passes) <= 4 and sum(model.passes) == 18
    assert model.passes == [1, 3, 4, 4, 4, 2]  # in order; the 10-image batch split over three passes


def test_a_request_waiting_past_the_timeout_is_504_and_is_then_skipped(model):
    async def steps(client):
        first = await blocked_pass(model, client, b"1")
        late = await client.post("/v1/recognize", content=b"2")  # times out while waiting
        timed_out = await first
        model.gate.set()
        return timed_out, late, await client.post("/v1/recognize", content=b"3")

    timed_out, late, after = scenario(make_app(model, request_timeout=0.3), steps)
    assert "0.3 s" in one_line_error(timed_out, 504)
    one_line_error(late, 504)
    assert after.status_code == 200 and after.json()["text"] == "3"
    assert model.passes == [1, 1]  # the abandoned request never reached the model


def test_a_bad_image_still_fails_only_its_own_request(model):
    app = make_app(model)

    async def steps(client):
        first = await blocked_pass(model, client, b"1")
        others = [asyncio.create_task(client.post("/v1/recognize", content=c)) for c in (b"bad", b"2")]
        await until(lambda: queued(app) == 2)
        model.gate.set()
        return await asyncio.gather(first, *others)

    first, bad, good = scenario(app, steps)
    assert first.json()["text"] == "1" and good.json()["text"] == "2"
    assert "not an image" in one_line_error(bad, 415)


# ---------------------------------------------------------------- threads per worker


@pytest.mark.parametrize(
    ("workers", "cores", "threads"), [(1, 8, 8), (4, 8, 2), (3, 8, 2), (16, 2, 1), (2, 1, 1)]
)
def test_workers_times_threads_is_the_core_count(workers, cores, threads):
    assert threads_per_worker(workers, cores) == threads


@pytest.mark.parametrize(("workers", "cores", "threads"), [(1, 2, 1), (1, 8, 7), (2, 8, 3), (4, 4, 1)])
def test_torch_workers_leave_a_core_for_the_event_loop(workers, cores, threads):
    assert threads_per_worker(workers, cores, torch=True) == threads


def test_each_worker_sets_its_torch_threads(monkeypatch, trained_run):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    monkeypatch.setenv("CAPTCHA_CRNN_MODEL", str(trained_run / "model.pt"))
    monkeypatch.setenv("CAPTCHA_CRNN_THREADS", str(want))
    try:
        app_from_env()
        seen = []
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert torch.get_num_threads() == want and seen == [want]  # inference runs in another thread
    finally:
        torch.set_num_threads(before)


def tiny_onnx_model(path):
    """An identity network with captcha-crnn's metadata: enough for a session, no export needed."""
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    x = helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, ["b", 1, 32, "w"])
    y = helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, ["b", 1, 32, "w"])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "tiny", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    meta = {"format": ONNX_FORMAT, "charset": "01", "input_policy": json.dumps(InputPolicy().to_dict())}
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path


def test_each_worker_sets_its_onnxruntime_threads(monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("CAPTCHA_CRNN_MODEL", str(tiny_onnx_model(tmp_path / "tiny.onnx")))
    monkeypatch.setenv("CAPTCHA_CRNN_THREADS", "1")
    session = app_from_env().state.batcher.model.backend.session
    assert session.get_session_options().intra_op_num_threads == 1
    out = session.run(None, {"images": np.zeros((1, 1, 32, 8), np.float32)})[0]
    assert out.shape == (1, 1, 32, 8)


@pytest.mark.parametrize(("options", "threads"), [([], "1"), (["--threads", "3"], "3")])  # model.pt: torch
def test_serve_splits_the_cores_between_workers_and_says_so(
    monkeypatch, capsys, trained_run, options, threads
):
    import uvicorn

    from captcha_crnn.cli.main import main
    from captcha_crnn.serving import threads as threads_module

    for name in ("MODEL", "FOLDERS", "MAX_BODY", "MAX_PIXELS", "MAX_QUEUE", "REQUEST_TIMEOUT", "THREADS"):
        monkeypatch.setenv(f"CAPTCHA_CRNN_{name}", "")  # restored after the test
    monkeypatch.setattr(threads_module, "available_cores", lambda: 8)
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    model = str(trained_run / "model.pt")
    assert main(["serve", model, "--workers", "4", "--max-queue", "100", *options]) == 0
    assert calls and calls[0]["workers"] == 4
    assert os.environ["CAPTCHA_CRNN_THREADS"] == threads and os.environ["CAPTCHA_CRNN_MAX_QUEUE"] == "100"
    assert f"4 worker(s) x {threads} inference thread(s)" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--max-queue", "0"], ["--threads", "0"], ["--request-timeout", "0"]])
def test_serve_refuses_nonsense_limits(monkeypatch, capsys, trained_run, option):
    import uvicorn

    from captcha_crnn.cli.main import main

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("started anyway"))
    assert main(["serve", str(trained_run / "model.pt"), *option]) != 0
    assert option[0] in capsys.readouterr().err
