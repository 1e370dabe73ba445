"""The micro-batcher: one consumer task runs every queued request's images through the network together.

Natural micro-batching: no added wait when idle; requests that arrive while a forward pass runs go into
the next one, at most `max_queue_batch` images per pass. It is built so that no request can wait forever:
the queue is bounded (503 with Retry-After when full), every wait has a timeout (504), a failure answers
the requests in hand with 500 and the loop goes on, and if the loop itself stops, requests fail at once
with 503 and `problem` says why (for /healthz).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import numpy as np

from captcha_crnn.data.images import IMAGE_FORMATS, InputPolicy
from captcha_crnn.errors import ImageError, OptionError, UnsupportedImageError
from captcha_crnn.inference.reading import Prediction, Reading
from captcha_crnn.serving.limits import ServeLimits

log = logging.getLogger("captcha_crnn.serving")

RETRY_AFTER_S = 1


class ApiError(Exception):
    """An answer other than 200: its status, a one-line message and any extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def image_error(exc: ImageError) -> ApiError:
    """415 when it is not an image we read; 422 when it is one but damaged or over the pixel limit."""
    return ApiError(415 if isinstance(exc, UnsupportedImageError) else 422, str(exc))


def internal_error(exc: BaseException, during: str) -> ApiError:
    """500 with one line for the client; the traceback goes to the server log, not to the client."""
    log.error("internal error while %s", during, exc_info=exc)
    return ApiError(500, f"internal error ({type(exc).__name__}) while {during}; see the server log")


class Model(Protocol):
    """What the batcher needs of a Recognizer (tests stand in a fake)."""

    policy: InputPolicy
    charset: str

    def preprocess(
        self, image: bytes, name: str, max_pixels: int, formats: tuple[str, ...]
    ) -> np.ndarray: ...

    def reading(self, charset: str | None = None, length: str | None = None) -> Reading: ...

    def predict_pixels(self, pixels: list[np.ndarray], reading: Reading) -> list[Prediction]: ...


Outcome = list[dict[str, Any]] | ApiError


