"""The labelling workbench's HTTP side: the page, and the JSON API it (or a script) uses.

GET  /api/next       the next image to label, its suggestion and the counts (404 when all are done)
GET  /api/item       one image's saved label and suggestion (?file=)
GET  /api/image      the image itself (?file=; only files of the folder; a faint drawing on a
                     transparent canvas as the model reads it)
POST /api/label      {"file", "label"}: save (422: the charset refuses it; 404: not a file of the folder)
POST /api/unreadable {"file"}: keep the image out of training
POST /api/skip       {"file"}: to the back of the queue
GET|POST /api/retrain  the fine-tuning job's state | start one
GET  /api/review     labelled images, those the model now reads differently first
GET  /api/status     counts, settings, unreadable files, rows for missing files
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from captcha_crnn.data.images import faint_canvas_png
from captcha_crnn.errors import CaptchaCrnnError, ImageError, LabelError, one_line
from captcha_crnn.labelling.page import PAGE
from captcha_crnn.labelling.retrain import Retrainer
from captcha_crnn.labelling.workbench import Workbench
from captcha_crnn.web_errors import add_json_error_handlers, detail_response

log = logging.getLogger("captcha_crnn")


class LabelRequest(BaseModel):
    file: str = Field(description="path of the image, relative to the folder")
    label: str = Field(max_length=256)
    suggestion: str | None = Field(
        None,
        max_length=256,
        description="the reading the page showed, stored with the label (a retrain may have changed the "
        "model's since); omitted: the model's current one",
    )


class FileRequest(BaseModel):
    file: str


class RetrainRequest(BaseModel):
    """Empty: the request must still be JSON."""


class Next(BaseModel):
    file: str
    suggestion: str | None = Field(description="the model's reading; null without a model")
    confidence: float | None = Field(description="probability of the reading, 0..1")
    upcoming: list[str]
    labelled: int
    unreadable: int
    accepted: int = Field(description="labels saved exactly as suggested")
    total: int
    scored: int


class Saved(BaseModel):
    file: str
    label: str
    status: str
    accepted: bool


def create_label_app(
    bench: Workbench,
    retrainer: Retrainer | None = None,
    model: str | None = None,
    review: bool = False,
    retrain_every: int = 0,
) -> FastAPI:
    """`model`: what the suggestions come from ("general", a file, None); retraining starts from it."""
    app = FastAPI(title="captcha-crnn label", docs_url="/docs", redoc_url=None)
    add_json_error_handlers(app)
    current = {"model": model, "since_retrain": 0}

    def missing(rel: str) -> JSONResponse:
        return detail_response(404, f"{rel!r} is not an image of the folder being labelled")

    def unwritable(exc: OSError) -> JSONResponse:
        reason = one_line(exc.strerror or exc)
        return detail_response(
            500, f"{one_line(bench.store.path)}: cannot write ({reason}); the label is not saved"
        )

    def maybe_retrain() -> None:
        current["since_retrain"] += 1
        if (
            retrain_every
            and retrainer
            and current["since_retrain"] >= retrain_every
            and not retrainer.running
        ):
            try:
                retrainer.start(bench.labelled(), current["model"])
                current["since_retrain"] = 0
            except CaptchaCrnnError as exc:  # too few labels yet: try again after the next label
                log.info("not retraining yet: %s", exc)
            except OSError as exc:  # the label is saved; the page shows the job did not start
                log.warning("cannot start a retrain: %s", exc)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE

    @app.get("/api/status")
    def status() -> dict[str, Any]:
        return {
            **bench.counts(),
            "folder": str(bench.root),
            "labels_file": str(bench.store.path),
            "model": current["model"],
            "charset": bench.charset,
            "order": bench.order,
            "review": review,
            "retrain": retrainer.job.to_dict() if retrainer else None,
            "unreadable_files": bench.unreadable_files(),
            "rows_for_missing_files": bench.missing,
        }

    @app.get("/api/next", response_model=Next, responses={404: {"description": "every image is done"}})
    def next_image() -> Any:
        found = bench.next()
        if found is None:
            return detail_response(404, "every image is labelled or marked unreadable")
        return found

    @app.get("/api/item")
    def item(file: str = Query()) -> Any:
        try:
            return bench.item(file)
        except KeyError:
            return missing(file)

    @app.get("/api/image", include_in_schema=False)
    def image(file: str = Query()) -> Any:
        if file not in bench.known:
            return missing(file)
        cache = {"Cache-Control": "private, max-age=3600"}
        try:  # light glyphs on a transparent canvas vanish on the page: show them as the model reads them
            shown = faint_canvas_png(bench.root / file)
        except (ImageError, OSError, ValueError, MemoryError):  # the browser shows the file as it can
            shown = None
        if shown is not None:
            return Response(shown, media_type="image/png", headers=cache)
        return FileResponse(bench.root / file, headers=cache)

    @app.post("/api/label", response_model=Saved)
    def label(body: LabelRequest) -> Any:
        if review:
            return detail_response(403, "review mode is read-only; run without --review to change labels")
        try:
            row = bench.label(body.file, body.label, body.suggestion)
        except KeyError:
            return missing(body.file)
        except LabelError as exc:
            return detail_response(422, str(exc))
        except OSError as exc:
            return unwritable(exc)
        maybe_retrain()
        return Saved(file=body.file, label=row.label, status=row.status, accepted=row.accepted)

    @app.post("/api/unreadable", response_model=Saved)
    def unreadable(body: FileRequest) -> Any:
        if review:
            return detail_response(403, "review mode is read-only")
        try:
            row = bench.unreadable(body.file)
        except KeyError:
            return missing(body.file)
        except OSError as exc:
            return unwritable(exc)
        return Saved(file=body.file, label=row.label, status=row.status, accepted=False)

    @app.post("/api/skip")
    def skip(body: FileRequest) -> Any:
        try:
            bench.skip(body.file)
        except KeyError:
            return missing(body.file)
        return {"file": body.file, "skipped": True}

    @app.get("/api/retrain")
    def retrain_state() -> Any:
        return retrainer.job.to_dict() if retrainer else {"state": "unavailable"}

    @app.post("/api/retrain", status_code=202)
    def retrain(_: RetrainRequest) -> Any:  # a JSON body: a cross-site form cannot start a job
        if retrainer is None:
            return detail_response(409, "retraining needs the train extra: pip install 'captcha-crnn[train]'")
        try:
            job = retrainer.start(bench.labelled(), current["model"])
        except CaptchaCrnnError as exc:
            return detail_response(409, str(exc))
        except OSError as exc:
            return detail_response(500, f"cannot start a retrain: {exc}")
        current["since_retrain"] = 0
        return job.to_dict()

    @app.get("/api/review")
    def review_list() -> list[dict[str, Any]]:
        return bench.review()

    def on_retrained(path: Path) -> None:
        from captcha_crnn.inference.recognizer import Recognizer

        bench.use_model(Recognizer.load(path))
        current["model"] = str(path)

    if retrainer is not None:
        retrainer.on_done = on_retrained
    return app