@dataclass
class Job:
    items: list[tuple[str, bytes]]
    future: asyncio.Future = field(repr=False)
    charset: str | None = None  # read only these characters (already checked against the model)
    solve: str | None = None  # this request's solver (already checked), else the service's
    length: str | None = None  # this request's reading lengths ("4", "4-6", "any"; already checked)
    started: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(self, model: Model, limits: ServeLimits, solve: str | None = None) -> None:
        # `model` may be replaced at any time (a reload); each pass reads it once, at its start.
        self.model, self.limits, self.solve = model, limits, solve
        self.waiting: deque[Job] = deque()
        self.queued = 0  # images in `waiting`
        self.in_hand: list[Job] = []  # taken from the queue, not yet answered
        self.pass_started: float | None = None  # time.monotonic() when the running pass began
        self.task: asyncio.Task | None = None
        self.failure: str | None = None
        self._wakeup = asyncio.Event()  # made again in start(): an Event belongs to one event loop

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the consumer on the running event loop (a fresh one each time the app starts)."""
        self.waiting.clear()
        self.queued, self.in_hand, self.failure, self.pass_started = 0, [], None, None
        self._wakeup = asyncio.Event()
        self.task = asyncio.create_task(self.run(), name="captcha-crnn micro-batcher")
        self.task.add_done_callback(self._stopped)

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():  # a dead loop's error is already logged
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    @property
    def problem(self) -> str | None:
        """None while the consumer loop runs; otherwise why no request can be answered."""
        if self.task is None:
            return "the inference loop has not started"
        if self.task.done():
            return self.failure or "the inference loop has stopped"
        return None

    @property
    def stalled(self) -> str | None:
        """Why the loop, though running, answers nothing: a pass that has outlived the request timeout
        (a hung model call). For /healthz, so that a supervisor restarts the service; requests still
        queue, and time out with 504, since the pass may yet end."""
        if self.pass_started is None:
            return None
        seconds = time.monotonic() - self.pass_started
        if seconds <= self.limits.request_timeout:
            return None
        return f"a forward pass has run for {seconds:.0f} s, past the request timeout; the model may be hung"

    def _stopped(self, task: asyncio.Task) -> None:
        """The loop only ends on shutdown or a bug: fail everything still waiting rather than leave it."""
        if task.cancelled():
            self.failure = "the server is shutting down"
        else:
            exc = task.exception()
            log.critical("the inference loop died; requests now get 503", exc_info=exc)
            self.failure = f"the inference loop died ({type(exc).__name__}); the server needs a restart"
        self._answer(self.in_hand + list(self.waiting), ApiError(503, self.failure))
        self.waiting.clear()
        self.queued = 0

    # ------------------------------------------------------------ producer side (request handlers)

    async def submit(
        self,
        items: list[tuple[str, bytes]],
        charset: str | None = None,
        solve: str | None = None,
        length: str | None = None,
    ) -> list[dict[str, Any]]:
        """Queue one request's images and wait, at most `request_timeout`, for their results."""
        job = self._enqueue(items, charset, solve, length)
        try:
            return await asyncio.wait_for(job.future, self.limits.request_timeout)
        except asyncio.TimeoutError:  # wait_for cancelled the future: the loop will skip the job
            raise ApiError(
                504, f"no answer within {self.limits.request_timeout:g} s; the server is overloaded"
            ) from None

    def _enqueue(
        self,
        items: list[tuple[str, bytes]],
        charset: str | None = None,
        solve: str | None = None,
        length: str | None = None,
    ) -> Job:
        if problem := self.problem:
            raise ApiError(503, problem)
        # An empty queue takes any request, so a batch larger than max_queue is still served.
        if self.waiting and self.queued + len(items) > self.limits.max_queue:
            raise ApiError(
                503,
                f"server busy: {self.queued} images already waiting; retry in {RETRY_AFTER_S} s",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        job = Job(items, asyncio.get_running_loop().create_future(), charset, solve, length)
        self.waiting.append(job)
        self.queued += len(items)
        self._wakeup.set()
        return job

    # ------------------------------------------------------------ consumer side (one task)

    async def run(self) -> None:
        """Supervised: an exception answers the jobs in hand with 500 and the loop goes on."""
        while True:
            self.in_hand = await self._take()
            self.pass_started = time.monotonic()
            try:
                outcomes = await anyio.to_thread.run_sync(self._process, self.in_hand)
                self._deliver(self.in_hand, outcomes)
            except Exception as exc:
                self._answer(self.in_hand, internal_error(exc, "answering requests"))
            self.in_hand, self.pass_started = [], None

    async def _take(self) -> list[Job]:
        """Wait for work, then take queued jobs in order while their images fit in one forward pass
        (the first one always: _forward splits a job larger than a pass). Skips abandoned jobs."""
        while True:
            while not self.waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
            jobs: list[Job] = []
            size = 0
            while self.waiting and (
                not jobs or size + len(self.waiting[0].items) <= self.limits.max_queue_batch
            ):
                job = self.waiting.popleft()
                self.queued -= len(job.items)
                if not job.future.done():  # done: timed out, or the client went away
                    jobs.append(job)
                    size += len(job.items)
            if jobs:
                return jobs

    def _deliver(self, jobs: list[Job], outcomes: list[Outcome]) -> None:
        done = time.perf_counter()
        for job, outcome in zip(jobs, outcomes, strict=True):
            if job.future.done():
                continue
            if isinstance(outcome, ApiError):
                job.future.set_exception(outcome)
            else:
                elapsed = round((done - job.started) * 1000, 3)
                job.future.set_result([{**r, "elapsed_ms": elapsed} for r in outcome])

    @staticmethod
    def _answer(jobs: list[Job], error: ApiError) -> None:
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(error)

    # ------------------------------------------------------------ in a worker thread

    def _process(self, jobs: list[Job]) -> list[Outcome]:
        """Decode each job's images (a bad one fails only its own job), then run the network on all of
        them, one pass per restricted charset and length asked for; if the network fails, every job in this pass
        gets the 500. One model serves the whole pass, even if a reload swaps `self.model` meanwhile."""
        model = self.model
        outcomes: list[Outcome] = []
        # One pass per way of reading; each built with this pass's model (the request was checked against
        # the model of its time: a reload since may have brought a model that cannot read its charset).
        by_reading: dict[Reading, tuple[list[np.ndarray], list[int]]] = {}
        for index, job in enumerate(jobs):
            decoded = self._decode(model, job)
            outcomes.append(decoded if isinstance(decoded, ApiError) else [])
            if isinstance(decoded, ApiError):
                continue
            try:
                reading = model.reading(job.charset, job.length)
            except OptionError as exc:
                outcomes[index] = ApiError(422, f"{exc.option} {exc.problem}")
                continue
            except Exception as exc:
                outcomes[index] = internal_error(exc, "running the model")
                continue
            pixels, owners = by_reading.setdefault(reading, ([], []))
            pixels += decoded
            owners += [index] * len(decoded)
        answers = []
        try:
            for reading, (pixels, owners) in by_reading.items():
                answers.append((owners, self._forward(model, pixels, reading)))
        except Exception as exc:
            error = internal_error(exc, "running the model")
            return [error] * len(jobs)
        for owners, preds in answers:
            for owner, pred in zip(owners, preds, strict=True):
                solver = jobs[owner].solve or self.solve
                outcomes[owner].append(pred.solved(solver).to_dict())  # type: ignore[union-attr]
        return outcomes

    def _decode(self, model: Model, job: Job) -> list[np.ndarray] | ApiError:
        try:
            return [
                model.preprocess(data, name, self.limits.max_pixels, IMAGE_FORMATS)
                for name, data in job.items
            ]
        except ImageError as exc:
            return image_error(exc)
        except Exception as exc:
            return internal_error(exc, "reading the images")

    def _forward(self, model: Model, pixels: list[np.ndarray], reading: Reading) -> list[Prediction]:
        """Never more than `max_queue_batch` images in one network call."""
        step = self.limits.max_queue_batch
        preds: list[Prediction] = []
        for start in range(0, len(pixels), step):
            preds += model.predict_pixels(pixels[start : start + step], reading)
        return preds
